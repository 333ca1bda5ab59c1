"""ARML's argument in closed form when every likelihood is Gaussian in theta.

Each task likelihood is p(T|theta) proportional to N(theta | mu, Sigma), with precision
Lambda = Sigma^{-1}. Then every distribution in the argument of Shi et al. (NeurIPS 2020,
section 2 and appendix A) is Gaussian:

- surrogate prior p_alpha ~ prod_k p(T_k|theta)^alpha_k: precision sum_k alpha_k Lambda_k,
  mean Lambda_alpha^{-1} sum_k alpha_k Lambda_k mu_k;
- joint p_J ~ p(T_m|theta) p_alpha(theta): precision Lambda_m + Lambda_alpha;
- scores are affine, grad log p(T_k|theta) = Lambda_k (mu_k - theta).

So the KL divergence to the true prior (eq. A5), the information needed (eq. A2), the
surrogate objective (eq. A7) and ARML's score objective (eq. A11) all have closed forms.
All arrays are numpy float64; theta has dimension d and there are K auxiliary tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from arml_core.theory.simplex_qp import simplex_kkt_residual, solve_simplex_qp

Gaussian = tuple[np.ndarray, np.ndarray]
"""A Gaussian as (mean of shape (d,), covariance of shape (d, d))."""


def as_covariance(name: str, cov: np.ndarray, dim: int) -> np.ndarray:
    """Return ``cov`` as a float array after checking shape (dim, dim), symmetry and definiteness."""
    cov = np.asarray(cov, dtype=float)
    if cov.shape != (dim, dim):
        raise ValueError(f"{name} must have shape ({dim}, {dim}), got {cov.shape}")
    if not np.isfinite(cov).all():
        raise ValueError(f"{name} contains NaN or infinite values: {cov.tolist()}")
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-12 * np.abs(cov).max()):
        raise ValueError(f"{name} must be symmetric, got {cov.tolist()}; pass (C + C.T) / 2")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        eigenvalues = np.linalg.eigvalsh(cov)
        raise ValueError(
            f"{name} must be positive definite, but its smallest eigenvalue is {eigenvalues.min():.3g}; "
            "add a multiple of the identity"
        ) from None
    return 0.5 * (cov + cov.T)


def as_mean(name: str, mean: np.ndarray, dim: int) -> np.ndarray:
    """Return ``mean`` as a float array after checking shape (dim,) and finiteness."""
    mean = np.asarray(mean, dtype=float)
    if mean.shape != (dim,):
        raise ValueError(f"{name} must have shape ({dim},), got {mean.shape}")
    if not np.isfinite(mean).all():
        raise ValueError(f"{name} contains NaN or infinite values: {mean.tolist()}")
    return mean


def kl_gaussian(mean0: np.ndarray, cov0: np.ndarray, mean1: np.ndarray, cov1: np.ndarray) -> float:
    """Return KL(N(mean0, cov0) || N(mean1, cov1)) in nats."""
    dim = mean0.shape[0]
    precision1 = np.linalg.inv(cov1)
    diff = mean1 - mean0
    _, logdet0 = np.linalg.slogdet(cov0)
    _, logdet1 = np.linalg.slogdet(cov1)
    return 0.5 * float(np.trace(precision1 @ cov0) + diff @ precision1 @ diff - dim + logdet1 - logdet0)


def gaussian_entropy(cov: np.ndarray) -> float:
    """Return the differential entropy of N(., cov) in nats, 0.5 log det(2 pi e cov)."""
    _, logdet = np.linalg.slogdet(2.0 * np.pi * np.e * cov)
    return 0.5 * float(logdet)


def expected_log_density(q: Gaussian, p: Gaussian) -> float:
    """Return E_{theta ~ q} log N(theta | p) for Gaussians q and p, in nats."""
    (mean_q, cov_q), (mean_p, cov_p) = q, p
    precision = np.linalg.inv(cov_p)
    diff = mean_q - mean_p
    _, logdet = np.linalg.slogdet(2.0 * np.pi * cov_p)
    return -0.5 * float(logdet + np.trace(precision @ cov_q) + diff @ precision @ diff)


@dataclass(frozen=True)
class FixedPoint:
    """Result of ``GaussianToy.arml_fixed_point``: the weights, iterations used and last change."""

    alpha: np.ndarray
    iterations: int
    change: float


class FixedPointError(RuntimeError):
    """Raised when the ARML fixed-point iteration does not converge within its budget."""


class GaussianToy:
    """A main task, K auxiliary tasks and a true prior, all Gaussian in theta.

    Args:
        main_mean, main_cov: p(T_m|theta) ~ N(theta | main_mean, main_cov); shapes (d,), (d, d).
        aux_means, aux_covs: p(T_k|theta) ~ N(theta | aux_means[k], aux_covs[k]); shapes
            (K, d) and (K, d, d).
        prior_mean, prior_cov: the true prior p* = N(prior_mean, prior_cov).
    Covariances must be symmetric positive definite. The object is immutable.
    """

    def __init__(
        self,
        main_mean: np.ndarray,
        main_cov: np.ndarray,
        aux_means: np.ndarray,
        aux_covs: np.ndarray,
        prior_mean: np.ndarray,
        prior_cov: np.ndarray,
    ) -> None:
        main_mean = np.asarray(main_mean, dtype=float)
        if main_mean.ndim != 1 or main_mean.size == 0:
            raise ValueError(f"main_mean must be a non-empty vector of shape (d,), got {main_mean.shape}")
        dim = main_mean.shape[0]
        aux_means = np.asarray(aux_means, dtype=float)
        aux_covs = np.asarray(aux_covs, dtype=float)
        if aux_means.ndim != 2 or aux_means.shape[1] != dim or aux_means.shape[0] == 0:
            raise ValueError(f"aux_means must have shape (K, {dim}) with K >= 1, got {aux_means.shape}")
        num_aux = aux_means.shape[0]
        if aux_covs.shape != (num_aux, dim, dim):
            raise ValueError(f"aux_covs must have shape ({num_aux}, {dim}, {dim}), got {aux_covs.shape}")

        self.dim = dim
        self.num_aux = num_aux
        self.main_mean = as_mean("main_mean", main_mean, dim)
        self.main_cov = as_covariance("main_cov", main_cov, dim)
        self.aux_means = np.stack([as_mean(f"aux_means[{k}]", aux_means[k], dim) for k in range(num_aux)])
        self.aux_covs = np.stack([as_covariance(f"aux_covs[{k}]", aux_covs[k], dim) for k in range(num_aux)])
        self.prior_mean = as_mean("prior_mean", prior_mean, dim)
        self.prior_cov = as_covariance("prior_cov", prior_cov, dim)
        self.main_precision = np.linalg.inv(self.main_cov)
        self.aux_precisions = np.linalg.inv(self.aux_covs)

    def with_main_cov_scale(self, scale: float) -> GaussianToy:
        """Return a copy whose main-task likelihood covariance is multiplied by ``scale`` > 0."""
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        return GaussianToy(
            self.main_mean, scale * self.main_cov, self.aux_means, self.aux_covs,
            self.prior_mean, self.prior_cov,
        )

    def _check_alpha(self, alpha: np.ndarray) -> np.ndarray:
        alpha = np.asarray(alpha, dtype=float)
        if alpha.shape != (self.num_aux,) or not np.isfinite(alpha).all():
            raise ValueError(f"alpha must be a finite vector of shape ({self.num_aux},), got {alpha!r}")
        return alpha

    def surrogate_prior(self, alpha: np.ndarray) -> Gaussian:
        """Return p_alpha ~ prod_k p(T_k|theta)^alpha_k, normalised, as (mean, covariance).

        Raises ValueError when sum_k alpha_k Lambda_k is not positive definite, in which case
        p_alpha cannot be normalised.
        """
        alpha = self._check_alpha(alpha)
        precision = np.einsum("k,kij->ij", alpha, self.aux_precisions)
        try:
            np.linalg.cholesky(precision)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"alpha={alpha.tolist()} gives a surrogate prior that cannot be normalised: "
                "sum_k alpha_k Sigma_k^{-1} must be positive definite; give some task a positive weight"
            ) from None
        shift = np.einsum("k,kij,kj->i", alpha, self.aux_precisions, self.aux_means)
        cov = np.linalg.inv(precision)
        return cov @ shift, 0.5 * (cov + cov.T)

    def joint(self, alpha: np.ndarray) -> Gaussian:
        """Return p_J ~ p(T_m|theta) p_alpha(theta), normalised, as (mean, covariance)."""
        prior_mean, prior_cov = self.surrogate_prior(alpha)
        prior_precision = np.linalg.inv(prior_cov)
        cov = np.linalg.inv(self.main_precision + prior_precision)
        mean = cov @ (self.main_precision @ self.main_mean + prior_precision @ prior_mean)
        return mean, 0.5 * (cov + cov.T)

    def kl_to_surrogate(self, alpha: np.ndarray) -> float:
        """Return KL(p* || p_alpha) in nats (eq. A5)."""
        mean, cov = self.surrogate_prior(alpha)
        return kl_gaussian(self.prior_mean, self.prior_cov, mean, cov)

    def kl_gradient(self, alpha: np.ndarray) -> np.ndarray:
        """Return d KL(p* || p_alpha) / d alpha, shape (K,).

        With log p_alpha = sum_k alpha_k log p_k - log Z(alpha), the derivative in alpha_k is
        E_{p_alpha}[log p_k] - E_{p*}[log p_k], so it is half the difference of the expected
        Mahalanobis distances (theta - mu_k)^T Lambda_k (theta - mu_k) under p* and p_alpha.
        """
        mean, cov = self.surrogate_prior(alpha)
        grad = np.empty(self.num_aux)
        for k in range(self.num_aux):
            precision, centre = self.aux_precisions[k], self.aux_means[k]
            under_true = np.trace(precision @ self.prior_cov) + (self.prior_mean - centre) @ precision @ (self.prior_mean - centre)
            under_surrogate = np.trace(precision @ cov) + (mean - centre) @ precision @ (mean - centre)
            grad[k] = 0.5 * (under_true - under_surrogate)
        return grad

    def information_needed(self, alpha: np.ndarray) -> float:
        """Return KL(p* || p_alpha) + H(p*) in nats (eq. A2 with p = p_alpha)."""
        return self.kl_to_surrogate(alpha) + gaussian_entropy(self.prior_cov)

    def surrogate_objective(self, alpha: np.ndarray) -> float:
        """Return E_{p_J} log(p_m / p_alpha) in nats (eq. A7), with p_m = N(main_mean, main_cov)."""
        joint = self.joint(alpha)
        main = (self.main_mean, self.main_cov)
        return expected_log_density(joint, main) - expected_log_density(joint, self.surrogate_prior(alpha))

    def score_quadratic(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Return (G, b, c) with E_q ||s_m - sum_k alpha_k s_k||^2 = alpha^T G alpha - 2 b^T alpha + c.

        Here s_i(theta) = grad log p(T_i|theta) = Lambda_i (mu_i - theta) and q has the given
        mean (d,) and covariance (d, d). Each score is affine in theta, so for any two tasks
        E_q[s_i . s_j] = tr(Lambda_i Lambda_j Cov_q) + s_i(m)^T s_j(m), which uses only the first
        two moments of q. Expanding the square gives G_kj = E_q[s_k . s_j], b_k = E_q[s_k . s_m]
        and c = E_q[s_m . s_m]; G is a Gram matrix in L2(q), so it is positive semi-definite and
        the objective is a convex quadratic in alpha.
        """
        mean = as_mean("mean", mean, self.dim)
        cov = as_covariance("cov", cov, self.dim)
        precisions = np.concatenate([self.main_precision[None], self.aux_precisions])
        centres = np.concatenate([self.main_mean[None], self.aux_means])
        scores_at_mean = np.einsum("tij,tj->ti", precisions, centres - mean)
        inner = np.einsum("sij,tji->st", precisions @ cov, precisions) + scores_at_mean @ scores_at_mean.T
        return inner[1:, 1:], inner[1:, 0], float(inner[0, 0])

    def score_objective(self, alpha: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
        """Return E_q ||grad log p(T_m|theta) - sum_k alpha_k grad log p(T_k|theta)||^2 (eq. A11)."""
        alpha = self._check_alpha(alpha)
        gram, b, c = self.score_quadratic(mean, cov)
        return float(alpha @ gram @ alpha - 2.0 * b @ alpha + c)

    def optimal_weights(self, tol: float = 1e-12) -> np.ndarray:
        """Return alpha* = argmin of KL(p* || p_alpha) over {alpha >= 0, sum alpha = K}.

        The KL is convex in alpha: log Z(alpha) is a log-partition function of an exponential
        family with natural parameter alpha, and the rest is linear. SLSQP with the analytic
        gradient solves it; the result is checked against the KKT conditions (1e-6).
        """
        total = float(self.num_aux)
        if self.num_aux == 1:
            return np.ones(1)
        start = np.full(self.num_aux, 1.0)
        result = minimize(
            self.kl_to_surrogate, start, jac=self.kl_gradient, method="SLSQP",
            bounds=[(0.0, total)] * self.num_aux,
            constraints=[{"type": "eq", "fun": lambda a: a.sum() - total, "jac": lambda a: np.ones_like(a)}],
            options={"ftol": tol, "maxiter": 1000},
        )
        alpha = np.clip(result.x, 0.0, None)
        alpha *= total / alpha.sum()
        residual = simplex_kkt_residual(alpha, self.kl_gradient(alpha), total)
        if residual > 1e-6:
            raise RuntimeError(
                f"optimal_weights did not reach the KKT conditions: residual {residual:.2e} at "
                f"alpha={alpha.tolist()} (scipy: {result.message}); lower tol or rescale the covariances"
            )
        return alpha

    def arml_qp(self, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Return (G, b, c) of the score objective under p_J(alpha), the samples ARML sees."""
        return self.score_quadratic(*self.joint(alpha))

    def arml_fixed_point(
        self,
        alpha_init: np.ndarray | None = None,
        tol: float = 1e-9,
        max_iter: int = 10000,
        damping: float = 1.0,
    ) -> FixedPoint:
        """Return alpha_hat with alpha_hat = argmin_simplex score_objective(., p_J(alpha_hat)).

        ARML samples theta from p_J(alpha) and steps alpha with those samples, so a stationary
        alpha minimises the score objective under the distribution it induces. This iterates
        alpha <- (1 - damping) alpha + damping * QP(alpha), each QP solved exactly, until no
        entry moves by more than ``tol``. Raises FixedPointError after ``max_iter`` iterations.
        """
        if not 0 < damping <= 1:
            raise ValueError(f"damping must be in (0, 1], got {damping}")
        total = float(self.num_aux)
        alpha = np.ones(self.num_aux) if alpha_init is None else self._check_alpha(alpha_init).copy()
        change = np.inf
        for iteration in range(1, max_iter + 1):
            gram, b, _ = self.arml_qp(alpha)
            target = solve_simplex_qp(gram, b, total)
            updated = (1.0 - damping) * alpha + damping * target
            change = float(np.abs(updated - alpha).max())
            alpha = updated
            if change <= tol:
                return FixedPoint(alpha=alpha, iterations=iteration, change=change)
        raise FixedPointError(
            f"ARML fixed point did not converge in {max_iter} iterations: last change {change:.3g} "
            f"> tol {tol:.3g} at alpha={alpha.tolist()}; pass damping < 1 (for example 0.5) or raise max_iter"
        )
