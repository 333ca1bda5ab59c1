"""Tests of the baseline weighters: AdaLoss, uncertainty weighting, GradNorm, CosineSim, OL_AUX.

Most checks use a quadratic problem whose gradients are known in closed form: a shared vector
theta, one scalar head u_i per task, and L_i = 0.5 |theta - c_i|^2 + 0.5 u_i^2, so that
dL_i/dtheta = theta - c_i and dL_i/du_i = u_i. Task 0 is the main task.
"""

from __future__ import annotations

import copy
import gc
import io
import math
import warnings
import weakref

import pytest
import torch
from torch import nn

from arml_core.grid_search import fixed_weighter, grid_search, simplex_grid
from arml_core.weighting import (
    WEIGHTERS,
    AdaLoss,
    CosineSim,
    FixedWeights,
    GradNorm,
    OLAux,
    UncertaintyWeighting,
    make_weighter,
)

torch.set_num_threads(1)

BASELINES = ["adaloss", "uncertainty", "gradnorm", "cosine", "ol_aux"]
# Whether the model gradient of a call uses the weights held after the call (True) or before it.
USES_NEW_WEIGHTS = {"adaloss": True, "uncertainty": False, "gradnorm": False, "cosine": True, "ol_aux": False}
OPTIONS = {
    "adaloss": {"momentum": 0.5},
    "uncertainty": {"lr": 0.1, "optimizer": "adam"},
    "gradnorm": {"lr": 0.05, "alpha_gn": 1.0},
    "cosine": {"weighted": True},
    "ol_aux": {"lr": 0.05, "horizon": 2},
}


class Quadratic:
    """Shared theta, heads u_i and losses L_i = 0.5 |theta - c_i|^2 + 0.5 u_i^2."""

    def __init__(self, theta: list[float], centers: list[list[float]], heads: list[float]) -> None:
        self.theta = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        self.centers = [torch.tensor(c, dtype=torch.float64) for c in centers]
        self.heads = [torch.tensor(u, dtype=torch.float64, requires_grad=True) for u in heads]

    def losses(self) -> list[torch.Tensor]:
        return [0.5 * ((self.theta - c) ** 2).sum() + 0.5 * u**2 for c, u in zip(self.centers, self.heads)]

    def params(self) -> list[torch.Tensor]:
        return [self.theta, *self.heads]

    def zero_grad(self) -> None:
        for p in self.params():
            p.grad = None

    def step(self, lr: float) -> None:
        with torch.no_grad():
            for p in self.params():
                p -= lr * p.grad


def default_problem() -> Quadratic:
    return Quadratic(
        theta=[1.0, 2.0],
        centers=[[0.0, 0.0], [2.0, 3.0], [1.0, -1.0]],
        heads=[0.5, -1.0, 2.0],
    )


def call(weighter, problem: Quadratic):
    problem.zero_grad()
    losses = problem.losses()
    return weighter.backward(losses[0], losses[1:], [problem.theta])


def expected_grads(problem: Quadratic, weights: torch.Tensor) -> list[torch.Tensor]:
    losses = problem.losses()
    total = losses[0] + sum(w * loss for w, loss in zip(weights.to(torch.float64), losses[1:]))
    return list(torch.autograd.grad(total, problem.params(), allow_unused=True))


