"""Figures of the semi-supervised chapter: the main loss, and test accuracy against labels per class.

The second is the CPU-scale counterpart of Figure 2 of Shi et al. (NeurIPS 2020).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes


def plot_data_requirement(
    frame: pd.DataFrame,
    title: str = "Test accuracy against labelled images per class",
    ax: Axes | None = None,
) -> Axes:
    """Plot test accuracy (%) against labels per class, one line per method, 95% CIs as error bars.

    ``frame`` has the columns of ``ssl_report.data_requirement``: method, labels_per_class,
    mean, ci95. A NaN interval (one seed) draws no error bar.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.5), constrained_layout=True)
    methods = list(dict.fromkeys(frame["method"]))
    palette = sns.color_palette("deep", len(methods))
    for color, method in zip(palette, methods):
        rows = frame[frame["method"] == method].sort_values("labels_per_class")
        errors = np.nan_to_num(rows["ci95"].to_numpy(dtype=float), nan=0.0)
        ax.errorbar(rows["labels_per_class"], rows["mean"], yerr=errors, marker="o", capsize=3,
                    color=color, label=method)
    ax.set_xscale("log")
    ticks = sorted(frame["labels_per_class"].unique())
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_main_loss(
    histories: dict[str, dict],
    title: str = "Main-task training loss on the labelled batches",
    ax: Axes | None = None,
) -> Axes:
    """Plot the logged main loss against the iteration (log scale), one line per run label.

    ``histories`` maps a label (for example "arml, seed 0") to a training history as stored
    in ``history.json``.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.5), constrained_layout=True)
    for label, history in histories.items():
        ax.plot(history["step"], history["main_loss"], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax
