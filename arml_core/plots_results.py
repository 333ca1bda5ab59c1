"""Figures from saved runs: metric bars with 95% confidence intervals, weights over time."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from arml_core.results import RunRecord, task_names


def plot_metric_bars(
    summary: pd.DataFrame,
    metric_label: str,
    category: str = "method",
    hue: str | None = "dataset",
    percent: bool = True,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Draw one bar per row of an ``aggregate`` table with its 95% CI as an error bar.

    ``summary`` needs the columns ``category``, ``hue`` (if given), mean, ci95 and n. Rows with
    one seed have no error bar, and each bar is annotated with its number of seeds.
    With ``percent`` the values (fractions) are shown in percent.
    """
    if summary.empty:
        raise ValueError("summary has no rows; aggregate records that contain the metric first")
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    scale = 100.0 if percent else 1.0
    hues = list(dict.fromkeys(summary[hue])) if hue else [None]
    categories = list(dict.fromkeys(summary[category]))
    width = 0.8 / len(hues)
    palette = sns.color_palette(n_colors=len(hues))
    for offset, (hue_value, color) in enumerate(zip(hues, palette)):
        part = summary if hue is None else summary[summary[hue] == hue_value]
        positions = [categories.index(c) + (offset - (len(hues) - 1) / 2) * width for c in part[category]]
        errors = np.nan_to_num(part["ci95"].to_numpy(dtype=float) * scale, nan=0.0)
        bars = ax.bar(positions, part["mean"] * scale, width, yerr=errors, capsize=3,
                      color=color, label=None if hue_value is None else str(hue_value))
        ax.bar_label(bars, labels=[f"n={n}" for n in part["n"]], fontsize=7, padding=2)
    ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    ax.set_ylabel(f"{metric_label} (%)" if percent else metric_label)
    ax.set_title(f"{metric_label}: mean over seeds with 95% CI")
    if hue is not None:
        ax.legend(title=hue, fontsize=8)
    return ax


def weights_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Return the weights histories as a long table: method, dataset, seed, step, task, alpha.

    Task names come from ``config["aux_tasks"]`` when it lists one name per weight.
    """
    rows = []
    for record in records:
        for entry in record.weights_history:
            names = task_names(record, len(entry["weights"]))
            for name, alpha in zip(names, entry["weights"]):
                rows.append({"experiment": record.experiment, "dataset": record.dataset,
                             "method": record.method, "seed": record.seed,
                             "step": int(entry["step"]), "task": name, "alpha": float(alpha)})
    return pd.DataFrame(rows, columns=["experiment", "dataset", "method", "seed", "step", "task", "alpha"])


def plot_weights_over_time(frame: pd.DataFrame, title: str, ax: plt.Axes | None = None) -> plt.Axes:
    """Plot alpha per auxiliary task against the step; the band spans the seeds (95% CI)."""
    if frame.empty:
        raise ValueError("no weights history to plot; the runs recorded no weights_history")
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    sns.lineplot(data=frame, x="step", y="alpha", hue="task", errorbar=("ci", 95), seed=0, ax=ax)
    ax.set_title(title)
    ax.set_ylabel("task weight alpha")
    return ax
