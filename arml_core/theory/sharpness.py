"""Gap between ARML's fixed point and the KL-optimal weights as the main likelihood widens.

Theorem 1 of Shi et al. (NeurIPS 2020) bounds KL(p* || p_alpha_hat) - KL(p* || p_alpha*) by a
term that grows with gamma, the mass of p_m p_alpha outside the support of the true prior.
A Gaussian p* has no compact support, so this module takes S to be the ellipse within
``radius`` Mahalanobis units of p*'s mean and reports the fraction of p_J(alpha_hat) outside
it: Z(S_bar; alpha) / Z(alpha), the weight of the off-support term of eq. A14. Scaling the
main-task covariance by s moves that fraction, and the sweep tabulates it beside the KL gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from arml_core.theory.gaussian import Gaussian, GaussianToy


@dataclass(frozen=True)
class SharpnessSweep:
    """KL values and weights per covariance scale; arrays of shape (S,) or (S, K)."""

    scales: np.ndarray
    alpha_star: np.ndarray
    alpha_hat: np.ndarray
    kl_star: np.ndarray
    kl_hat: np.ndarray
    kl_uniform: np.ndarray
    outside_fraction: np.ndarray

    @property
    def gap(self) -> np.ndarray:
        """KL(p* || p_alpha_hat) - KL(p* || p_alpha*), in nats; never negative."""
        return self.kl_hat - self.kl_star

    @property
    def worse_than_uniform(self) -> np.ndarray:
        """True where ARML's fixed point gives a larger KL than uniform weights."""
        return self.kl_hat > self.kl_uniform


def mass_outside_ellipse(
    gaussian: Gaussian, centre: np.ndarray, shape_cov: np.ndarray, radius: float,
    num_samples: int = 20000, seed: int = 0,
) -> float:
    """Estimate P(theta outside {(x - centre)^T shape_cov^{-1} (x - centre) <= radius^2}) by Monte Carlo.

    theta ~ N(gaussian); the standard error is at most 0.5 / sqrt(num_samples). The fixed
    seed makes the estimate deterministic.
    """
    mean, cov = gaussian
    samples = np.random.default_rng(seed).multivariate_normal(mean, cov, size=num_samples)
    diff = samples - centre
    distance_sq = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(shape_cov), diff)
    return float((distance_sq > radius**2).mean())


def sweep_main_scale(
    toy: GaussianToy,
    scales: Sequence[float],
    tol: float = 1e-8,
    max_iter: int = 20000,
    damping: float = 1.0,
    radius: float = 2.0,
) -> SharpnessSweep:
    """Compute alpha*, alpha_hat, their KL divergences and p_J's mass outside p*'s region per scale.

    alpha* does not depend on the main likelihood, so it is computed once. Each fixed point
    starts from uniform weights; ``tol``, ``max_iter`` and ``damping`` are passed to
    ``GaussianToy.arml_fixed_point``, which raises if one does not converge. ``radius`` sets
    the region S of p* (Mahalanobis units) for ``outside_fraction``.
    """
    scales_array = np.asarray(scales, dtype=float)
    alpha_star = toy.optimal_weights()
    uniform = np.ones(toy.num_aux)
    hats, outside = [], []
    for scale in scales_array:
        scaled = toy.with_main_cov_scale(float(scale))
        alpha = scaled.arml_fixed_point(tol=tol, max_iter=max_iter, damping=damping).alpha
        hats.append(alpha)
        outside.append(mass_outside_ellipse(scaled.joint(alpha), toy.prior_mean, toy.prior_cov, radius))
    alpha_hat = np.array(hats)
    return SharpnessSweep(
        scales=scales_array,
        alpha_star=np.tile(alpha_star, (len(scales_array), 1)),
        alpha_hat=alpha_hat,
        kl_star=np.full(len(scales_array), toy.kl_to_surrogate(alpha_star)),
        kl_hat=np.array([toy.kl_to_surrogate(alpha) for alpha in alpha_hat]),
        kl_uniform=np.full(len(scales_array), toy.kl_to_surrogate(uniform)),
        outside_fraction=np.array(outside),
    )
