"""Figures of the Langevin chapter: sampler bias against step size, noise sizes, weights by algorithm.

Each function makes one titled matplotlib figure and returns it; nothing is shown or saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure


def plot_bias_against_step(
    step_fractions: Sequence[float], exact_bias: Sequence[float], measured_bias: Sequence[float], title: str
) -> Figure:
    """Plot the relative covariance error of the sampler against eps * lambda_max on log-log axes.

    ``exact_bias`` is ||C_eps - S|| / ||S|| from the Lyapunov solution and ``measured_bias`` the
    same with the chains' sample covariance in place of C_eps. A dotted line of slope 1 marks
    a bias proportional to the step size.
    """
    fig, ax = plt.subplots(figsize=(6, 4))
    colours = sns.color_palette("colorblind", 3)
    ax.loglog(step_fractions, exact_bias, marker="o", color=colours[0], label="exact, discretised chain (Lyapunov)")
    ax.loglog(step_fractions, measured_bias, marker="x", linestyle="none", markersize=9, color=colours[1],
              label="measured, simulated chains")
    reference = exact_bias[0] * np.asarray(step_fractions) / step_fractions[0]
    ax.loglog(step_fractions, reference, linestyle=":", color="gray", label="proportional to eps")
    ax.set(xlabel="step size eps * lambda_max(P)", ylabel="||C - S||_F / ||S||_F", title=title)
    ax.legend(fontsize="small")
    return fig


def plot_noise_sizes(frame: pd.DataFrame, title: str) -> Figure:
    """Plot, against the iteration, the injected noise std and the median per-parameter step noise.

    ``frame`` has the columns of ``arml_core.experiments.langevin_ssl.NOISE_COLUMNS``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = sns.color_palette("colorblind", 3)
    ax.semilogy(frame["iteration"], frame["injected_std"], marker="o", color=colours[0],
                label="injected noise sqrt(2 lr T)")
    ax.semilogy(frame["iteration"], frame["sgd_median"], marker="s", color=colours[1],
                label="minibatch noise of lr * g_B (median over parameters)")
    if frame["adam_median"].notna().all():
        ax.semilogy(frame["iteration"], frame["adam_median"], marker="^", color=colours[2],
                    label="minibatch noise of Adam's step (median over parameters)")
    ax.set(xlabel="iteration", ylabel="standard deviation per parameter and step", title=title)
    ax.legend(fontsize="small")
    return fig


def plot_weights_by_algorithm(
    histories: Mapping[int, Mapping[int, Mapping[str, Any]]], task_names: Sequence[str], title: str
) -> Figure:
    """Plot each task's weight over training, colour by algorithm and line style by seed.

    ``histories`` maps the algorithm (1 or 2) to {seed: training history}. One panel per task.
    """
    fig, axes = plt.subplots(1, len(task_names), figsize=(5.0 * len(task_names), 3.8), squeeze=False,
                             sharey=True, constrained_layout=True)
    colours = dict(zip(sorted(histories), sns.color_palette("colorblind", len(histories))))
    styles = ["-", "--", ":", "-."]
    for k, (ax, name) in enumerate(zip(axes[0], task_names)):
        for algorithm, runs in histories.items():
            for index, (seed, history) in enumerate(sorted(runs.items())):
                weights = np.array(history["weights"])
                ax.plot(history["step"], weights[:, k], color=colours[algorithm],
                        linestyle=styles[index % len(styles)], label=f"Algorithm {algorithm}, seed {seed}")
        ax.set(xlabel="iteration", title=f"alpha of {name}")
    axes[0][0].set_ylabel("task weight")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle(title)
    return fig
