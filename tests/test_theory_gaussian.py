"""Tests of the closed-form Gaussian theory: every formula against Monte Carlo or finite differences."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.linear_model import Ridge

from arml_core.plots_theory import (
    plot_data_requirement, plot_gaussian_contours, plot_sharpness_sweep, plot_weight_trajectory,
)
from arml_core.theory import (
    FixedPointError, GaussianToy, gaussian_entropy, kl_gaussian, simplex_kkt_residual, solve_simplex_qp,
)
from arml_core.theory.examples import ORDINARY_PRIOR, example_toy
from arml_core.theory.langevin_toy import run_arml_langevin
from arml_core.theory.linear_regression import data_requirement, posterior_mean
from arml_core.theory.sharpness import mass_outside_ellipse, sweep_main_scale


def random_spd(rng: np.random.Generator, dim: int, low: float = 0.2) -> np.ndarray:
    factor = rng.standard_normal((dim, dim))
    return factor @ factor.T / dim + low * np.eye(dim)


def random_toy(seed: int, dim: int = 2, num_aux: int = 3) -> GaussianToy:
    rng = np.random.default_rng(seed)
    return GaussianToy(
        main_mean=rng.standard_normal(dim),
        main_cov=random_spd(rng, dim),
        aux_means=rng.standard_normal((num_aux, dim)),
        aux_covs=np.stack([random_spd(rng, dim) for _ in range(num_aux)]),
        prior_mean=0.3 * rng.standard_normal(dim),
        prior_cov=0.2 * random_spd(rng, dim),
    )


def log_density(points: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return multivariate_normal(mean, cov).logpdf(points)


def simplex_grid(num: int, total: float, steps: int) -> np.ndarray:
    rows = [c for c in itertools.product(range(steps + 1), repeat=num - 1) if sum(c) <= steps]
    grid = np.array([[*c, steps - sum(c)] for c in rows], dtype=float)
    return grid * total / steps


# Validation


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"main_cov": [[1.0, 0.5], [0.0, 1.0]]}, "main_cov must be symmetric"),
        ({"prior_cov": [[1.0, 0.0], [0.0, -1.0]]}, "prior_cov must be positive definite"),
        ({"aux_means": np.zeros((2, 3))}, r"aux_means must have shape \(K, 2\)"),
        ({"aux_covs": np.stack([np.eye(2)] * 2)}, r"aux_covs must have shape \(3, 2, 2\)"),
        ({"prior_mean": [0.0, np.nan]}, "prior_mean contains NaN"),
    ],
)
def test_toy_rejects_invalid_inputs(override: dict, message: str) -> None:
    arguments = {
        "main_mean": np.zeros(2), "main_cov": np.eye(2), "aux_means": np.zeros((3, 2)),
        "aux_covs": np.stack([np.eye(2)] * 3), "prior_mean": np.zeros(2), "prior_cov": np.eye(2),
    }
    arguments.update(override)
    with pytest.raises(ValueError, match=message):
        GaussianToy(**arguments)


def test_surrogate_prior_rejects_zero_weights() -> None:
    with pytest.raises(ValueError, match="cannot be normalised"):
        random_toy(0).surrogate_prior(np.zeros(3))


# Closed forms


def test_surrogate_prior_shared_covariance() -> None:
    # With a shared covariance Sigma the product is N(sum_k alpha_k mu_k / K, Sigma / K) when sum alpha = K.
    rng = np.random.default_rng(1)
    cov = random_spd(rng, 2)
    means = rng.standard_normal((3, 2))
    toy = GaussianToy(np.zeros(2), np.eye(2), means, np.stack([cov] * 3), np.zeros(2), np.eye(2))
    alpha = np.array([0.5, 2.0, 0.5])
    mean, covariance = toy.surrogate_prior(alpha)
    np.testing.assert_allclose(mean, alpha @ means / 3, atol=1e-12)
    np.testing.assert_allclose(covariance, cov / 3, atol=1e-12)


def test_surrogate_and_joint_match_products() -> None:
    # log p_alpha - sum_k alpha_k log N_k must be the same constant at every theta; likewise for p_J.
    toy = random_toy(2)
    alpha = np.array([0.4, 1.7, 0.9])
    points = np.random.default_rng(3).standard_normal((5, 2))
    product = sum(alpha[k] * log_density(points, toy.aux_means[k], toy.aux_covs[k]) for k in range(3))
    difference = log_density(points, *toy.surrogate_prior(alpha)) - product
    np.testing.assert_allclose(difference, difference[0], atol=1e-10)

    joint_product = product + log_density(points, toy.main_mean, toy.main_cov)
    difference = log_density(points, *toy.joint(alpha)) - joint_product
    np.testing.assert_allclose(difference, difference[0], atol=1e-10)


def test_kl_matches_monte_carlo() -> None:
    toy = random_toy(4)
    alpha = np.array([1.2, 0.3, 1.5])
    samples = np.random.default_rng(5).multivariate_normal(toy.prior_mean, toy.prior_cov, size=200_000)
    values = log_density(samples, toy.prior_mean, toy.prior_cov) - log_density(samples, *toy.surrogate_prior(alpha))
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - toy.kl_to_surrogate(alpha)) < 4 * standard_error


def test_kl_gaussian_of_identical_is_zero() -> None:
    rng = np.random.default_rng(6)
    mean, cov = rng.standard_normal(3), random_spd(rng, 3)
    assert abs(kl_gaussian(mean, cov, mean, cov)) < 1e-12


def test_information_needed_adds_entropy() -> None:
    toy = random_toy(7)
    alpha = np.ones(3)
    entropy = multivariate_normal(toy.prior_mean, toy.prior_cov).entropy()
    assert abs(gaussian_entropy(toy.prior_cov) - entropy) < 1e-12
    assert abs(toy.information_needed(alpha) - toy.kl_to_surrogate(alpha) - entropy) < 1e-12


def test_kl_gradient_matches_finite_differences() -> None:
    toy = random_toy(8)
    alpha = np.array([0.8, 1.1, 1.1])
    step = 1e-6
    numeric = np.array([
        (toy.kl_to_surrogate(alpha + step * e) - toy.kl_to_surrogate(alpha - step * e)) / (2 * step)
        for e in np.eye(3)
    ])
    np.testing.assert_allclose(toy.kl_gradient(alpha), numeric, rtol=1e-6, atol=1e-7)


def test_surrogate_objective_matches_monte_carlo() -> None:
    toy = random_toy(9)
    alpha = np.array([1.0, 0.5, 1.5])
    joint = toy.joint(alpha)
    samples = np.random.default_rng(10).multivariate_normal(*joint, size=200_000)
    values = log_density(samples, toy.main_mean, toy.main_cov) - log_density(samples, *toy.surrogate_prior(alpha))
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - toy.surrogate_objective(alpha)) < 4 * standard_error


def test_score_objective_matches_monte_carlo() -> None:
    toy = random_toy(11)
    alpha = np.array([0.2, 2.0, 0.8])
    rng = np.random.default_rng(12)
    mean, cov = rng.standard_normal(2), random_spd(rng, 2)
    theta = rng.multivariate_normal(mean, cov, size=200_000)
    residual = (toy.main_mean - theta) @ toy.main_precision
    for k in range(3):
        residual -= alpha[k] * (toy.aux_means[k] - theta) @ toy.aux_precisions[k]
    values = (residual**2).sum(axis=1)
    standard_error = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - toy.score_objective(alpha, mean, cov)) < 4 * standard_error


def test_score_quadratic_gradient_and_convexity() -> None:
    toy = random_toy(13)
    mean, cov = toy.joint(np.ones(3))
    gram, b, _ = toy.score_quadratic(mean, cov)
    assert np.linalg.eigvalsh(gram).min() > -1e-10
    alpha, step = np.array([0.3, 1.4, 1.3]), 1e-5
    numeric = np.array([
        (toy.score_objective(alpha + step * e, mean, cov) - toy.score_objective(alpha - step * e, mean, cov)) / (2 * step)
        for e in np.eye(3)
    ])
    np.testing.assert_allclose(2 * (gram @ alpha - b), numeric, rtol=1e-6, atol=1e-6)


def test_kl_is_convex_on_simplex() -> None:
    toy = random_toy(14)
    rng = np.random.default_rng(15)
    for _ in range(200):
        first, second = 3 * rng.dirichlet(np.ones(3)), 3 * rng.dirichlet(np.ones(3))
        weight = rng.uniform()
        middle = toy.kl_to_surrogate(weight * first + (1 - weight) * second)
        chord = weight * toy.kl_to_surrogate(first) + (1 - weight) * toy.kl_to_surrogate(second)
        assert middle <= chord + 1e-10


# Optimisation


def test_simplex_qp_matches_slsqp() -> None:
    rng = np.random.default_rng(16)
    for num in (2, 3, 5):
        factor = rng.standard_normal((num, num + 1))
        gram, b = factor @ factor.T, 3 * rng.standard_normal(num)
        exact = solve_simplex_qp(gram, b, float(num))
        result = minimize(
            lambda a: a @ gram @ a - 2 * b @ a, np.ones(num), method="SLSQP",
            bounds=[(0, num)] * num, constraints=[{"type": "eq", "fun": lambda a: a.sum() - num}],
            options={"ftol": 1e-14},
        )
        assert exact @ gram @ exact - 2 * b @ exact <= result.fun + 1e-9
        assert simplex_kkt_residual(exact, 2 * (gram @ exact - b), float(num)) < 1e-9


def test_simplex_qp_singular_gram() -> None:
    # Two identical tasks make G singular; any split between them is optimal, the value is what counts.
    direction = np.array([1.0, 1.0, 0.0])
    gram = np.outer(direction, direction) + np.diag([0.0, 0.0, 1.0])
    b = np.array([2.0, 2.0, -1.0])
    alpha = solve_simplex_qp(gram, b, 3.0)
    assert alpha[2] == pytest.approx(0.0, abs=1e-12)
    assert alpha[:2].sum() == pytest.approx(3.0)


def test_optimal_weights_beat_grid_k2() -> None:
    toy = random_toy(17, num_aux=2)
    alpha = toy.optimal_weights()
    grid = simplex_grid(2, 2.0, 2000)
    values = np.array([toy.kl_to_surrogate(a) for a in grid])
    assert toy.kl_to_surrogate(alpha) <= values.min() + 1e-12
    assert np.abs(alpha - grid[values.argmin()]).max() <= 2 * 2.0 / 2000
    assert simplex_kkt_residual(alpha, toy.kl_gradient(alpha), 2.0) < 1e-6


def test_optimal_weights_beat_grid_k3() -> None:
    toy = example_toy()
    alpha = toy.optimal_weights()
    grid = simplex_grid(3, 3.0, 60)
    values = np.array([toy.kl_to_surrogate(a) for a in grid])
    assert toy.kl_to_surrogate(alpha) <= values.min() + 1e-12
    assert np.abs(alpha - grid[values.argmin()]).max() <= 3.0 / 60
    assert simplex_kkt_residual(alpha, toy.kl_gradient(alpha), 3.0) < 1e-6


def test_fixed_point_satisfies_kkt() -> None:
    for toy in (example_toy(), random_toy(18)):
        result = toy.arml_fixed_point()
        gram, b, _ = toy.arml_qp(result.alpha)
        assert result.change <= 1e-9
        assert simplex_kkt_residual(result.alpha, 2 * (gram @ result.alpha - b), 3.0) < 1e-6
        np.testing.assert_allclose(solve_simplex_qp(gram, b, 3.0), result.alpha, atol=1e-7)


def test_fixed_point_raises_when_budget_too_small() -> None:
    with pytest.raises(FixedPointError, match="did not converge in 2 iterations"):
        example_toy().arml_fixed_point(max_iter=2)


def test_sweep_gap_is_nonnegative() -> None:
    sweep = sweep_main_scale(example_toy(), [0.1, 1.0, 10.0])
    assert (sweep.gap >= -1e-9).all()
    np.testing.assert_allclose(sweep.alpha_hat.sum(axis=1), 3.0)
    # A very broad main likelihood has a near-zero score, so ARML prefers the broadest task (task 3).
    assert sweep.worse_than_uniform[-1]


def test_mass_outside_ellipse_chi_square() -> None:
    # For theta ~ N(m, C) and the ellipse of C around m in 2-D, P(outside radius r) = exp(-r^2 / 2).
    rng = np.random.default_rng(21)
    mean, cov = rng.standard_normal(2), random_spd(rng, 2)
    estimate = mass_outside_ellipse((mean, cov), mean, cov, radius=1.5, num_samples=40000)
    expected = np.exp(-1.5**2 / 2)
    assert abs(estimate - expected) < 4 * np.sqrt(expected * (1 - expected) / 40000)


def test_sweep_outside_fraction_grows_with_width() -> None:
    sweep = sweep_main_scale(example_toy(), [1.0, 100.0])
    assert sweep.outside_fraction[1] > sweep.outside_fraction[0]


# Langevin ARML on the toy


def test_langevin_samples_joint_with_fixed_weights() -> None:
    toy = GaussianToy([0.5], [[1.0]], [[1.0], [-1.0]], [[[2.0]], [[1.0]]], [0.0], [[1.0]])
    run = run_arml_langevin(toy, steps=3000, lr=0.05, arml_lr=0.0, seed=1)
    mean, cov = toy.joint(np.ones(2))
    samples = run.thetas[500:, 0]
    # Successive samples are correlated over about 1 / (lr * precision) = 8 steps.
    effective = len(samples) / 16
    assert abs(samples.mean() - mean[0]) < 4 * np.sqrt(cov[0, 0] / effective)
    assert samples.var() == pytest.approx(cov[0, 0], rel=0.25)
    np.testing.assert_array_equal(run.alphas, 1.0)


def test_langevin_run_is_deterministic() -> None:
    first = run_arml_langevin(example_toy(), steps=100, seed=3)
    second = run_arml_langevin(example_toy(), steps=100, seed=3)
    np.testing.assert_array_equal(first.alphas, second.alphas)
    np.testing.assert_allclose(first.alphas.sum(axis=1), 3.0, rtol=1e-6)


def test_langevin_rejects_large_step() -> None:
    with pytest.raises(ValueError, match="too large for Langevin sampling"):
        run_arml_langevin(example_toy(), steps=10, lr=1.0)


# Linear regression


def test_posterior_mean_matches_ridge() -> None:
    rng = np.random.default_rng(19)
    inputs, targets = rng.standard_normal((1, 20, 3)), rng.standard_normal((1, 20))
    noise_std, prior_var = 0.5, 2.0
    estimate = posterior_mean(inputs, targets, noise_std, (np.zeros(3), prior_var * np.eye(3)))
    ridge = Ridge(alpha=noise_std**2 / prior_var, fit_intercept=False).fit(inputs[0], targets[0])
    np.testing.assert_allclose(estimate[0], ridge.coef_, atol=1e-10)


def test_data_requirement_closed_forms() -> None:
    toy = example_toy()
    true_prior = (toy.prior_mean, toy.prior_cov)
    priors = {"ordinary": ORDINARY_PRIOR, "true": true_prior}
    result = data_requirement(priors, true_prior, [0, 4, 64], num_trials=4000, seed=20)
    # With no data the estimate is the prior mean: expected error tr(Sigma*) + ||m - mu*||^2.
    expected = np.trace(toy.prior_cov) + np.sum((ORDINARY_PRIOR[0] - toy.prior_mean) ** 2)
    assert abs(result.errors["ordinary"][0] - expected) < 4 * result.stderr["ordinary"][0]
    assert abs(result.errors["true"][0] - np.trace(toy.prior_cov)) < 4 * result.stderr["true"][0]
    # The true prior is Bayes-optimal for every n, and errors fall with n.
    assert (result.errors["true"] <= result.errors["ordinary"]).all()
    assert result.errors["ordinary"][-1] < result.errors["ordinary"][1]
    assert result.samples_to_reach("true", 1.0) == 0


# Plots


def test_plots_carry_titles() -> None:
    toy = example_toy()
    sweep = sweep_main_scale(toy, [1.0, 2.0])
    result = data_requirement({"true": (toy.prior_mean, toy.prior_cov)}, (toy.prior_mean, toy.prior_cov), [0, 2], num_trials=10)
    figures = {
        "contours": plot_gaussian_contours({"p*": (toy.prior_mean, toy.prior_cov)}, "contours"),
        "trajectory": plot_weight_trajectory(np.ones((5, 3)), np.ones(3), np.ones(3), "trajectory"),
        "sweep": plot_sharpness_sweep(sweep, "sweep"),
        "data": plot_data_requirement(result, "data"),
    }
    for title, figure in figures.items():
        assert figure.axes[0].get_title() == title
        matplotlib.pyplot.close(figure)
