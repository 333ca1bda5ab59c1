"""Figures of the theory chapter: Gaussian contours, weight trajectories, KL gaps, data requirement.

Each function makes one titled matplotlib figure and returns it; nothing is shown or saved.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from arml_core.theory.gaussian import Gaussian
from arml_core.theory.linear_regression import DataRequirement
from arml_core.theory.sharpness import SharpnessSweep


def _mahalanobis_grid(gaussian: Gaussian, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    mean, cov = gaussian
    grid = np.stack(np.meshgrid(xs, ys), axis=-1) - mean
    return np.sqrt(np.einsum("...i,ij,...j->...", grid, np.linalg.inv(cov), grid))


def plot_gaussian_contours(
    distributions: Mapping[str, Gaussian],
    title: str,
    extent: tuple[float, float, float, float] = (-2.0, 3.0, -1.0, 3.0),
    theta_star: np.ndarray | None = None,
) -> Figure:
    """Draw the 1- and 2-sigma contours of each 2-D Gaussian, one colour per name.

    ``extent`` is (xmin, xmax, ymin, ymax) of theta; ``theta_star`` is marked with a star.
    """
    fig, ax = plt.subplots(figsize=(6, 5))
    xs = np.linspace(extent[0], extent[1], 300)
    ys = np.linspace(extent[2], extent[3], 300)
    colours = sns.color_palette("colorblind", len(distributions))
    handles = []
    for colour, (name, gaussian) in zip(colours, distributions.items()):
        ax.contour(xs, ys, _mahalanobis_grid(gaussian, xs, ys), levels=[1.0, 2.0], colors=[colour],
                   linestyles=["solid", "dashed"])
        handles.append(Line2D([], [], color=colour, label=name))
    if theta_star is not None:
        ax.plot(*theta_star, marker="*", markersize=14, color="black", linestyle="none")
        handles.append(Line2D([], [], marker="*", color="black", linestyle="none", label="theta*"))
    ax.set(xlabel="theta_1", ylabel="theta_2", title=title, aspect="equal")
    ax.legend(handles=handles, loc="upper left", fontsize="small")
    return fig


def plot_weight_trajectory(
    alphas: np.ndarray, alpha_hat: np.ndarray, alpha_star: np.ndarray, title: str
) -> Figure:
    """Plot alpha_k over steps (shape (steps, K)) with the fixed point and alpha* as lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    colours = sns.color_palette("colorblind", alphas.shape[1])
    for k, colour in enumerate(colours):
        ax.plot(alphas[:, k], color=colour, linewidth=0.8, label=f"alpha_{k + 1} (ARML + Langevin)")
        ax.axhline(alpha_hat[k], color=colour, linestyle="--")
        ax.axhline(alpha_star[k], color=colour, linestyle=":")
    ax.plot([], [], color="gray", linestyle="--", label="fixed point alpha_hat")
    ax.plot([], [], color="gray", linestyle=":", label="KL optimum alpha*")
    ax.set(xlabel="SGD step", ylabel="task weight", title=title)
    ax.legend(fontsize="small", ncol=2)
    return fig


def plot_sharpness_sweep(sweep: SharpnessSweep, title: str) -> Figure:
    """Plot KL(p* || p_alpha) at alpha*, alpha_hat and uniform weights against the main covariance scale."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(sweep.scales, sweep.kl_star, marker="o", label="alpha* (KL optimum)")
    ax.plot(sweep.scales, sweep.kl_hat, marker="s", label="alpha_hat (ARML fixed point)")
    ax.plot(sweep.scales, sweep.kl_uniform, marker="^", label="uniform weights")
    ax.set(xscale="log", yscale="log", xlabel="main-likelihood covariance scale s (broader ->)",
           ylabel="KL(p* || p_alpha) [nats]", title=title)
    ax.legend(fontsize="small")
    return fig


def plot_data_requirement(result: DataRequirement, title: str) -> Figure:
    """Plot the mean excess test error (with 2 standard errors) against the sample size per prior."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, errors in result.errors.items():
        band = 2.0 * result.stderr[name]
        ax.plot(result.sample_sizes, errors, marker="o", label=name)
        ax.fill_between(result.sample_sizes, errors - band, errors + band, alpha=0.2)
    ax.set(xscale="symlog", yscale="log", xlabel="main-task training pairs n",
           ylabel="excess test error ||theta_hat - theta*||^2", title=title)
    ax.legend(fontsize="small")
    return fig
