"""Many semi-supervised runs: methods x seeds in run folders, and grid search picked by validation.

Every run lives in its own folder, ``RUNS/<dataset>-<labels>pc-<key>/<method>/seed<k>``, where
``key`` hashes every setting except the method and the seed. A finished folder returns its
stored record at once and an interrupted one resumes from its checkpoint, so a notebook can
be executed again after a crash or with more seeds. Changing any other setting gives a new
``key`` and so new runs. A change of code does not change the key: delete the folder to retrain.

Grid search trains one run per point of a grid on the simplex {alpha >= 0, sum alpha = K}
with the ``fixed`` weighter and every seed, and picks the point with the best mean
validation accuracy over the seeds. Its records are that point's runs, relabelled with the
method "gridsearch" and saved in a method folder of that name. The test set plays no part in
the choice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from arml_core.experiments.common import config_key as common_config_key
from arml_core.experiments.common import run_in_folder
from arml_core.experiments.ssl import SSLConfig, run
from arml_core.grid_search import simplex_grid
from arml_core.results import RunRecord, save_record

logger = logging.getLogger(__name__)

GRID_METHOD = "gridsearch"
METHODS = ("supervised", "uniform", "adaloss", "gradnorm", "cosine", "ol_aux", GRID_METHOD, "arml")
SELECTION_METRIC = "val_accuracy"
# Fields that do not change what a run computes, left out of the folder key.
# NOTE: method options are not part of the key, so two ARML runs with other options in one
# runs_dir need a label (see run_one); without one, run_in_folder rejects the second run.
_UNKEYED = frozenset({"method", "method_options", "seed", "progress", "checkpoint_every", "checkpoint_path"})


def config_key(config: SSLConfig) -> str:
    """Return 10 hex digits identifying every setting of ``config`` except method, seed and bookkeeping."""
    return common_config_key(config, ignore=_UNKEYED, length=10)


def run_folder(runs_dir: str | Path, config: SSLConfig, label: str | None = None) -> Path:
    """Return the folder of one run; ``label`` names the method folder (default: ``config.method``)."""
    group = f"{config.dataset}-{config.labels_per_class}pc-{config_key(config)}"
    return Path(runs_dir) / group / (label or config.method) / f"seed{config.seed}"


def grid_label(weights: Sequence[float]) -> str:
    """Return the folder name of a grid point, for example "fixed_1.5-0.5"."""
    return "fixed_" + "-".join(f"{w:g}" for w in weights)


def run_one(base: SSLConfig, method: str, seed: int, runs_dir: str | Path,
            method_options: Mapping[str, Any] | None = None, label: str | None = None) -> RunRecord:
    """Run (or load) one method and seed in its folder and return the finished record."""
    config = dataclasses.replace(base, method=method, seed=seed, method_options=dict(method_options or {}))
    return run_in_folder(run, config, run_folder(runs_dir, config, label))


@dataclass
class GridSearchRuns:
    """Every grid point's runs, the chosen point, and the chosen runs relabelled "gridsearch"."""

    points: dict[tuple[float, ...], list[RunRecord]]
    best_weights: tuple[float, ...]
    records: list[RunRecord]

    def summary(self) -> list[dict[str, Any]]:
        """Return one row per grid point: weights, mean validation and test accuracy, chosen or not."""
        rows = []
        for weights, records in self.points.items():
            rows.append({
                "weights": list(weights),
                "mean val accuracy": float(np.mean([r.metrics[SELECTION_METRIC] for r in records])),
                "mean test accuracy": float(np.mean([r.metrics["test_accuracy"] for r in records])),
                "chosen": weights == self.best_weights,
            })
        return rows


def select_grid_point(points: Mapping[tuple[float, ...], Sequence[RunRecord]],
                      metric: str = SELECTION_METRIC) -> tuple[float, ...]:
    """Return the grid point whose runs have the highest mean ``metric``; ties keep the earlier point.

    ``metric`` must be a validation metric: choosing by a test metric would tune on the test set.
    """
    if not points:
        raise ValueError("no grid points to choose from; build them with simplex_grid(num_aux, step)")
    if metric.startswith("test"):
        raise ValueError(f"grid search must select by a validation metric, not {metric!r}")
    best, best_value = None, -np.inf
    for weights, records in points.items():
        value = float(np.mean([r.metrics[metric] for r in records]))
        if value > best_value:
            best, best_value = weights, value
    return best


def _run_grid_point(base: SSLConfig, weights: tuple[float, ...], seed: int, runs_dir: str | Path) -> RunRecord:
    """Run one grid point; the all-ones point reuses the Uniform run, which computes the same steps."""
    if all(w == 1.0 for w in weights):
        record = run_one(base, "uniform", seed, runs_dir)
        return dataclasses.replace(record, method="fixed", config={**record.config, "method_options": {"weights": list(weights)}})
    return run_one(base, "fixed", seed, runs_dir, {"weights": list(weights)}, grid_label(weights))


def run_grid_search(base: SSLConfig, seeds: Sequence[int], runs_dir: str | Path, step: float) -> GridSearchRuns:
    """Run every point of ``simplex_grid(K, step)`` with every seed and pick by validation accuracy."""
    grid = simplex_grid(len(base.aux_tasks), step)
    points: dict[tuple[float, ...], list[RunRecord]] = {}
    for weights in tqdm(grid, desc="grid points", leave=False):
        points[weights] = [_run_grid_point(base, weights, seed, runs_dir) for seed in seeds]
    best = select_grid_point(points)
    logger.info("grid search chose weights %s by mean %s", best, SELECTION_METRIC)
    chosen = [
        dataclasses.replace(r, method=GRID_METHOD, config={**r.config, "grid_weights": list(best)})
        for r in points[best]
    ]
    for record in chosen:
        # Saved so that load_records finds grid search as a method of its own; rewritten on every
        # call because more seeds can change the choice.
        config = dataclasses.replace(base, seed=record.seed)
        save_record(record, run_folder(runs_dir, config, GRID_METHOD))
    return GridSearchRuns(points, best, chosen)


def run_methods(
    base: SSLConfig,
    methods: Sequence[str],
    seeds: Sequence[int],
    runs_dir: str | Path,
    method_options: Mapping[str, Mapping[str, Any]] | None = None,
    grid_step: float = 1.0,
) -> tuple[list[RunRecord], GridSearchRuns | None]:
    """Run every method with every seed into run folders; return the records and the grid search.

    ``methods`` are weighter names or "gridsearch" (see ``METHODS``); ``method_options`` maps
    a method to its weighter options. The grid-search result is None when it was not requested.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; valid names are: {', '.join(METHODS)}")
    options = method_options or {}
    records: list[RunRecord] = []
    grid = None
    for method in tqdm(methods, desc=f"{base.dataset}, {base.labels_per_class} labels/class"):
        if method == GRID_METHOD:
            grid = run_grid_search(base, seeds, runs_dir, grid_step)
            records.extend(grid.records)
            continue
        for seed in seeds:
            records.append(run_one(base, method, seed, runs_dir, options.get(method)))
    return records, grid
