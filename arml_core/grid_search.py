"""Grid search over fixed auxiliary weights: the expensive reference ARML is compared with.

Every grid point is a weight vector on the scaled simplex {alpha >= 0, sum alpha = K}, the set
ARML searches. Each point is one full training run with the ``FixedWeights`` weighter. A run is
scored by a validation metric where higher is better, such as accuracy. Negate an error first.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from arml_core.weighting.uniform import FixedWeights

logger = logging.getLogger(__name__)

WeightVector = tuple[float, ...]


@dataclass
class GridSearchResult:
    """Every grid point with its validation metric, and the best point (higher is better)."""

    results: list[tuple[WeightVector, float]]
    best_weights: WeightVector
    best_metric: float


def simplex_grid(num_aux: int, step: float) -> list[WeightVector]:
    """Return every weight vector with entries in {0, step, 2 step, ...} that sums to num_aux.

    ``num_aux / step`` must be a whole number n. The grid then has C(n + K - 1, K - 1) points,
    listed in decreasing lexicographic order.
    """
    if not isinstance(num_aux, int) or num_aux < 1:
        raise ValueError(f"num_aux must be a positive integer, got {num_aux!r}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    ratio = num_aux / step
    units = round(ratio)
    if units < 1 or not math.isclose(ratio, units, rel_tol=1e-9, abs_tol=1e-9):
        raise ValueError(
            f"step={step} does not divide num_aux={num_aux} into a whole number of steps; "
            f"choose step = num_aux / n for a positive integer n, for example {num_aux / max(units, 1)}"
        )

    points: list[WeightVector] = []
    for counts in _compositions(units, num_aux):
        points.append(tuple(count * num_aux / units for count in counts))
    return points


def _compositions(total: int, parts: int) -> list[tuple[int, ...]]:
    """Return all tuples of ``parts`` non-negative integers summing to ``total``, largest first."""
    if parts == 1:
        return [(total,)]
    result = []
    for first in range(total, -1, -1):
        for rest in _compositions(total - first, parts - 1):
            result.append((first, *rest))
    return result


def fixed_weighter(weights: Sequence[float]) -> FixedWeights:
    """Build the ``FixedWeights`` weighter for one grid point."""
    return FixedWeights(len(weights), weights)


def grid_search(
    grid: Sequence[Sequence[float]], run_fn: Callable[[WeightVector], float]
) -> GridSearchResult:
    """Call ``run_fn(weights)`` for every grid point and return all metrics and the best point.

    ``run_fn`` trains with fixed weights (see ``fixed_weighter``) and returns a validation
    metric where higher is better. A NaN metric is kept in ``results`` but never chosen as best;
    ties keep the earlier point.
    """
    points = [tuple(float(w) for w in point) for point in grid]
    if not points:
        raise ValueError("grid is empty: build one with simplex_grid(num_aux, step)")

    results: list[tuple[WeightVector, float]] = []
    best: tuple[WeightVector, float] | None = None
    for weights in tqdm(points, desc="grid search"):
        metric = float(run_fn(weights))
        results.append((weights, metric))
        logger.info("grid point %s: validation metric %.6g", weights, metric)
        if math.isnan(metric):
            logger.warning("grid point %s returned a NaN metric; it is never chosen as best", weights)
            continue
        if best is None or metric > best[1]:
            best = (weights, metric)

    if best is None:
        raise ValueError(f"every one of the {len(points)} grid points returned a NaN metric")
    return GridSearchResult(results=results, best_weights=best[0], best_metric=best[1])
