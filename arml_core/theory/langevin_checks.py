"""Checks of the Langevin sampling step of ARML (eq. A9) and of the noise sizes of Table 5.

Unadjusted Langevin dynamics on a Gaussian target. The chain
theta' = theta - eps * grad U(theta) + sqrt(2 eps T) xi, with U(theta) = 0.5 (theta - m)^T P
(theta - m) and xi ~ N(0, I), is a linear Gaussian recursion. Its stationary law is
N(m, C) where C solves the discrete Lyapunov equation

    (I - eps P) C (I - eps P)^T + 2 eps T I = C.

The target at temperature T is N(m, T S) with S = P^-1. When everything commutes,
C = T S (I - eps P / 2)^-1, so the variance along an eigenvalue lambda of P is inflated by
1 / (1 - eps lambda / 2): the discretisation bias of the unadjusted sampler, first order in eps.
The chain is stable only for eps < 2 / lambda_max(P).

Minibatch noise against injected noise. Table 5 of Shi et al. (NeurIPS 2020) compares the
standard deviation of the stochastic-gradient noise with that of the injected noise
N(0, 2 eps). Here both are measured per parameter, in units of a parameter change per step.
The gradient noise is the standard deviation of lr * (g_B - E[g_B]) over minibatch draws B,
and the injected noise is sqrt(2 lr T). Under Adam the step is not lr * g, so ``adam_step``
gives the change that ``torch.optim.Adam`` would apply for a given gradient, and its spread
over draws is the noise of the actual step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import solve_discrete_lyapunov

from arml_core.langevin import add_langevin_noise
from arml_core.theory.gaussian import as_covariance, as_mean


def _check_step(precision: np.ndarray, step_size: float, temperature: float) -> None:
    """Raise ValueError unless 0 < step_size < 2 / lambda_max(precision) and temperature > 0."""
    largest = float(np.linalg.eigvalsh(precision).max())
    if not 0.0 < step_size < 2.0 / largest:
        raise ValueError(
            f"step_size={step_size} gives an unstable Langevin chain: it must lie in (0, 2 / lambda_max) = "
            f"(0, {2.0 / largest:.4g}) for the largest precision eigenvalue {largest:.4g}; use a smaller step"
        )
    if not temperature > 0.0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def ula_stationary_covariance(cov: np.ndarray, step_size: float, temperature: float = 1.0) -> np.ndarray:
    """Return the stationary covariance C (d, d) of unadjusted Langevin on the target N(m, cov).

    C solves (I - eps P) C (I - eps P)^T + 2 eps T I = C with P = cov^-1 and eps = step_size,
    and does not depend on the target mean. Raises ValueError when eps >= 2 / lambda_max(P).
    """
    cov = as_covariance("cov", cov, np.shape(cov)[0])
    precision = np.linalg.inv(cov)
    _check_step(precision, step_size, temperature)
    dim = cov.shape[0]
    transition = np.eye(dim) - step_size * precision
    solution = solve_discrete_lyapunov(transition, 2.0 * step_size * temperature * np.eye(dim))
    return 0.5 * (solution + solution.T)


def ula_commuting_covariance(cov: np.ndarray, step_size: float, temperature: float = 1.0) -> np.ndarray:
    """Return T S (I - eps P / 2)^-1 with S = cov and P = S^-1, the closed form of the stationary covariance.

    With isotropic noise the transition I - eps P commutes with P, so the Lyapunov equation
    reduces to C = 2 eps T (I - (I - eps P)^2)^-1, which is this formula. It is therefore exact
    for every Gaussian target and serves as an independent check of ``ula_stationary_covariance``.
    """
    cov = as_covariance("cov", cov, np.shape(cov)[0])
    precision = np.linalg.inv(cov)
    _check_step(precision, step_size, temperature)
    inflation = np.linalg.inv(np.eye(cov.shape[0]) - 0.5 * step_size * precision)
    result = temperature * cov @ inflation
    return 0.5 * (result + result.T)


@dataclass(frozen=True)
class ChainMoments:
    """Sample moments of Langevin chains: ``mean`` (d,), ``cov`` (d, d), from ``num_samples`` states."""

    mean: np.ndarray
    cov: np.ndarray
    num_samples: int


def run_langevin_chains(
    mean: np.ndarray,
    cov: np.ndarray,
    step_size: float,
    num_steps: int,
    num_chains: int,
    burn_in: float = 0.5,
    temperature: float = 1.0,
    seed: int = 0,
) -> ChainMoments:
    """Run independent Langevin chains on N(mean, cov) and return the moments after burn-in.

    Each step is one ``torch.optim.SGD`` step on U(theta) = 0.5 (theta - mean)^T P (theta - mean)
    followed by ``arml_core.langevin.add_langevin_noise``, the same calls that ARML's
    Algorithm 1 makes. The chains start from draws of the target N(mean, T cov), so the burn-in
    only has to move them from the target's covariance to the chain's stationary covariance. The
    moments pool every chain over the steps after the first ``burn_in`` fraction. Computed in
    float64 with the noise generator seeded by ``seed``, so the result is reproducible on CPU.
    """
    dim = np.shape(mean)[0]
    mean = as_mean("mean", mean, dim)
    cov = as_covariance("cov", cov, dim)
    precision = np.linalg.inv(cov)
    _check_step(precision, step_size, temperature)
    if num_steps < 1 or num_chains < 1:
        raise ValueError(f"num_steps and num_chains must be positive, got {num_steps} and {num_chains}")
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in must be a fraction in [0, 1), got {burn_in}")

    generator = torch.Generator().manual_seed(seed)
    centre = torch.as_tensor(mean, dtype=torch.float64)
    precision_t = torch.as_tensor(precision, dtype=torch.float64)
    cholesky = torch.as_tensor(np.linalg.cholesky(cov), dtype=torch.float64)
    noise = torch.randn(num_chains, dim, generator=generator, dtype=torch.float64)
    start = centre + temperature**0.5 * noise @ cholesky.T
    theta = torch.nn.Parameter(start)
    optimizer = torch.optim.SGD([theta], lr=step_size)

    first_kept = int(burn_in * num_steps)
    total = torch.zeros(dim, dtype=torch.float64)
    total_outer = torch.zeros(dim, dim, dtype=torch.float64)
    for step in range(num_steps):
        optimizer.zero_grad(set_to_none=True)
        diff = theta - centre
        energy = 0.5 * ((diff @ precision_t) * diff).sum()
        energy.backward()
        optimizer.step()
        add_langevin_noise([theta], step_size, temperature, generator)
        if step >= first_kept:
            # Centred at the target mean, so the sums do not cancel when the mean is large.
            kept = theta.detach() - centre
            total += kept.sum(dim=0)
            total_outer += kept.T @ kept

    count = num_chains * (num_steps - first_kept)
    offset = total / count
    sample_cov = total_outer / count - torch.outer(offset, offset)
    return ChainMoments(mean=(centre + offset).numpy(), cov=sample_cov.numpy(), num_samples=count)


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Return ||estimate - reference||_F / ||reference||_F."""
    return float(np.linalg.norm(estimate - reference) / np.linalg.norm(reference))


