"""Tables of the semi-supervised chapter, computed from run records and training histories.

Percentages are rounded here (errors and accuracies to 0.1 point, gradient statistics to two
significant digits) so that the printed tables are identical across executions of a seeded
CPU run. The numbers reported by Shi et al. (NeurIPS 2020) come from ``arml_core.paper_results``
and are labelled "paper".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from arml_core.experiments.ssl_runs import GridSearchRuns
from arml_core.paper_results import TABLE1
from arml_core.results import RunRecord, aggregate, t_interval_half_width, weights_at_step

PAPER_SETTINGS = ("paper: CIFAR-10, 4000 labels, WRN-28-2", "paper: SVHN, 1000 labels, WRN-28-2")


def _mean_ci(values: Sequence[float]) -> str:
    """Format values (percent) as "mean ± half-width (n seeds)" with one decimal."""
    if len(values) == 1:
        return f"{values[0]:.1f} (1 seed, no CI)"
    return f"{np.mean(values):.1f} ± {t_interval_half_width(values):.1f} ({len(values)} seeds)"


def table1(records: Sequence[RunRecord], book_setting: str) -> pd.DataFrame:
    """Return Table 1 of Shi et al. (NeurIPS 2020) as test error (%), with this book's runs beside it.

    Rows are the paper's methods that this book implements. A book cell is the mean over seeds
    with the half-width of the 95% Student-t interval, or "not run".
    """
    rows = {}
    for row in TABLE1.rows:
        if row.method is None:
            continue
        cells = {setting: f"{mean:.2f} ± {spread:.2f}" for setting, (mean, spread) in zip(PAPER_SETTINGS, row.values)}
        errors = [100.0 * r.metrics["test_error"] for r in records if r.method == row.method]
        cells[f"this book: {book_setting}"] = _mean_ci(errors) if errors else "not run"
        rows[row.label] = cells
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "test error (%), mean ± 95% CI"
    return frame


def error_frame(records: Sequence[RunRecord], methods: Sequence[str]) -> pd.DataFrame:
    """Return test error (%) per method (mean, ci95, n) in the order of ``methods``, for bar plots."""
    frame = aggregate(records, "test_error", by=("method",))
    frame = frame.set_index("method").reindex([m for m in methods if m in set(frame["method"])])
    frame[["mean", "ci95"]] *= 100.0
    return frame.reset_index()


def paired_difference(records: Sequence[RunRecord], method: str, reference: str,
                      metric: str = "test_error") -> dict[str, Any]:
    """Return the mean over shared seeds of ``metric(method) - metric(reference)`` in points, with its 95% CI.

    Runs are paired by seed, so the seed-to-seed spread of the split and initialisation cancels.
    """
    first = {r.seed: 100.0 * r.metrics[metric] for r in records if r.method == method}
    second = {r.seed: 100.0 * r.metrics[metric] for r in records if r.method == reference}
    seeds = sorted(set(first) & set(second))
    if not seeds:
        raise ValueError(f"no seed has runs of both {method!r} and {reference!r}")
    differences = [first[s] - second[s] for s in seeds]
    return {"mean": float(np.mean(differences)), "ci95": t_interval_half_width(differences), "n": len(seeds)}


def weights_at_selection(records: Sequence[RunRecord], task_names: Sequence[str]) -> pd.DataFrame:
    """Return, per run, the iteration model selection picked and the weights alpha_k logged there."""
    rows = []
    for record in records:
        step = int(record.metrics["best_step"])
        weights = weights_at_step(record.weights_history, step)
        rows.append({"method": record.method, "seed": record.seed, "selected iteration": step,
                     **{f"alpha {name}": round(w, 2) for name, w in zip(task_names, weights)}})
    return pd.DataFrame(rows)


def _significant(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}g}"


def diagnostics_summary(histories: Mapping[int, Mapping[str, Any]], task_names: Sequence[str],
                        fraction: float = 0.2) -> pd.DataFrame:
    """Summarise ARML's logged diagnostics early and late in training, per seed.

    For the first and the last ``fraction`` of the logged steps that carry diagnostics, returns
    the mean of |g_m|^2, and per task of |g_k|^2, b_k = g_k . g_m and cos(g_k, g_m), as strings
    with two significant digits.
    """
    rows = []
    for seed, history in histories.items():
        logged = [d for d in history["diagnostics"] if "main_grad_sq" in d]
        if not logged:
            continue
        count = max(1, int(round(fraction * len(logged))))
        for phase, part in (("first", logged[:count]), ("last", logged[-count:])):
            row = {"seed": seed, "phase": f"{phase} {int(fraction * 100)}%",
                   "|g_m|^2": _significant(np.mean([d["main_grad_sq"] for d in part]))}
            for k, name in enumerate(task_names):
                row[f"|g_{name}|^2"] = _significant(np.mean([d[f"aux_grad_sq_{k}"] for d in part]))
                row[f"b_{name}"] = _significant(np.mean([d[f"b_{k}"] for d in part]))
                row[f"cos_{name}"] = _significant(np.mean([d[f"cos_{k}"] for d in part]))
            rows.append(row)
    return pd.DataFrame(rows)


def data_requirement(records: Sequence[RunRecord]) -> pd.DataFrame:
    """Return test accuracy (%) per method and labels per class: mean, ci95 and n over seeds."""
    frame = aggregate(records, "test_accuracy", by=("method", "labels_per_class"))
    frame[["mean", "ci95"]] *= 100.0
    return frame.sort_values(["method", "labels_per_class"]).reset_index(drop=True)


def grid_table(grid: GridSearchRuns) -> pd.DataFrame:
    """Return the grid-search points as a table, accuracies as fractions rounded to 3 decimals."""
    return pd.DataFrame(grid.summary()).round(3)
