"""Tables and figures of the multi-label chapter (Tables 2 and 3 of Shi et al., NeurIPS 2020).

Table 2 puts the main-task test error of each method beside the paper's CelebA numbers
(kept in ``arml_core.paper_results``).
Table 3 ranks the auxiliary attributes by ARML's weight at the checkpoint that model
selection picked (best validation accuracy) and puts the measured relatedness (mutual
information with the main attribute) and the paper's own lists beside them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from scipy.stats import spearmanr

from arml_core.paper_results import TABLE2, TABLE3_LEAST_RELATED, TABLE3_MAIN_TASK, TABLE3_MOST_RELATED
from arml_core.results import RunRecord, aggregate, weights_at_selection

PAPER_SETTING = "CelebA, 1% main labels, ResNet-18"
METHOD_LABELS = {
    "supervised": "Main task only", "uniform": "Baseline (uniform)", "adaloss": "AdaLoss",
    "gradnorm": "GradNorm", "cosine": "CosineSim", "ol_aux": "OL_AUX", "arml": "ARML",
}


def table2(records: Sequence[RunRecord], methods: Sequence[str]) -> pd.DataFrame:
    """Return main-task test error (%) per method: the paper's CelebA value beside this book's.

    This book's cell is "mean ± half-width of the 95% t-interval" over seeds, rounded to one
    decimal; the column name carries the setting and the number of seeds.
    """
    paper = {row.method: row.values[0] for row in TABLE2.rows}
    summary = aggregate(records, "test_error", by=("method",)).set_index("method")
    settings = sorted({str(r.config.get("setting", "")) for r in records})
    seeds = sorted({r.seed for r in records})
    book_column = f"this book: {'; '.join(settings)}, {len(seeds)} seeds"
    rows = []
    for method in methods:
        mean, spread = paper.get(method, (None, None))
        paper_cell = "not reported" if mean is None else f"{mean:.2f} ± {spread:.2f}"
        if method in summary.index:
            row = summary.loc[method]
            half = "no CI (1 seed)" if np.isnan(row["ci95"]) else f"{100 * row['ci95']:.1f}"
            book_cell = f"{100 * row['mean']:.1f} ± {half}"
        else:
            book_cell = "not run"
        rows.append({"method": METHOD_LABELS.get(method, method), f"paper: {PAPER_SETTING}": paper_cell,
                     book_column: book_cell})
    return pd.DataFrame(rows).set_index("method")


def error_summary(records: Sequence[RunRecord], methods: Sequence[str]) -> pd.DataFrame:
    """Return mean and ci95 of the test error in percent per method, in ``methods`` order."""
    summary = aggregate(records, "test_error", by=("method",)).set_index("method")
    summary = summary.reindex([m for m in methods if m in summary.index])
    frame = pd.DataFrame({"method": [METHOD_LABELS.get(m, m) for m in summary.index],
                          "mean": 100 * summary["mean"].to_numpy(), "ci95": 100 * summary["ci95"].to_numpy()})
    return frame


def weights_at_selected_step(record: RunRecord) -> np.ndarray:
    """Return the weights at the step validation selected, as a float array."""
    return np.asarray(weights_at_selection(record), dtype=float)


def arml_weight_ranking(
    records: Sequence[RunRecord], relatedness: pd.Series
) -> tuple[pd.DataFrame, float, float]:
    """Rank auxiliary attributes by ARML's mean weight over seeds at the selected checkpoints.

    ``relatedness`` maps each auxiliary attribute name to its mutual information with the main
    attribute. Returns the table (one row per attribute, highest weight first, with the
    weight, the weight at the end of training, the mutual information and its rank) and the
    Spearman correlation between weight and mutual information with its p-value.
    """
    runs = [r for r in records if r.method == "arml" and r.weights_history]
    if not runs:
        raise ValueError("no ARML run among the records; include 'arml' in methods")
    names = list(runs[0].config["aux_tasks"])
    selected = np.mean([weights_at_selected_step(r) for r in runs], axis=0)
    final = np.mean([r.weights_history[-1]["weights"] for r in runs], axis=0)
    mi = relatedness.reindex(names).to_numpy(dtype=float)
    frame = pd.DataFrame({"attribute": names, "alpha (selected)": selected, "alpha (end)": final,
                          "mutual information (nats)": mi})
    frame["MI rank"] = frame["mutual information (nats)"].rank(ascending=False, method="min").astype(int)
    frame = frame.sort_values("alpha (selected)", ascending=False, kind="stable").reset_index(drop=True)
    frame.index = pd.RangeIndex(1, len(frame) + 1, name="alpha rank")
    rho, p_value = spearmanr(selected, mi)
    return frame, float(rho), float(p_value)


def table3(ranking: pd.DataFrame, main_attribute: str, k: int = 5) -> pd.DataFrame:
    """Return the k highest- and k lowest-weighted attributes beside the paper's CelebA lists."""
    top, bottom = ranking.head(k), ranking.tail(k).iloc[::-1]

    def describe(rows: pd.DataFrame) -> list[str]:
        return [f"{name} (MI {mi:.3f}, rank {rank})" for name, mi, rank in
                zip(rows["attribute"], rows["mutual information (nats)"], rows["MI rank"])]

    return pd.DataFrame({
        f"paper, most related to {TABLE3_MAIN_TASK}": list(TABLE3_MOST_RELATED[:k]),
        f"this book, highest alpha for {main_attribute}": describe(top),
        f"paper, least related to {TABLE3_MAIN_TASK}": list(TABLE3_LEAST_RELATED[:k]),
        f"this book, lowest alpha for {main_attribute}": describe(bottom),
    }, index=pd.RangeIndex(1, k + 1, name="rank"))


def plot_weight_vs_relatedness(ranking: pd.DataFrame, title: str, ax: Axes | None = None) -> Axes:
    """Scatter ARML's weight at the selected checkpoint against the mutual information."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 4.0), constrained_layout=True)
    ax.scatter(ranking["mutual information (nats)"], ranking["alpha (selected)"])
    for _, row in ranking.iterrows():
        ax.annotate(row["attribute"], (row["mutual information (nats)"], row["alpha (selected)"]),
                    fontsize="x-small", xytext=(3, 2), textcoords="offset points")
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlabel("mutual information with the main attribute (nats)")
    ax.set_ylabel("ARML weight alpha_k")
    ax.set_title(title)
    return ax


def gradient_summary(history: dict, num_aux: int) -> pd.DataFrame:
    """Return |g_m|^2, the mean |g_k|^2 and the mean |b_k| per logged ARML step, indexed by step."""
    rows = []
    for step, diagnostics in zip(history["step"], history["diagnostics"]):
        if "main_grad_sq" not in diagnostics:
            continue
        rows.append({
            "step": step,
            "|g_m|^2": diagnostics["main_grad_sq"],
            "mean_k |g_k|^2": np.mean([diagnostics[f"aux_grad_sq_{k}"] for k in range(num_aux)]),
            "mean_k |b_k|": np.mean([abs(diagnostics[f"b_{k}"]) for k in range(num_aux)]),
        })
    return pd.DataFrame(rows).set_index("step")


def plot_gradient_summary(summary: pd.DataFrame, title: str, ax: Axes | None = None) -> Axes:
    """Plot the columns of ``gradient_summary`` over training on a symmetric-log scale."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.5), constrained_layout=True)
    for column in summary.columns:
        ax.plot(summary.index, summary[column], label=column)
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xlabel("iteration")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def mean_aux_grad_sq(history: dict, names: Sequence[str]) -> pd.Series:
    """Return each auxiliary task's |g_k|^2 averaged over the logged ARML steps, indexed by name."""
    rows = [[d[f"aux_grad_sq_{k}"] for k in range(len(names))] for d in history["diagnostics"] if "aux_grad_sq_0" in d]
    return pd.Series(np.mean(rows, axis=0), index=list(names), name="mean |g_k|^2")
