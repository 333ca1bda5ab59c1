"""Tests of the ARML weighter and its exact projection onto {alpha >= 0, sum alpha = K}."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from torch import nn

from arml_core.langevin import noise_std
from arml_core.weighting import ARML, project_to_simplex, shift_then_clamp
from arml_core.weighting.arml import alpha_gradient, alpha_objective

torch.set_num_threads(1)


# ---------------------------------------------------------------- projection


def brute_force_projection(alpha: np.ndarray, total: float) -> np.ndarray:
    """Minimise |x - alpha|^2 on the scaled simplex with SciPy's SLSQP solver."""
    k = alpha.size
    result = minimize(
        lambda x: float(((x - alpha) ** 2).sum()),
        x0=np.full(k, total / k),
        jac=lambda x: 2 * (x - alpha),
        bounds=[(0.0, None)] * k,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - total, "jac": lambda x: np.ones(k)}],
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    assert result.success, result.message
    return result.x


@pytest.mark.parametrize("seed", range(8))
def test_projection_matches_scipy_qp(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 7))
    alpha = rng.normal(scale=3.0, size=k)
    exact = project_to_simplex(torch.tensor(alpha, dtype=torch.float64), float(k)).numpy()
    reference = brute_force_projection(alpha, float(k))
    np.testing.assert_allclose(exact, reference, atol=1e-6)


