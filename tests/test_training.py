"""The joint-training loop: exact resume, interruption, model selection and the skip protocol."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from typing import Any

import pytest
import torch

from arml_core.experiments.ssl import SSLConfig, run
from arml_core.models import MultiHead, SmallCNN, linear_head
from arml_core.training import Losses, TrainConfig, learning_rate_at, train
from arml_core.weighting import Uniform
from arml_core.weighting.base import StepInfo, Weighter

TINY = SSLConfig(
    num_iterations=30, eval_every=10, log_every=5, batch_size=16, unlabelled_batch_size=16,
    backbone_options={"width": 8, "feature_dim": 16}, progress=False, num_threads=1,
    method="arml", method_options={"lr": 0.05, "algorithm": 1, "temperature": 1e-6},
)


def test_extending_a_run_matches_uninterrupted_run(tmp_path):
    full = run(TINY)

    path = str(tmp_path / "ckpt.pt")
    run(replace(TINY, num_iterations=20, checkpoint_every=10, checkpoint_path=path))
    resumed = run(replace(TINY, checkpoint_every=10, checkpoint_path=path))

    assert resumed.metrics == full.metrics
    assert resumed.history["val"] == full.history["val"]
    # The 20-iteration run also logged its last iteration, 19, which the full run does not log.
    resumed_weights = dict(zip(resumed.history["step"], resumed.history["weights"]))
    assert resumed_weights.pop(19) is not None
    assert resumed_weights == dict(zip(full.history["step"], full.history["weights"]))


def test_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    run(replace(TINY, num_iterations=10, checkpoint_every=10, checkpoint_path=str(path)))
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["iteration"] == 10
    assert "weighter" in checkpoint
    assert "generator" in checkpoint


class _InterruptingObjective:
    """Wraps an objective and sends this process SIGINT (Ctrl-C) during a chosen call."""

    def __init__(self, inner: Any, interrupt_at: int | None, raw: bool = False) -> None:
        self.inner, self.interrupt_at, self.raw, self.calls = inner, interrupt_at, raw, 0

    def compute_losses(self, model, generator):
        losses = self.inner.compute_losses(model, generator)
        if self.calls == self.interrupt_at:
            if self.raw:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)
        self.calls += 1
        return losses

    def after_step(self, model):
        self.inner.after_step(model)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


class _LinearObjective:
    """Regression on fixed random data through a tiny two-layer model; one auxiliary task."""

    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 1, 4, 4, generator=generator)
        self.y = torch.randint(0, 3, (64,), generator=generator)

    def compute_losses(self, model, generator):
        index = torch.randint(64, (16,), generator=generator)
        features = model.features(self.x[index])
        main = torch.nn.functional.cross_entropy(model.head("main", features), self.y[index])
        aux = model.head("aux", features).pow(2).mean()
        return Losses(main=main, aux=[aux], features=features)

    def after_step(self, model):
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _tiny_model(seed: int = 0) -> MultiHead:
    torch.manual_seed(seed)
    backbone = SmallCNN(in_channels=1, width=4, feature_dim=8)
    return MultiHead(backbone, {"main": linear_head(8, 3), "aux": linear_head(8, 1)})


def _accuracy(model: MultiHead, objective: _LinearObjective) -> dict[str, float]:
    predictions = model(objective.x, "main").argmax(dim=1)
    return {"val_accuracy": float((predictions == objective.y).float().mean())}


def test_ctrl_c_finishes_iteration_then_resumes_exactly(tmp_path):
    config = TrainConfig(num_iterations=12, eval_every=4, log_every=1, seed=3, progress=False)
    reference = _tiny_model()
    objective = _LinearObjective()
    expected = train(reference, Uniform(1), objective, lambda m: _accuracy(m, objective), config)

    path = str(tmp_path / "ckpt.pt")
    with_path = replace(config, checkpoint_path=path)
    # Ctrl-C in the middle of iteration index 7: that iteration and its validation at 8 finish first.
    with pytest.raises(KeyboardInterrupt):
        train(_tiny_model(), Uniform(1), _InterruptingObjective(objective, 7), lambda m: _accuracy(m, objective), with_path)
    assert torch.load(path, weights_only=True)["iteration"] == 8

    resumed_model = _tiny_model(seed=99)  # different init: everything must come from the checkpoint
    result = train(resumed_model, Uniform(1), objective, lambda m: _accuracy(m, objective), with_path)
    assert result.resumed_from == 8
    assert result.history == expected.history
    assert result.best_step == expected.best_step
    for a, b in zip(reference.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


def test_raw_interrupt_keeps_last_periodic_checkpoint(tmp_path):
    objective = _LinearObjective()
    path = str(tmp_path / "ckpt.pt")
    config = TrainConfig(num_iterations=12, eval_every=4, checkpoint_every=4, checkpoint_path=path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_tiny_model(), Uniform(1), _InterruptingObjective(objective, 6, raw=True),
              lambda m: _accuracy(m, objective), config)
    assert torch.load(path, weights_only=True)["iteration"] == 4


def test_best_model_is_restored_by_validation_metric():
    objective = _LinearObjective()
    scores = iter([0.5, 0.9, 0.1])
    snapshots = []

    def evaluate(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"val_accuracy": next(scores)}

    model = _tiny_model()
    config = TrainConfig(num_iterations=6, eval_every=2, progress=False)
    result = train(model, Uniform(1), objective, evaluate, config)
    assert result.best_step == 4
    for key, value in model.state_dict().items():
        assert torch.equal(value, snapshots[1][key])


def test_missing_selection_metric_names_the_keys():
    objective = _LinearObjective()
    config = TrainConfig(num_iterations=2, eval_every=1, progress=False)
    with pytest.raises(KeyError, match="val_loss"):
        train(_tiny_model(), Uniform(1), objective, lambda m: {"val_loss": 1.0}, config)


class _SkipEveryOther(Weighter):
    def backward(self, main_loss, aux_losses, shared_params, features=None):
        self.step_count += 1
        (main_loss + sum(aux_losses)).backward()
        return StepInfo(skip_model_step=self.step_count % 2 == 0)


def test_skip_model_step_leaves_parameters_unchanged():
    objective = _LinearObjective()
    config = TrainConfig(num_iterations=1, eval_every=10, progress=False, optimizer="sgd", lr=0.1)
    before = [p.detach().clone() for p in _tiny_model().parameters()]

    one_step = _tiny_model()
    train(one_step, _SkipEveryOther(1), objective, lambda m: _accuracy(m, objective), config)
    two_steps = _tiny_model()
    train(two_steps, _SkipEveryOther(1), objective, lambda m: _accuracy(m, objective), replace(config, num_iterations=2))

    assert any(not torch.equal(a, b) for a, b in zip(before, one_step.parameters()))
    for a, b in zip(one_step.parameters(), two_steps.parameters()):
        assert torch.equal(a, b)


def test_learning_rate_milestones():
    config = TrainConfig(num_iterations=10, lr=0.005, lr_milestones=[(160, 0.001)])
    assert learning_rate_at(config, 159) == 0.005
    assert learning_rate_at(config, 160) == 0.001


@pytest.mark.parametrize(
    "field, value", [("num_iterations", 0), ("eval_every", 0), ("lr", -1.0), ("optimizer", "rmsprop")]
)
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field if field != "eval_every" else "eval_every"):
        TrainConfig(**{"num_iterations": 5, field: value})


def test_checkpoint_every_needs_path():
    with pytest.raises(ValueError, match="checkpoint_path"):
        TrainConfig(num_iterations=5, checkpoint_every=2)


def test_sigint_handler_restored_after_training():
    before = signal.getsignal(signal.SIGINT)
    objective = _LinearObjective()
    train(_tiny_model(), Uniform(1), objective, lambda m: _accuracy(m, objective),
          TrainConfig(num_iterations=2, eval_every=1, progress=False))
    assert signal.getsignal(signal.SIGINT) is before


def test_nan_validation_score_is_beaten_by_a_number():
    objective = _LinearObjective()
    scores = iter([float("nan"), 0.3, 0.2])
    result = train(_tiny_model(), Uniform(1), objective, lambda m: {"val_accuracy": next(scores)},
                   TrainConfig(num_iterations=6, eval_every=2, progress=False))
    assert result.best_step == 4
