"""Figures shared by the chapters: task weights over training, diagnostics and bars with CIs.

Each function draws one titled figure (or into a given Axes) and returns the Axes, so a
notebook cell makes one figure with one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 3.5)) -> Axes:
    if ax is not None:
        return ax
    _, new_ax = plt.subplots(figsize=figsize, constrained_layout=True)
    return new_ax


def plot_weights(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    task_names: Sequence[str],
    title: str = "Auxiliary task weights over training",
    ax: Axes | None = None,
) -> Axes:
    """Plot alpha_k against the iteration for one or more runs.

    ``runs`` maps a label (for example "seed 0") to a weights history, the list of
    ``{"step": int, "weights": [float, ...]}`` stored in each run record. Colours mark the task,
    line styles the run.
    """
    ax = _axes(ax)
    palette = sns.color_palette("deep", len(task_names))
    styles = ["-", "--", ":", "-."]
    for run_index, (label, history) in enumerate(runs.items()):
        steps = [entry["step"] for entry in history]
        weights = np.array([entry["weights"] for entry in history])
        for k, name in enumerate(task_names):
            ax.plot(
                steps, weights[:, k], color=palette[k], linestyle=styles[run_index % len(styles)],
                label=f"{name} ({label})" if len(runs) > 1 else name,
            )
    ax.set_xlabel("iteration")
    ax.set_ylabel("weight alpha_k")
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2 if len(task_names) * len(runs) > 4 else 1)
    return ax


def plot_weights_heatmap(
    history: Sequence[Mapping[str, Any]],
    task_names: Sequence[str],
    title: str = "Auxiliary task weights over training",
    ax: Axes | None = None,
) -> Axes:
    """Show many task weights over training as a heatmap: one row per task, sorted by final weight."""
    steps = [entry["step"] for entry in history]
    weights = np.array([entry["weights"] for entry in history]).T
    order = np.argsort(-weights[:, -1])
    ax = _axes(ax, figsize=(7.0, max(3.0, 0.18 * len(task_names) + 1.0)))
    sns.heatmap(
        weights[order], ax=ax, cmap="viridis", cbar_kws={"label": "alpha_k"},
        yticklabels=[task_names[i] for i in order], xticklabels=False,
    )
    ax.set_xlabel(f"iteration ({steps[0]} to {steps[-1]})")
    ax.set_title(title)
    return ax


def plot_diagnostics(
    history: Mapping[str, Any],
    keys: Sequence[str],
    title: str = "Gradient diagnostics of ARML",
    log_scale: bool = False,
    ax: Axes | None = None,
) -> Axes:
    """Plot diagnostic series (for example main_grad_sq, b_0, cos_1) logged by the weighter."""
    ax = _axes(ax)
    for key in keys:
        points = [
            (step, diag[key]) for step, diag in zip(history["step"], history["diagnostics"]) if key in diag
        ]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, label=key)
    if log_scale:
        ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("iteration")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_bars_with_ci(
    table: Any,
    value: str = "mean",
    half_width: str = "ci95",
    label: str = "method",
    title: str = "Test error with 95% confidence intervals",
    ylabel: str = "test error (%)",
    ax: Axes | None = None,
) -> Axes:
    """Draw one bar per row of a DataFrame with ``value`` and ``half_width`` columns (NaN CI: no bar)."""
    ax = _axes(ax)
    positions = np.arange(len(table))
    errors = np.nan_to_num(table[half_width].to_numpy(dtype=float), nan=0.0)
    ax.bar(positions, table[value], yerr=errors, capsize=4, color=sns.color_palette("deep", len(table)))
    ax.set_xticks(positions, table[label], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax
