"""Data requirement of Bayesian linear regression under different Gaussian priors.

The main task is y = x^T theta* + noise with x ~ N(0, I_d), noise ~ N(0, noise_std^2) and
theta* drawn from the true prior p*. With n training pairs and a Gaussian prior N(m, S) the
posterior mean is

    theta_hat = (X^T X / noise_std^2 + S^{-1})^{-1} (X^T y / noise_std^2 + S^{-1} m).

Because x ~ N(0, I), the expected test error on a fresh pair is noise_std^2 plus the excess
error ||theta_hat - theta*||^2, which is what this module reports. A prior closer to p* (in
KL) needs fewer pairs to reach a given excess error; with p* itself the posterior mean is
Bayes-optimal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from arml_core.theory.gaussian import Gaussian


def posterior_mean(
    inputs: np.ndarray, targets: np.ndarray, noise_std: float, prior: Gaussian
) -> np.ndarray:
    """Return the posterior mean of theta for a batch of regression problems.

    ``inputs`` has shape (trials, n, d) and ``targets`` (trials, n); the result has shape
    (trials, d). ``prior`` is (mean (d,), covariance (d, d)); n = 0 returns the prior mean.
    """
    mean, cov = prior
    precision = np.linalg.inv(cov)
    scale = 1.0 / noise_std**2
    system = scale * np.einsum("tni,tnj->tij", inputs, inputs) + precision
    rhs = scale * np.einsum("tni,tn->ti", inputs, targets) + precision @ mean
    return np.linalg.solve(system, rhs[..., None])[..., 0]


@dataclass(frozen=True)
class DataRequirement:
    """Excess test error ||theta_hat - theta*||^2 against the number of main-task pairs.

    ``errors[name]`` and ``stderr[name]`` have shape (len(sample_sizes),): the mean over
    trials and its standard error, for the prior called ``name``.
    """

    sample_sizes: np.ndarray
    errors: dict[str, np.ndarray]
    stderr: dict[str, np.ndarray]

    def samples_to_reach(self, name: str, target_error: float) -> int | None:
        """Return the smallest sample size whose mean excess error is <= target, or None."""
        below = np.nonzero(self.errors[name] <= target_error)[0]
        return int(self.sample_sizes[below[0]]) if below.size else None


def data_requirement(
    priors: Mapping[str, Gaussian],
    true_prior: Gaussian,
    sample_sizes: Sequence[int],
    noise_std: float = 1.0,
    num_trials: int = 2000,
    seed: int = 0,
) -> DataRequirement:
    """Measure the excess test error of each prior's posterior mean for each sample size.

    All priors are evaluated on the same draws (theta*, inputs, noise), so differences
    between priors are not blurred by sampling noise. For each trial theta* ~ p*, inputs
    ~ N(0, I), and the first n pairs of one dataset of max(sample_sizes) pairs form the
    training set of size n.
    """
    sizes = np.asarray(sample_sizes, dtype=int)
    if sizes.ndim != 1 or sizes.size == 0 or sizes.min() < 0:
        raise ValueError(f"sample_sizes must be a non-empty list of non-negative integers, got {sample_sizes!r}")
    if not noise_std > 0 or num_trials < 2:
        raise ValueError(f"noise_std must be positive and num_trials >= 2, got {noise_std}, {num_trials}")
    true_mean, true_cov = true_prior
    dim = true_mean.shape[0]

    rng = np.random.default_rng(seed)
    thetas = rng.multivariate_normal(true_mean, true_cov, size=num_trials)
    inputs = rng.standard_normal((num_trials, int(sizes.max()), dim))
    targets = np.einsum("tni,ti->tn", inputs, thetas) + noise_std * rng.standard_normal(inputs.shape[:2])

    errors: dict[str, np.ndarray] = {}
    stderr: dict[str, np.ndarray] = {}
    for name, prior in priors.items():
        mean_row, se_row = [], []
        for n in sizes:
            estimate = posterior_mean(inputs[:, :n], targets[:, :n], noise_std, prior)
            excess = ((estimate - thetas) ** 2).sum(axis=1)
            mean_row.append(excess.mean())
            se_row.append(excess.std(ddof=1) / np.sqrt(num_trials))
        errors[name] = np.array(mean_row)
        stderr[name] = np.array(se_row)
    return DataRequirement(sample_sizes=sizes, errors=errors, stderr=stderr)
