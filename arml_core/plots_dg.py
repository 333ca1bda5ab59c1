"""Figures of the domain-generalisation chapters: accuracy against Nm, weights per data level.

Each function draws one titled figure and returns its Axes (or array of Axes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from arml_core.plots import plot_diagnostics, plot_weights


def plot_accuracy_vs_labels(summary: pd.DataFrame, title: str) -> Axes:
    """Plot test accuracy (%) against labels per class, one line per method (Figure 3 of Shi et al., NeurIPS 2020).

    ``summary`` has columns labels_per_class, method, "accuracy (%)", "ci95 (%)"; a CI of
    NaN (one seed) draws no error bar.
    """
    _, ax = plt.subplots(figsize=(6.0, 3.5), constrained_layout=True)
    methods = list(dict.fromkeys(summary["method"]))
    palette = sns.color_palette("deep", len(methods))
    for colour, method in zip(palette, methods):
        part = summary[summary["method"] == method].sort_values("labels_per_class")
        errors = np.nan_to_num(part["ci95 (%)"].to_numpy(dtype=float), nan=0.0)
        ax.errorbar(part["labels_per_class"], part["accuracy (%)"], yerr=errors, marker="o",
                    capsize=3, color=colour, label=method)
    ax.set_xlabel("labelled target images per class (Nm)")
    ax.set_ylabel("target test accuracy (%)")
    ax.set_xticks(sorted(set(summary["labels_per_class"])))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def plot_weights_by_level(histories: Mapping[str, Sequence[Mapping[str, Any]]], task_names: Sequence[str],
                          title: str) -> np.ndarray:
    """Plot the source weights over training, one panel per data level (Figure 4 of Shi et al., NeurIPS 2020)."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.0 * len(histories), 3.3), sharey=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (level, history) in zip(axes, histories.items()):
        plot_weights({level: history}, task_names, title=level, ax=ax)
    fig.suptitle(title)
    return axes


def plot_diagnostics_by_level(histories: Mapping[str, Mapping[str, Any]], keys: Sequence[str], title: str,
                              log_scale: bool = False) -> np.ndarray:
    """Plot logged weighter diagnostics (e.g. main_grad_sq, cos_k) over training, one panel per level."""
    fig, axes = plt.subplots(1, len(histories), figsize=(4.0 * len(histories), 3.3), sharey=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, (level, history) in zip(axes, histories.items()):
        plot_diagnostics(history, keys, title=level, log_scale=log_scale, ax=ax)
    fig.suptitle(title)
    return axes