class TinyNet(nn.Module):
    """Linear-tanh backbone with one linear head per task, for the memory and resume tests."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(8, 1) for _ in range(num_tasks))

    def losses(self, x: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
        h = self.backbone(x)
        return [((head(h).squeeze(1) - targets[:, i]) ** 2).mean() for i, head in enumerate(self.heads)]


def tiny_step(net: TinyNet, weighter, optimizer, x, y) -> None:
    optimizer.zero_grad(set_to_none=True)
    losses = net.losses(x, y)
    info = weighter.backward(losses[0], losses[1:], list(net.backbone.parameters()))
    if not info.skip_model_step:
        optimizer.step()
    weighter.after_optimizer_step(0.05)


def tiny_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=generator)
    y = torch.randn(16, 3, generator=generator)
    return x, y


# ---------------------------------------------------------------- registry


def test_registry_names():
    for name in ["supervised", "uniform", "fixed", "arml", *BASELINES]:
        assert name in WEIGHTERS
    assert isinstance(make_weighter("GradNorm", 2), GradNorm)


# ---------------------------------------------------------------- AdaLoss


def test_adaloss_hand_values():
    problem = default_problem()
    weighter = AdaLoss(2, momentum=0.5, eps=1e-8)
    # L_1 = 0.5 * (1 + 1) + 0.5 * 1 = 1.5 and L_2 = 0.5 * (0 + 9) + 0.5 * 4 = 6.5.
    call(weighter, problem)
    inverse = [1 / 1.5, 1 / 6.5]
    expected = [2 * v / sum(inverse) for v in inverse]
    assert weighter.weights.tolist() == pytest.approx(expected, rel=1e-6)

    with torch.no_grad():
        problem.theta.copy_(torch.tensor([2.0, 3.0]))
    # Now L_1 = 0.5 and L_2 = 0.5 * (1 + 16) + 2 = 10.5; running means mix with momentum 0.5.
    call(weighter, problem)
    means = [0.5 * 1.5 + 0.5 * 0.5, 0.5 * 6.5 + 0.5 * 10.5]
    inverse = [1 / m for m in means]
    expected = [2 * v / sum(inverse) for v in inverse]
    assert weighter.weights.tolist() == pytest.approx(expected, rel=1e-6)


def test_adaloss_zero_loss_finite():
    problem = Quadratic([2.0, 3.0], [[0.0, 0.0], [2.0, 3.0], [1.0, -1.0]], [0.5, 0.0, 2.0])
    weighter = AdaLoss(2)
    call(weighter, problem)
    assert torch.isfinite(weighter.weights).all()
    assert float(weighter.weights.sum()) == pytest.approx(2.0)
    assert float(weighter.weights[0]) > float(weighter.weights[1])


def test_adaloss_negative_loss_raises():
    weighter = AdaLoss(2)
    main = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="auxiliary loss 1 .*1 - cosine"):
        weighter.backward(main, [main * 1.0, main * -0.5], [main])


# ---------------------------------------------------------------- uncertainty weighting


def test_uncertainty_sgd_hand_values():
    problem = default_problem()
    weighter = UncertaintyWeighting(2, lr=0.1, optimizer="sgd", init_log_var=0.0)
    weights_before = weighter.weights.clone()
    call(weighter, problem)
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L at s = 0, so s_1 = -0.1 * (1 - 1.5), s_2 = -0.1 * (1 - 6.5).
    s = [-0.1 * (1 - 1.5), -0.1 * (1 - 6.5)]
    assert weighter.log_vars.tolist() == pytest.approx(s, rel=1e-6)
    assert weighter.weights.tolist() == pytest.approx([math.exp(-v) for v in s], rel=1e-6)
    assert weights_before.tolist() == [1.0, 1.0]


def test_uncertainty_fixed_point():
    weighter = UncertaintyWeighting(1, lr=0.05, optimizer="sgd")
    theta = torch.tensor(0.0, requires_grad=True)
    for _ in range(2000):
        main = theta * 0.0 + 1.0
        aux = theta * 0.0 + 4.0
        weighter.backward(main, [aux], [theta])
    # exp(-s) L + s is minimised at s = log L, so the weight tends to 1 / L = 0.25.
    assert float(weighter.weights[0]) == pytest.approx(0.25, rel=1e-3)


def test_uncertainty_negative_loss_raises():
    weighter = UncertaintyWeighting(3)
    theta = torch.tensor(1.0, requires_grad=True)
    with pytest.raises(ValueError, match="auxiliary loss 2 is -0.25.*1 - cosine"):
        weighter.backward(theta * 1.0, [theta * 1.0, theta * 0.0, theta * -0.25], [theta])


# ---------------------------------------------------------------- GradNorm


def test_gradnorm_hand_values():
    problem = default_problem()
    weighter = GradNorm(2, lr=0.1, alpha_gn=1.0, loss_reference=[1.0, 1.0, 1.0], min_weight=1e-3)
    call(weighter, problem)
    # n_i = |theta - c_i|: n_0 = sqrt(5), n_1 = sqrt(2), n_2 = 3; losses 2.625, 1.5, 6.5.
    norms = [math.sqrt(5), math.sqrt(2), 3.0]
    losses = [0.5 * 5 + 0.5 * 0.25, 1.5, 6.5]
    mean_norm = sum(norms) / 3
    rates = [v / (sum(losses) / 3) for v in losses]
    targets = [mean_norm * r for r in rates]
    grads = [math.copysign(1.0, norms[k] - targets[k]) * norms[k] for k in (1, 2)]
    raw = [1 - 0.1 * g for g in grads]
    expected = [2 * v / sum(raw) for v in raw]
    assert weighter.weights.tolist() == pytest.approx(expected, rel=1e-6)
    # Task 1 trains faster (lower loss) and has a norm above its target, so its weight falls.
    assert float(weighter.weights[0]) < 1.0 < float(weighter.weights[1])


def test_gradnorm_first_step_reference():
    problem = default_problem()
    weighter = GradNorm(2, lr=0.1)
    call(weighter, problem)
    assert weighter.reference.tolist() == pytest.approx([2.625, 1.5, 6.5])


def test_gradnorm_stays_positive_large_lr():
    problem = default_problem()
    weighter = GradNorm(2, lr=100.0, alpha_gn=1.0, loss_reference=[1.0, 1.0, 1.0], min_weight=1e-3)
    call(weighter, problem)
    # A plain step would make weight 1 negative; the floor then the rescale keep it positive.
    assert (weighter.weights > 0).all()
    assert float(weighter.weights.sum()) == pytest.approx(2.0)
    assert float(weighter.weights.min()) == pytest.approx(2 * 1e-3 / (1e-3 + 1 + 100 * 3), rel=1e-5)


def test_gradnorm_default_layer_last_tensor():
    net = TinyNet(3)
    weighter = GradNorm(2)
    layer = weighter._measured_layer(list(net.backbone.parameters()))
    assert len(layer) == 1
    assert layer[0] is net.backbone[0].bias


def test_gradnorm_explicit_layer():
    problem = default_problem()
    other = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    # A layer no loss reaches has zero norms: the weights then move by nothing and stay at 1.
    weighter = GradNorm(2, lr=0.1, norm_params=[other])
    call(weighter, problem)
    assert weighter.weights.tolist() == [1.0, 1.0]


def test_gradnorm_bad_reference_raises():
    with pytest.raises(ValueError, match="3 positive values"):
        GradNorm(2, loss_reference=[1.0, 0.0, 1.0])


# ---------------------------------------------------------------- CosineSim


def test_cosine_gate_hand_values():
    # g_0 = theta - c_0 = (1, 2), g_1 = (-1, -1), g_2 = (0, 3): cosines -3/sqrt(10) and 2/sqrt(5).
    problem = default_problem()
    weighter = CosineSim(2)
    info = call(weighter, problem)
    assert weighter.weights.tolist() == [0.0, 1.0]
    assert info.metrics["cos_0"] == pytest.approx(-3 / math.sqrt(10))
    assert info.metrics["cos_1"] == pytest.approx(6 / (math.sqrt(5) * 3))


def test_cosine_weighted_hand_values():
    problem = default_problem()
    weighter = CosineSim(2, weighted=True)
    call(weighter, problem)
    assert weighter.weights.tolist() == pytest.approx([0.0, 2 / math.sqrt(5)], rel=1e-6)


def test_cosine_orthogonal_gets_zero():
    problem = Quadratic([1.0, 0.0], [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]], [0.0, 0.0, 0.0])
    weighter = CosineSim(2)
    call(weighter, problem)
    # g_1 = (0, -1) is orthogonal to g_0 = (1, 0), and g_2 = 0 vanishes.
    assert weighter.weights.tolist() == [0.0, 0.0]


# ---------------------------------------------------------------- OL_AUX


def test_ol_aux_horizon_hand_values():
    problem = default_problem()
    weighter = OLAux(2, lr=0.1, horizon=2)
    call(weighter, problem)
    # Inner products g_k . g_0 with g_0 = (1, 2): g_1 = (-1, -1) gives -3, g_2 = (0, 3) gives 6.
    assert weighter.weights.tolist() == [1.0, 1.0]
    with torch.no_grad():
        problem.theta.copy_(torch.tensor([2.0, 0.0]))
    call(weighter, problem)
    # Now g_0 = (2, 0), g_1 = (0, -3), g_2 = (1, 1): inner products 0 and 2.
    assert weighter.weights.tolist() == pytest.approx([1 + 0.1 * (-3 + 0), 1 + 0.1 * (6 + 2)], rel=1e-6)


def test_ol_aux_clips_at_zero():
    problem = default_problem()
    weighter = OLAux(2, lr=10.0, horizon=1)
    call(weighter, problem)
    assert weighter.weights.tolist() == [0.0, 61.0]


# ---------------------------------------------------------------- all baselines


@pytest.mark.parametrize("name", BASELINES)
def test_grad_matches_autograd(name):
    problem = default_problem()
    weighter = make_weighter(name, 2, **OPTIONS[name])
    for _ in range(3):
        before = weighter.weights.clone()
        call(weighter, problem)
        used = weighter.weights if USES_NEW_WEIGHTS[name] else before
        actual = [p.grad.clone() for p in problem.params()]
        for got, want in zip(actual, expected_grads(problem, used)):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
        problem.step(0.1)


@pytest.mark.parametrize("name", BASELINES)
def test_invariants_over_training(name):
    torch.manual_seed(0)
    net = TinyNet(4)
    weighter = make_weighter(name, 3, **OPTIONS[name])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = tiny_data()
    y = torch.cat([y, y[:, :1]], dim=1)
    for _ in range(30):
        tiny_step(net, weighter, optimizer, x, y)
        assert torch.isfinite(weighter.weights).all()
        assert (weighter.weights >= 0).all()
        assert weighter.weights.shape == (3,)
        if name in ("adaloss", "gradnorm"):
            assert float(weighter.weights.sum()) == pytest.approx(3.0, rel=1e-5)


@pytest.mark.parametrize("name", BASELINES)
def test_zero_loss_and_gradient(name):
    # theta = c_1 and u_1 = 0 make auxiliary loss 0 a zero loss with a vanishing gradient.
    problem = Quadratic([2.0, 3.0], [[0.0, 0.0], [2.0, 3.0], [1.0, -1.0]], [0.5, 0.0, 2.0])
    weighter = make_weighter(name, 2, **OPTIONS[name])
    for _ in range(3):
        info = call(weighter, problem)
        assert torch.isfinite(weighter.weights).all()
        assert all(math.isfinite(v) for v in info.metrics.values())
        assert all(torch.isfinite(p.grad).all() for p in problem.params())


@pytest.mark.parametrize("name", BASELINES)
def test_vanishing_main_gradient(name):
    problem = Quadratic([0.0, 0.0], [[0.0, 0.0], [2.0, 3.0], [1.0, -1.0]], [0.0, 0.0, 2.0])
    weighter = make_weighter(name, 2, **OPTIONS[name])
    for _ in range(2):
        call(weighter, problem)
        assert torch.isfinite(weighter.weights).all()
        assert all(torch.isfinite(p.grad).all() for p in problem.params())


def count_live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        # Inspecting every object touches deprecated torch.distributed attributes.
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for obj in gc.get_objects() if torch.is_tensor(obj))


@pytest.mark.parametrize("name", BASELINES)
def test_memory_flat_200_steps(name):
    torch.manual_seed(0)
    net = TinyNet(3)
    weighter = make_weighter(name, 2, **OPTIONS[name])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = tiny_data()
    for _ in range(20):
        tiny_step(net, weighter, optimizer, x, y)
    before = count_live_tensors()
    for _ in range(200):
        tiny_step(net, weighter, optimizer, x, y)
    after = count_live_tensors()
    assert after <= before, f"{name}: live tensors grew from {before} to {after} over 200 steps"


@pytest.mark.parametrize("name", BASELINES)
def test_graph_freed_after_call(name):
    net = TinyNet(3)
    weighter = make_weighter(name, 2, **OPTIONS[name])
    x, y = tiny_data()
    losses = net.losses(x, y)
    weighter.backward(losses[0], losses[1:], list(net.backbone.parameters()))
    reference = weakref.ref(losses[0])
    del losses
    gc.collect()
    assert reference() is None, f"{name} keeps the main loss (and its graph) alive after backward"


@pytest.mark.parametrize("name", BASELINES)
def test_state_dict_resume(name):
    torch.manual_seed(0)
    net = TinyNet(3)
    weighter = make_weighter(name, 2, **OPTIONS[name])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = tiny_data()
    for _ in range(3):
        tiny_step(net, weighter, optimizer, x, y)

    buffer = io.BytesIO()
    torch.save(weighter.state_dict(), buffer)
    saved_net = copy.deepcopy(net)
    for _ in range(2):
        tiny_step(net, weighter, optimizer, x, y)
    expected = weighter.weights.clone()
    expected_params = [p.detach().clone() for p in net.parameters()]

    buffer.seek(0)
    resumed = make_weighter(name, 2, **OPTIONS[name])
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    resumed_optimizer = torch.optim.SGD(saved_net.parameters(), lr=0.05)
    for _ in range(2):
        tiny_step(saved_net, resumed, resumed_optimizer, x, y)
    torch.testing.assert_close(resumed.weights, expected, rtol=0, atol=0)
    for got, want in zip(saved_net.parameters(), expected_params):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0)


# ---------------------------------------------------------------- grid search


def test_simplex_grid_two_tasks():
    assert simplex_grid(2, 0.5) == [(2.0, 0.0), (1.5, 0.5), (1.0, 1.0), (0.5, 1.5), (0.0, 2.0)]


def test_simplex_grid_count_and_sums():
    grid = simplex_grid(3, 0.5)
    # Six steps of 0.5 shared among three weights: C(6 + 2, 2) = 28 points.
    assert len(grid) == math.comb(8, 2)
    assert len(set(grid)) == len(grid)
    for point in grid:
        assert sum(point) == pytest.approx(3.0)
        assert min(point) >= 0.0
        assert all(value / 0.5 == pytest.approx(round(value / 0.5)) for value in point)


def test_simplex_grid_bad_step():
    with pytest.raises(ValueError, match="step=0.7 does not divide num_aux=2"):
        simplex_grid(2, 0.7)
    with pytest.raises(ValueError, match="step must be positive"):
        simplex_grid(2, 0.0)


def test_grid_search_best_and_all():
    grid = simplex_grid(2, 1.0)
    calls = []

    def run_fn(weights):
        calls.append(weights)
        return -abs(weights[0] - 1.0)

    result = grid_search(grid, run_fn)
    assert calls == [(2.0, 0.0), (1.0, 1.0), (0.0, 2.0)]
    assert result.results == [((2.0, 0.0), -1.0), ((1.0, 1.0), 0.0), ((0.0, 2.0), -1.0)]
    assert result.best_weights == (1.0, 1.0)
    assert result.best_metric == 0.0


def test_grid_search_nan_and_ties():
    metrics = {(2.0, 0.0): float("nan"), (1.0, 1.0): 0.5, (0.0, 2.0): 0.5}
    result = grid_search(simplex_grid(2, 1.0), lambda weights: metrics[weights])
    assert result.best_weights == (1.0, 1.0)
    assert len(result.results) == 3
    with pytest.raises(ValueError, match="NaN"):
        grid_search([(1.0, 1.0)], lambda weights: float("nan"))


def test_grid_search_empty_grid():
    with pytest.raises(ValueError, match="grid is empty"):
        grid_search([], lambda weights: 0.0)


def test_grid_point_fixed_weighter():
    problem = default_problem()
    weighter = fixed_weighter((0.5, 1.5))
    assert isinstance(weighter, FixedWeights)
    call(weighter, problem)
    for got, want in zip([p.grad for p in problem.params()], expected_grads(problem, torch.tensor([0.5, 1.5]))):
        torch.testing.assert_close(got, want)