def test_projection_matches_dense_grid():
    alpha = torch.tensor([2.7, -0.4, 0.9], dtype=torch.float64)
    steps = np.linspace(0.0, 3.0, 601)
    best, best_distance = None, np.inf
    for a in steps:
        for b in steps:
            c = 3.0 - a - b
            if c < 0:
                continue
            distance = (a - 2.7) ** 2 + (b + 0.4) ** 2 + (c - 0.9) ** 2
            if distance < best_distance:
                best, best_distance = (a, b, c), distance
    exact = project_to_simplex(alpha, 3.0)
    np.testing.assert_allclose(exact.numpy(), best, atol=0.005 + 1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_projection_invariants(seed):
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.randn(6, generator=generator, dtype=torch.float64) * 4
    projected = project_to_simplex(alpha, 6.0)
    assert (projected >= 0).all()
    assert float(projected.sum()) == pytest.approx(6.0, abs=1e-12)
    torch.testing.assert_close(project_to_simplex(projected, 6.0), projected, rtol=0, atol=1e-12)
    # Optimality: alpha - x is a constant shift on the support and at most that shift elsewhere.
    residual = alpha - projected
    support = projected > 0
    shift = residual[support].mean()
    torch.testing.assert_close(residual[support], shift.expand(int(support.sum())), rtol=0, atol=1e-12)
    assert (residual[~support] <= shift + 1e-12).all()


def test_shift_then_clamp_inexact():
    alpha = torch.tensor([3.0, -2.0, 0.0], dtype=torch.float64)
    clamped = shift_then_clamp(alpha, 3.0)
    assert clamped.tolist() == pytest.approx([11 / 3, 0.0, 2 / 3])
    assert float(clamped.sum()) > 3.0
    assert project_to_simplex(alpha, 3.0).tolist() == pytest.approx([3.0, 0.0, 0.0])


# ---------------------------------------------------------------- objective


def test_alpha_gradient_matches_autograd():
    generator = torch.Generator().manual_seed(0)
    grads = torch.randn(4, 10, generator=generator, dtype=torch.float64)
    main, aux = grads[0], grads[1:]
    gram, b = aux @ aux.T, aux @ main
    alpha = torch.tensor([0.5, 2.0, 0.5], dtype=torch.float64, requires_grad=True)
    objective = alpha_objective(alpha, gram, b, main @ main)
    direct = ((main - alpha @ aux) ** 2).sum()
    assert float(objective.detach()) == pytest.approx(float(direct.detach()), rel=1e-12)
    (autograd,) = torch.autograd.grad(objective, alpha)
    torch.testing.assert_close(alpha_gradient(alpha.detach(), gram, b), autograd, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- one step on a quadratic


class Quadratic:
    """Shared theta and head u_i with L_i = 0.5 |theta - c_i|^2 + 0.5 u_i^2; task 0 is the main task."""

    def __init__(self, theta, centers, heads) -> None:
        self.theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        self.centers = [torch.tensor(c, dtype=torch.float64) for c in centers]
        self.heads = [torch.tensor(u, dtype=torch.float64, requires_grad=True) for u in heads]

    def losses(self):
        return [0.5 * ((self.theta - c) ** 2).sum() + 0.5 * u**2 for c, u in zip(self.centers, self.heads)]

    def call(self, weighter):
        for p in [self.theta, *self.heads]:
            p.grad = None
        losses = self.losses()
        return weighter.backward(losses[0], losses[1:], [self.theta])


def default_problem() -> Quadratic:
    return Quadratic([1.0, 2.0], [[0.0, 0.0], [2.0, 3.0], [1.0, -1.0]], [0.5, -1.0, 2.0])


def test_one_step_hand_values():
    problem = default_problem()
    weighter = ARML(2, lr=0.01, algorithm=2)
    info = problem.call(weighter)
    # g_0 = (1, 2), g_1 = (-1, -1), g_2 = (0, 3): G = [[2, -3], [-3, 9]], b = (-3, 6).
    gram = np.array([[2.0, -3.0], [-3.0, 9.0]])
    b = np.array([-3.0, 6.0])
    step = np.ones(2) - 0.01 * 2 * (gram @ np.ones(2) - b)
    assert weighter.weights.tolist() == pytest.approx((step - (step.sum() - 2) / 2).tolist(), rel=1e-6)
    # f(1, 1) = |g_0 - g_1 - g_2|^2 = |(2, 0)|^2.
    assert info.metrics["objective"] == pytest.approx(4.0)
    # Model gradient: L_0 + 1 * L_1 + 1 * L_2 with the weights before the step.
    assert problem.theta.grad.tolist() == pytest.approx([0.0, 4.0])
    assert [float(u.grad) for u in problem.heads] == pytest.approx([0.5, -1.0, 2.0])


@pytest.mark.parametrize("mode", ["loop", "batched"])
def test_model_grad_matches_autograd(mode):
    problem = default_problem()
    weighter = ARML(2, lr=0.05, algorithm=2, grad_mode=mode)
    for _ in range(3):
        before = weighter.weights.clone().to(torch.float64)
        problem.call(weighter)
        losses = problem.losses()
        total = losses[0] + before[0] * losses[1] + before[1] * losses[2]
        expected = torch.autograd.grad(total, [problem.theta, *problem.heads])
        for param, want in zip([problem.theta, *problem.heads], expected):
            torch.testing.assert_close(param.grad, want, rtol=1e-6, atol=1e-9)
        with torch.no_grad():
            problem.theta -= 0.1 * problem.theta.grad


def test_lr_zero_and_zero_grads_finite():
    problem = Quadratic([0.0, 0.0], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 0.0, 0.0])
    for lr in (0.0, 0.1):
        weighter = ARML(2, lr=lr, algorithm=2)
        info = problem.call(weighter)
        assert weighter.weights.tolist() == [1.0, 1.0]
        assert all(np.isfinite(v) for v in info.metrics.values())
        assert info.metrics["cos_0"] == 0.0


def test_single_aux_task_message():
    with pytest.raises(ValueError, match="single point alpha = 1.*constraint='nonnegative'"):
        ARML(1)
    weighter = ARML(1, lr=0.1, constraint="nonnegative", algorithm=2)
    theta = torch.tensor([1.0, 1.0], requires_grad=True)
    # g_m = theta = (1, 1) and g_1 = -theta, so G = 2, b = -2 and alpha = 1 - 0.1 * 2 * (2 + 2).
    weighter.backward((theta**2).sum() / 2, [-(theta**2).sum() / 2], [theta])
    assert weighter.weights.tolist() == pytest.approx([0.2])


# ---------------------------------------------------------------- schedule options


def test_update_every_schedule():
    problem = default_problem()
    weighter = ARML(2, lr=0.01, update_every=3, algorithm=2)
    history = []
    for _ in range(7):
        info = problem.call(weighter)
        history.append((weighter.weights.clone(), "objective" in info.metrics))
    assert [updated for _, updated in history] == [True, False, False, True, False, False, True]
    torch.testing.assert_close(history[1][0], history[0][0])
    torch.testing.assert_close(history[2][0], history[0][0])
    assert not torch.equal(history[3][0], history[2][0])


def test_skip_model_step_on_update():
    problem = default_problem()
    weighter = ARML(2, lr=0.01, update_every=2, algorithm=2, skip_model_step_on_update=True)
    info = problem.call(weighter)
    assert info.skip_model_step
    assert problem.theta.grad is None
    info = problem.call(weighter)
    assert not info.skip_model_step
    assert problem.theta.grad is not None


# ---------------------------------------------------------------- Langevin phase


def test_langevin_noise_variance():
    param = torch.zeros(200_000)
    weighter = ARML(2, lr=0.0, algorithm=1, temperature=0.5, seed=3)
    main = (param * 0.0).sum()
    weighter.backward(main, [main * 1.0, main * 1.0], [param])
    weighter.after_optimizer_step(lr=0.02)
    expected = 2 * 0.02 * 0.5
    assert float(param.var()) == pytest.approx(expected, rel=0.02)
    assert noise_std(0.02, 0.5) ** 2 == pytest.approx(expected)


def test_algorithm1_freezes_after_convergence():
    problem = default_problem()
    weighter = ARML(2, lr=0.001, algorithm=1, temperature=1e-3, converge_tol=10.0, converge_window=3)
    for _ in range(3):
        problem.call(weighter)
        assert weighter.langevin_active
    problem.call(weighter)
    assert weighter.converged
    assert weighter.converged_at == 4
    assert not weighter.langevin_active

    frozen = weighter.weights.clone()
    weighter.lr = 1.0
    for _ in range(3):
        info = problem.call(weighter)
        assert "objective" not in info.metrics
    torch.testing.assert_close(weighter.weights, frozen, rtol=0, atol=0)
    before = problem.theta.detach().clone()
    weighter.after_optimizer_step(lr=0.1)
    torch.testing.assert_close(problem.theta.detach(), before, rtol=0, atol=0)


def test_algorithm2_never_adds_noise():
    problem = default_problem()
    weighter = ARML(2, lr=0.01, algorithm=2, temperature=1.0)
    problem.call(weighter)
    before = problem.theta.detach().clone()
    weighter.after_optimizer_step(lr=0.1)
    assert not weighter.langevin_active
    torch.testing.assert_close(problem.theta.detach(), before, rtol=0, atol=0)


# ---------------------------------------------------------------- resume


def test_state_dict_round_trip():
    problem = default_problem()
    options = {"lr": 0.01, "algorithm": 1, "temperature": 1e-2, "converge_tol": 1e-9, "converge_window": 5}
    weighter = ARML(2, **options)
    for _ in range(3):
        problem.call(weighter)
        weighter.after_optimizer_step(lr=0.1)
    buffer = io.BytesIO()
    torch.save(weighter.state_dict(), buffer)
    saved_problem = copy.deepcopy(problem)

    problem.call(weighter)
    weighter.after_optimizer_step(lr=0.1)

    buffer.seek(0)
    resumed = ARML(2, **options)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    saved_problem.call(resumed)
    resumed.after_optimizer_step(lr=0.1)
    torch.testing.assert_close(resumed.weights, weighter.weights, rtol=0, atol=0)
    torch.testing.assert_close(saved_problem.theta.detach(), problem.theta.detach(), rtol=0, atol=0)
    assert resumed.step_count == weighter.step_count == 4


# ---------------------------------------------------------------- behaviour on a small model


def test_moves_toward_related_task():
    # A linear regression backbone shared by three losses: aux 0 has the main task's target,
    # aux 1 another one, so only aux 0 shares the main task's optimum.
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    main_target = x @ torch.randn(5) + 0.1 * torch.randn(64)
    targets = [main_target, main_target, x @ torch.randn(5)]
    model = nn.Linear(5, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    weighter = ARML(2, lr=0.01, algorithm=2)
    for _ in range(60):
        optimizer.zero_grad(set_to_none=True)
        prediction = model(x).squeeze(1)
        losses = [((prediction - y) ** 2).mean() for y in targets]
        weighter.backward(losses[0], losses[1:], list(model.parameters()))
        optimizer.step()
    assert float(weighter.weights[0]) > 1.9, f"weights after 60 steps: {weighter.weights.tolist()}"
    assert float(weighter.weights.sum()) == pytest.approx(2.0, abs=1e-5)


@pytest.mark.parametrize("main_coefficient", [0.0, 0.5])
def test_main_coefficient_scales_main_loss_in_model_step(main_coefficient):
    torch.manual_seed(0)
    backbone = torch.nn.Linear(4, 3)
    heads = torch.nn.ModuleList([torch.nn.Linear(3, 1) for _ in range(3)])
    x = torch.randn(8, 4)

    def losses():
        features = torch.tanh(backbone(x))
        return [heads[i](features).pow(2).mean() * (i + 1) for i in range(3)]

    params = list(backbone.parameters()) + list(heads.parameters())
    weighter = ARML(2, lr=0.1, algorithm=2, main_coefficient=main_coefficient)
    main, *aux = losses()
    weighter.backward(main, aux, list(backbone.parameters()))
    got = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]

    for p in params:
        p.grad = None
    main, *aux = losses()
    (main_coefficient * main + aux[0] + aux[1]).backward()
    expected = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-6)
    assert not torch.equal(weighter.weights, torch.ones(2)), "alpha must still move from g_m"


def test_negative_main_coefficient_is_rejected():
    with pytest.raises(ValueError, match="main_coefficient"):
        ARML(2, main_coefficient=-1.0)