class RunningMoments:
    """Welford's running mean and variance of a stream of equally shaped tensors, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self._sum_sq: torch.Tensor | None = None

    def update(self, value: torch.Tensor) -> None:
        """Add one observation; its shape must match the previous ones."""
        value = value.detach().to(torch.float64)
        self.count += 1
        if self.mean is None:
            self.mean = value.clone()
            self._sum_sq = torch.zeros_like(value)
            return
        delta = value - self.mean
        self.mean += delta / self.count
        self._sum_sq += delta * (value - self.mean)

    def std(self) -> torch.Tensor:
        """Return the sample standard deviation (ddof 1) per entry; needs two observations or more."""
        if self.count < 2 or self._sum_sq is None:
            raise ValueError(f"a standard deviation needs at least 2 observations, got {self.count}")
        return (self._sum_sq / (self.count - 1)).sqrt()


def adam_step(
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.Tensor:
    """Return the parameter change that ``torch.optim.Adam`` makes for ``grad`` from a given state.

    ``exp_avg`` and ``exp_avg_sq`` are Adam's moment estimates before the step and ``step`` is the
    1-based index of the step about to be taken. The formula is Adam without weight decay,
    AMSGrad or maximize: -lr * m_hat / (sqrt(v_hat) + eps). Nothing is mutated.
    """
    if step < 1:
        raise ValueError(f"step is the 1-based index of the step about to be taken, got {step}")
    beta1, beta2 = betas
    first = beta1 * exp_avg + (1.0 - beta1) * grad
    second = beta2 * exp_avg_sq + (1.0 - beta2) * grad * grad
    first_hat = first / (1.0 - beta1**step)
    second_hat = second / (1.0 - beta2**step)
    return -lr * first_hat / (second_hat.sqrt() + eps)


@dataclass(frozen=True)
class AdamState:
    """Adam's state for a list of parameters, flattened: moments (P,) and the next 1-based step."""

    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    next_step: int
    lr: float
    betas: tuple[float, float]
    eps: float


