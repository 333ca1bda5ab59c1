"""Projections of task weights onto the feasible set of ARML.

ARML searches alpha in the scaled simplex A = {alpha : alpha_k >= 0, sum_k alpha_k = K}.
The exact Euclidean projection follows the sort-based algorithm of Held, Wolfe and Crowder
(1974), as written out by Duchi et al. (2008), "Efficient projections onto the l1-ball".
"""

from __future__ import annotations

import torch


def project_to_simplex(alpha: torch.Tensor, total: float) -> torch.Tensor:
    """Return the Euclidean projection of a 1-D tensor onto {x >= 0, sum x = total}.

    The result is the unique minimiser of ||x - alpha||_2 over that set. It keeps the
    dtype and device of ``alpha`` and never modifies it in place.
    """
    if alpha.dim() != 1 or alpha.numel() == 0:
        raise ValueError(f"alpha must be a non-empty 1-D tensor, got shape {tuple(alpha.shape)}")
    if not total > 0:
        raise ValueError(f"total must be positive, got {total}")
    if not torch.isfinite(alpha).all():
        raise ValueError(f"alpha contains NaN or infinite values: {alpha.tolist()}")

    sorted_desc, _ = torch.sort(alpha, descending=True)
    cumulative = torch.cumsum(sorted_desc, dim=0) - total
    ranks = torch.arange(1, alpha.numel() + 1, dtype=alpha.dtype, device=alpha.device)
    # The support is the largest rho with sorted_desc[rho] > (cumsum[rho] - total) / rho.
    in_support = sorted_desc - cumulative / ranks > 0
    rho = int(torch.nonzero(in_support).max())
    shift = cumulative[rho] / (rho + 1)
    return torch.clamp(alpha - shift, min=0.0)


def shift_then_clamp(alpha: torch.Tensor, total: float) -> torch.Tensor:
    """Shift alpha so that it sums to ``total``, then clamp negative entries to zero.

    This is the cheaper, inexact rule of the ARML authors' public code. After the clamp the
    sum can exceed ``total``, and the result is not the nearest point of the simplex.
    """
    if alpha.dim() != 1 or alpha.numel() == 0:
        raise ValueError(f"alpha must be a non-empty 1-D tensor, got shape {tuple(alpha.shape)}")
    shifted = alpha - (alpha.sum() - total) / alpha.numel()
    return torch.clamp(shifted, min=0.0)


def project_nonnegative(alpha: torch.Tensor) -> torch.Tensor:
    """Return the projection onto the orthant {x >= 0}, used when K = 1."""
    return torch.clamp(alpha, min=0.0)
