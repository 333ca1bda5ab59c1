"""Exact minimisation of a convex quadratic over the scaled simplex, and its KKT check.

ARML's weight objective is f(alpha) = alpha^T G alpha - 2 b^T alpha + c with G positive
semi-definite, minimised over A = {alpha >= 0, sum_k alpha_k = total}. For the handful of
auxiliary tasks in the theory chapter the minimiser is found exactly by enumerating the
faces of A: on each face the equality-constrained problem is a linear KKT system.
"""

from __future__ import annotations

import itertools

import numpy as np

MAX_ENUMERATED_TASKS = 15


def solve_simplex_qp(gram: np.ndarray, b: np.ndarray, total: float) -> np.ndarray:
    """Return argmin of alpha^T G alpha - 2 b^T alpha over {alpha >= 0, sum alpha = total}.

    ``gram`` is G, shape (K, K), symmetric positive semi-definite; ``b`` has shape (K,).
    Every face {alpha_k = 0 for k not in S} is tried: the stationary point of the face's
    affine hull solves [[2 G_SS, -1], [1^T, 0]] [alpha_S; nu] = [2 b_S; total]. Because the
    objective is convex, an optimum with the smallest support is the unique stationary point
    of its face, so the feasible candidate with the lowest objective is a global minimiser.
    Cost: 2^K - 1 small solves, so K is limited to ``MAX_ENUMERATED_TASKS``.
    """
    gram = np.asarray(gram, dtype=float)
    b = np.asarray(b, dtype=float)
    num = b.shape[0] if b.ndim == 1 else -1
    if b.ndim != 1 or gram.shape != (num, num):
        raise ValueError(f"gram must have shape (K, K) and b shape (K,), got {gram.shape} and {b.shape}")
    if num > MAX_ENUMERATED_TASKS:
        raise ValueError(
            f"exact enumeration handles at most {MAX_ENUMERATED_TASKS} tasks, got K={num}; "
            "use projected gradient with arml_core.weighting.project_to_simplex instead"
        )
    if not total > 0:
        raise ValueError(f"total must be positive, got {total}")

    best_alpha: np.ndarray | None = None
    best_value = np.inf
    scale = max(float(total), 1.0)
    for size in range(1, num + 1):
        for support in itertools.combinations(range(num), size):
            alpha = _face_stationary_point(gram, b, total, list(support))
            if alpha is None or alpha.min() < -1e-10 * scale:
                continue
            alpha = np.clip(alpha, 0.0, None)
            alpha *= total / alpha.sum()
            value = float(alpha @ gram @ alpha - 2.0 * b @ alpha)
            if best_alpha is None or value < best_value - 1e-14 * max(abs(best_value), 1.0):
                best_alpha, best_value = alpha, value
    if best_alpha is None:
        raise RuntimeError(f"no feasible face found for gram={gram.tolist()}, b={b.tolist()}")
    return best_alpha


def _face_stationary_point(
    gram: np.ndarray, b: np.ndarray, total: float, support: list[int]
) -> np.ndarray | None:
    size = len(support)
    system = np.zeros((size + 1, size + 1))
    system[:size, :size] = 2.0 * gram[np.ix_(support, support)]
    system[:size, size] = -1.0
    system[size, :size] = 1.0
    rhs = np.concatenate([2.0 * b[support], [total]])
    solution, *_ = np.linalg.lstsq(system, rhs, rcond=None)
    # lstsq returns a least-squares point when the system is inconsistent; such a point is
    # not stationary, so it is discarded.
    if not np.allclose(system @ solution, rhs, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(rhs).max())):
        return None
    alpha = np.zeros_like(b)
    alpha[support] = solution[:size]
    return alpha


def simplex_kkt_residual(alpha: np.ndarray, grad: np.ndarray, total: float) -> float:
    """Return how far ``alpha`` is from satisfying the KKT conditions on the scaled simplex.

    At a minimiser of a differentiable convex function over {alpha >= 0, sum = total}, some
    multiplier nu has grad_k = nu where alpha_k > 0 and grad_k >= nu where alpha_k = 0.
    The residual is the largest violation of these conditions and of feasibility, in the
    units of ``grad`` (feasibility in the units of ``alpha``). Entries below 1e-9 * total
    count as zero.
    """
    alpha = np.asarray(alpha, dtype=float)
    grad = np.asarray(grad, dtype=float)
    active = alpha > 1e-9 * total
    if not active.any():
        return float("inf")
    nu = grad[active].mean()
    stationarity = np.abs(grad[active] - nu).max()
    complementarity = max(0.0, float((nu - grad[~active]).max())) if (~active).any() else 0.0
    feasibility = max(abs(alpha.sum() - total), max(0.0, -float(alpha.min())))
    return float(max(stationarity, complementarity, feasibility))