def flat_adam_state(optimizer: torch.optim.Adam, params: Sequence[torch.Tensor]) -> AdamState:
    """Return the Adam state of ``params`` flattened in their order; a fresh optimizer gives zeros.

    Raises ValueError when the optimizer uses weight decay, AMSGrad or maximize, which
    ``adam_step`` does not model, or when the parameters sit in groups with different settings.
    """
    groups = [g for g in optimizer.param_groups if any(p is q for p in g["params"] for q in params)]
    settings = {(g["lr"], tuple(g["betas"]), g["eps"], g["weight_decay"], g["amsgrad"], g["maximize"]) for g in groups}
    if len(settings) != 1:
        raise ValueError(f"params must share one Adam parameter group, found settings {sorted(settings)}")
    lr, betas, eps, weight_decay, amsgrad, maximize = settings.pop()
    if weight_decay or amsgrad or maximize:
        raise ValueError(
            f"adam_step models plain Adam only, got weight_decay={weight_decay}, amsgrad={amsgrad}, "
            f"maximize={maximize}; measure with weight_decay=0"
        )
    firsts, seconds, steps = [], [], set()
    for param in params:
        state = optimizer.state.get(param, {})
        firsts.append(state["exp_avg"].flatten() if state else torch.zeros(param.numel(), device=param.device))
        seconds.append(state["exp_avg_sq"].flatten() if state else torch.zeros(param.numel(), device=param.device))
        steps.add(int(state["step"]) if state else 0)
    if len(steps) != 1:
        raise ValueError(f"params have taken different numbers of Adam steps: {sorted(steps)}")
    return AdamState(torch.cat(firsts), torch.cat(seconds), steps.pop() + 1, float(lr), tuple(betas), float(eps))


@dataclass(frozen=True)
class StepNoise:
    """Per-parameter standard deviations over minibatch draws, each of shape (P,).

    ``gradient`` is the std of lr * g_B, the plain SGD step. ``adam`` is the std of the change
    Adam would make from its current state, or None when no Adam state was given.
    """

    gradient: torch.Tensor
    adam: torch.Tensor | None
    num_draws: int


def measure_step_noise(
    draw_gradient: Callable[[], torch.Tensor],
    num_draws: int,
    lr: float,
    adam: AdamState | None = None,
) -> StepNoise:
    """Return the spread of the SGD step lr * g_B (and of Adam's step) over ``num_draws`` minibatches.

    ``draw_gradient()`` returns the flat gradient (P,) of the training loss on a fresh minibatch.
    The spread is taken around the mean of the draws, which estimates the expected minibatch
    gradient (the full-batch gradient when the loss is a mean over examples).
    """
    if num_draws < 2:
        raise ValueError(f"num_draws must be at least 2 to estimate a spread, got {num_draws}")
    gradient_moments, adam_moments = RunningMoments(), RunningMoments()
    for _ in range(num_draws):
        grad = draw_gradient().detach()
        gradient_moments.update(lr * grad)
        if adam is not None:
            change = adam_step(grad, adam.exp_avg, adam.exp_avg_sq, adam.next_step, adam.lr, adam.betas, adam.eps)
            adam_moments.update(change)
    return StepNoise(gradient_moments.std(), adam_moments.std() if adam is not None else None, num_draws)


def exact_minibatch_std(per_example_grads: torch.Tensor, batch_size: int, lr: float = 1.0) -> torch.Tensor:
    """Return the exact std (P,) of lr * (mean gradient of a minibatch drawn with replacement).

    ``per_example_grads`` is (N, P). A batch of B examples drawn uniformly with replacement has
    per-coordinate variance Var_N(g_i) / B, with the population variance over the N examples.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    variance = per_example_grads.to(torch.float64).var(dim=0, unbiased=False)
    return lr * (variance / batch_size).sqrt()


@dataclass(frozen=True)
class StepSizeResult:
    """One step size of ``sweep_step_sizes``: the exact stationary and the measured covariance."""

    step_fraction: float
    step_size: float
    exact_cov: np.ndarray
    measured: ChainMoments


def sweep_step_sizes(
    mean: np.ndarray, cov: np.ndarray, step_fractions: Sequence[float], num_steps: int, num_chains: int,
    burn_in: float = 0.5, seed: int = 0,
) -> list[StepSizeResult]:
    """Run ``run_langevin_chains`` at eps = fraction / lambda_max(cov^-1) for each fraction (temperature 1)."""
    largest = float(np.linalg.eigvalsh(np.linalg.inv(cov)).max())
    results = []
    for fraction in step_fractions:
        step = fraction / largest
        measured = run_langevin_chains(mean, cov, step, num_steps, num_chains, burn_in, seed=seed)
        results.append(StepSizeResult(fraction, step, ula_stationary_covariance(cov, step), measured))
    return results
