"""Tests of the Langevin sampling checks: stationary covariance, chains, minibatch and Adam noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from arml_core.experiments.langevin_ssl import (
    algorithm_histories, algorithm_weights_table, langevin_fraction, measure_noise_along_run,
    noise_folder, options_label, paired_weight_gap, run_algorithms,
)
from arml_core.experiments.ssl import SSLConfig
from arml_core.theory.langevin_checks import (
    RunningMoments, adam_step, exact_minibatch_std, flat_adam_state, measure_step_noise,
    relative_error, run_langevin_chains, ula_commuting_covariance, ula_stationary_covariance,
)

COV_2D = np.array([[0.5, 0.2], [0.2, 0.3]])


def test_lyapunov_1d_hand_value() -> None:
    # S = 0.5, P = 2, eps = 0.25: C = S / (1 - eps P / 2) = 0.5 / 0.75.
    cov = ula_stationary_covariance(np.array([[0.5]]), step_size=0.25)
    assert cov[0, 0] == pytest.approx(2.0 / 3.0, rel=1e-12)


def test_lyapunov_matches_closed_form_2d() -> None:
    precision = np.linalg.inv(COV_2D)
    step = 0.5 / np.linalg.eigvalsh(precision).max()
    lyapunov = ula_stationary_covariance(COV_2D, step)
    closed = ula_commuting_covariance(COV_2D, step)
    np.testing.assert_allclose(lyapunov, closed, rtol=1e-10, atol=1e-14)
    transition = np.eye(2) - step * precision
    residual = transition @ lyapunov @ transition.T + 2 * step * np.eye(2) - lyapunov
    assert np.abs(residual).max() < 1e-12


def test_lyapunov_bias_shrinks_with_step() -> None:
    biases = [relative_error(ula_stationary_covariance(COV_2D, s), COV_2D) for s in (0.02, 0.01, 0.005)]
    assert biases[0] > biases[1] > biases[2] > 0
    # First order in eps: halving the step roughly halves the bias.
    assert biases[1] / biases[2] == pytest.approx(2.0, rel=0.05)


def test_lyapunov_scales_with_temperature() -> None:
    base = ula_stationary_covariance(COV_2D, 0.05)
    np.testing.assert_allclose(ula_stationary_covariance(COV_2D, 0.05, temperature=3.0), 3.0 * base, rtol=1e-10)


def test_unstable_step_rejected() -> None:
    largest = np.linalg.eigvalsh(np.linalg.inv(COV_2D)).max()
    with pytest.raises(ValueError, match="unstable"):
        ula_stationary_covariance(COV_2D, 2.0 / largest)
    with pytest.raises(ValueError, match="unstable"):
        run_langevin_chains(np.zeros(2), COV_2D, 2.5 / largest, num_steps=10, num_chains=2)
    ula_stationary_covariance(COV_2D, 1.9 / largest)


def test_chain_1d_matches_closed_form() -> None:
    # eps P = 1 doubles the variance: C = S / (1 - 1/2) = 2 S, far from the target S.
    moments = run_langevin_chains(np.array([3.0]), np.array([[0.5]]), step_size=0.5,
                                  num_steps=1000, num_chains=400, burn_in=0.2, seed=1)
    assert moments.cov[0, 0] == pytest.approx(1.0, rel=0.03)
    assert moments.mean[0] == pytest.approx(3.0, abs=0.02)


def test_chain_2d_matches_lyapunov_not_target() -> None:
    mean = np.array([1.0, -2.0])
    step = 0.8 / np.linalg.eigvalsh(np.linalg.inv(COV_2D)).max()
    moments = run_langevin_chains(mean, COV_2D, step, num_steps=1500, num_chains=400, burn_in=0.2, seed=2)
    exact = ula_stationary_covariance(COV_2D, step)
    assert relative_error(moments.cov, exact) < 0.03
    assert relative_error(moments.cov, COV_2D) > 0.15
    np.testing.assert_allclose(moments.mean, mean, atol=0.03)


def test_chain_temperature_scales_covariance() -> None:
    step = 0.2
    moments = run_langevin_chains(np.zeros(1), np.array([[1.0]]), step, num_steps=1000, num_chains=400,
                                  burn_in=0.2, temperature=0.01, seed=3)
    exact = ula_stationary_covariance(np.array([[1.0]]), step, temperature=0.01)
    assert moments.cov[0, 0] == pytest.approx(exact[0, 0], rel=0.05)


def test_running_moments_match_numpy() -> None:
    values = torch.randn(20, 5, dtype=torch.float64)
    moments = RunningMoments()
    for row in values:
        moments.update(row)
    np.testing.assert_allclose(moments.std().numpy(), values.numpy().std(axis=0, ddof=1), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        RunningMoments().std()


def test_exact_minibatch_std_hand_value() -> None:
    # Population variance of {1, 3} is 1; a batch of 4 with replacement has variance 1/4.
    std = exact_minibatch_std(torch.tensor([[1.0], [3.0]]), batch_size=4, lr=0.1)
    assert float(std[0]) == pytest.approx(0.05, rel=1e-12)


def _linear_problem(num_examples: int = 40) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randn(num_examples, 3, generator=generator, dtype=torch.float64)
    targets = torch.randn(num_examples, generator=generator, dtype=torch.float64)
    weights = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    return inputs, targets, weights


def test_step_noise_of_linear_model_matches_closed_form() -> None:
    inputs, targets, weights = _linear_problem()
    # Squared error 0.5 (x.w - y)^2 has the per-example gradient (x.w - y) x.
    per_example = ((inputs @ weights.detach() - targets)[:, None] * inputs)
    batch_size, lr = 5, 0.01
    generator = torch.Generator().manual_seed(0)

    def draw() -> torch.Tensor:
        index = torch.randint(len(inputs), (batch_size,), generator=generator)
        loss = 0.5 * ((inputs[index] @ weights - targets[index]) ** 2).mean()
        return torch.autograd.grad(loss, [weights])[0]

    noise = measure_step_noise(draw, num_draws=3000, lr=lr)
    expected = exact_minibatch_std(per_example, batch_size, lr)
    np.testing.assert_allclose(noise.gradient.numpy(), expected.numpy(), rtol=0.06)
    assert noise.adam is None


def test_step_noise_zero_for_identical_examples() -> None:
    noise = measure_step_noise(lambda: torch.tensor([1.0, -2.0]), num_draws=5, lr=0.1)
    assert float(noise.gradient.abs().max()) == 0.0


def test_adam_step_matches_torch_adam() -> None:
    param = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))
    optimizer = torch.optim.Adam([param], lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    for _ in range(3):
        param.grad = torch.randn(6, dtype=torch.float64)
        optimizer.step()
    state = flat_adam_state(optimizer, [param])
    assert state.next_step == 4
    grad = torch.randn(6, dtype=torch.float64)
    predicted = adam_step(grad, state.exp_avg, state.exp_avg_sq, state.next_step, state.lr, state.betas, state.eps)
    before = param.detach().clone()
    param.grad = grad
    optimizer.step()
    np.testing.assert_allclose(predicted.numpy(), (param.detach() - before).numpy(), rtol=1e-10, atol=1e-15)


def test_fresh_adam_state_gives_sign_step() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    state = flat_adam_state(torch.optim.Adam([param], lr=0.1), [param])
    assert state.next_step == 1
    assert float(state.exp_avg.abs().max()) == 0.0
    step = adam_step(torch.tensor([2.0, -0.5, 1e-3]), state.exp_avg, state.exp_avg_sq, 1, 0.1)
    # First step: m_hat = g and v_hat = g^2, so the change is -lr g / (|g| + eps).
    np.testing.assert_allclose(step.numpy(), [-0.1, 0.1, -0.1], rtol=1e-4)


def test_adam_state_rejects_weight_decay() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="weight_decay"):
        flat_adam_state(torch.optim.Adam([param], lr=0.1, weight_decay=0.1), [param])


def _tiny_config(**changes: object) -> SSLConfig:
    config = SSLConfig(
        aux_tasks=("rotation", "random_label"), num_iterations=6, batch_size=8, unlabelled_batch_size=4,
        backbone_options={"width": 4, "feature_dim": 8}, eval_every=3, log_every=1, num_threads=1,
        progress=False, method_options={"lr": 0.05, "temperature": 1e-4},
    )
    return SSLConfig(**{**config.to_dict(), **changes})


def test_noise_along_run_rows(tmp_path) -> None:
    config = _tiny_config()
    frame = measure_noise_along_run(config, [2, 6], num_draws=3, folder=tmp_path)
    assert frame["iteration"].tolist() == [2, 6]
    for column in ("sgd_median", "sgd_rms", "adam_median", "adam_rms"):
        assert (frame[column] > 0).all(), column
    assert frame["injected_std"].tolist() == pytest.approx([math.sqrt(2 * 3e-3 * 1e-4)] * 2)
    assert frame["num_params"].iloc[0] > 0
    assert (tmp_path / "noise.json").exists()

    stored = measure_noise_along_run(config, [2, 6], num_draws=3, folder=tmp_path)
    assert stored.equals(frame)


def test_noise_along_run_resumes(tmp_path) -> None:
    config = _tiny_config()
    whole = measure_noise_along_run(config, [2, 6], num_draws=3, folder=tmp_path / "whole")
    # A first call that stops at iteration 2 leaves the checkpoint that the second call resumes from.
    measure_noise_along_run(config, [2], num_draws=3, folder=tmp_path / "parts")
    resumed = measure_noise_along_run(config, [2, 6], num_draws=3, folder=tmp_path / "parts")
    assert resumed.equals(whole)


def test_noise_along_run_rejects_bad_checkpoints(tmp_path) -> None:
    with pytest.raises(ValueError, match="checkpoints"):
        measure_noise_along_run(_tiny_config(), [0, 7], num_draws=3, folder=tmp_path)
    with pytest.raises(ValueError, match="method"):
        measure_noise_along_run(_tiny_config(method="uniform"), [2], num_draws=3, folder=tmp_path)


def test_noise_along_run_rejects_earlier_point(tmp_path) -> None:
    config = _tiny_config()
    measure_noise_along_run(config, [6], num_draws=3, folder=tmp_path)
    with pytest.raises(ValueError, match="past the requested"):
        measure_noise_along_run(config, [2, 6], num_draws=3, folder=tmp_path)


def test_noise_folder_changes_with_settings(tmp_path) -> None:
    config = _tiny_config()
    folder = noise_folder(tmp_path, config, num_draws=3)
    assert folder != noise_folder(tmp_path, config, num_draws=4)
    assert folder != noise_folder(tmp_path, _tiny_config(seed=1), num_draws=3)
    assert folder != noise_folder(tmp_path, _tiny_config(method_options={"temperature": 1e-3}), num_draws=3)


def test_options_label_changes_with_options() -> None:
    first = options_label({"algorithm": 1, "temperature": 1e-4})
    assert first.startswith("arml_alg1_")
    assert first != options_label({"algorithm": 1, "temperature": 1e-3})
    assert options_label({"algorithm": 2, "temperature": 1e-4}).startswith("arml_alg2_")


def test_run_algorithms_tables(tmp_path) -> None:
    base = _tiny_config(num_iterations=4)
    options = {"lr": 0.05, "temperature": 1e-4}
    records = run_algorithms(base, [0], tmp_path, options)
    assert sorted(records) == [1, 2]
    histories = algorithm_histories(base, [0], tmp_path, options)
    # Algorithm 1 cannot converge within 4 updates (window 100), so noise stays on throughout.
    assert langevin_fraction(histories[1][0]) == 1.0
    assert langevin_fraction(histories[2][0]) == 0.0

    table = algorithm_weights_table(records, ["rotation", "random_label"])
    assert table["weights"].tolist() == ["final", "selected", "final", "selected"]
    assert table["rotation"].iloc[0].endswith("± n/a")
    gap = paired_weight_gap(records)
    assert gap["seed"].tolist() == [0]
    assert (gap[["final gap", "selected gap"]] >= 0).all().all()
