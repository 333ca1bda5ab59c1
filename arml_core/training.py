"""One joint-training loop for every experiment: a main task, K auxiliary tasks and a weighter.

Each iteration asks the experiment's ``Objective`` for the main loss, the K auxiliary losses and
(optionally) the shared features, hands them to the weighter, which writes ``.grad``, steps the
optimiser unless the weighter requests a skip, and lets the weighter and the tasks act after the
step (Langevin noise, teacher updates). Every ``eval_every`` iterations it evaluates on the
validation set and keeps the best model (model selection never looks at the test set).

Checkpoints hold everything needed for exact resume (model, optimiser, weighter, task state,
random generator, history, best model) as tensors and plain Python values, so they load with
``torch.load(weights_only=True)``. A run resumed from a checkpoint on CPU ends with the same
weights and metrics as an uninterrupted run. Ctrl-C (SIGINT, also a Jupyter interrupt) lets
the current iteration and its validation finish, saves a checkpoint and then raises
KeyboardInterrupt, so no half-done iteration is ever saved.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from tqdm.auto import tqdm

from arml_core.models.multihead import MultiHead
from arml_core.weighting.base import Weighter

logger = logging.getLogger(__name__)


@dataclass
class Losses:
    """The losses of one iteration: main (scalar), auxiliary (K scalars), shared features or None."""

    main: torch.Tensor
    aux: list[torch.Tensor]
    features: torch.Tensor | None = None


class Objective(Protocol):
    """Samples a batch and computes the losses of one iteration; owns task state such as teachers."""

    def compute_losses(self, model: MultiHead, generator: torch.Generator) -> Losses: ...

    def after_step(self, model: MultiHead) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainConfig:
    """Settings of the training loop. Iterations count optimiser calls, not epochs."""

    num_iterations: int
    lr: float = 1e-3
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    # (iteration, lr) pairs: from that iteration on, the learning rate is lr.
    lr_milestones: Sequence[tuple[int, float]] = ()
    eval_every: int = 100
    log_every: int = 10
    checkpoint_every: int = 0
    checkpoint_path: str | None = None
    selection_metric: str = "val_accuracy"
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.num_iterations < 1:
            raise ValueError(f"num_iterations must be at least 1, got {self.num_iterations}")
        if self.lr < 0:
            raise ValueError(f"lr must be non-negative, got {self.lr}")
        if self.eval_every < 1 or self.log_every < 1 or self.checkpoint_every < 0:
            raise ValueError(
                "eval_every and log_every must be >= 1 and checkpoint_every >= 0, got "
                f"{self.eval_every}, {self.log_every}, {self.checkpoint_every}"
            )
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.checkpoint_every and not self.checkpoint_path:
            raise ValueError("checkpoint_every > 0 needs checkpoint_path")


@dataclass
class TrainResult:
    """Result of a finished run; the trained model then contains the weights of the selected (best) iteration."""

    history: dict[str, Any]
    best_step: int
    best_val: dict[str, float]
    wall_time_s: float
    resumed_from: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def learning_rate_at(config: TrainConfig, iteration: int) -> float:
    """Return the learning rate in force at ``iteration`` (0-based) under the milestones."""
    lr = config.lr
    for start, value in sorted(config.lr_milestones):
        if iteration >= start:
            lr = value
    return lr


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Build Adam or SGD (with momentum) over all trainable parameters of ``model``."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def empty_history() -> dict[str, Any]:
    """Return the history layout: parallel lists per logged step, and validation records.

    ``step`` is the 0-based index of the iteration just run, and the weights logged with it are
    those after its update. A validation record's ``step`` counts finished iterations, so
    validation at step 50 follows the iteration logged as step 49.
    """
    return {"step": [], "main_loss": [], "aux_losses": [], "weights": [], "diagnostics": [], "val": []}


def train(
    model: MultiHead,
    weighter: Weighter,
    objective: Objective,
    evaluate: Callable[[MultiHead], dict[str, float]],
    config: TrainConfig,
) -> TrainResult:
    """Train ``model`` jointly; return the history and leave the best model's weights loaded.

    ``evaluate`` returns validation metrics (higher ``selection_metric`` is better) and must put
    the model back in train mode or leave the mode to this loop, which sets it each iteration.
    When ``config.checkpoint_path`` contains a checkpoint, training resumes from it.
    """
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(config.seed)
    state = _RunState(history=empty_history())
    resumed_from = None
    if config.checkpoint_path and Path(config.checkpoint_path).exists():
        resumed_from = _load_checkpoint(config.checkpoint_path, model, optimizer, weighter, objective, generator, state)
        logger.info("resumed from %s at iteration %d", config.checkpoint_path, resumed_from)

    shared = model.shared_parameters()
    bar = tqdm(total=config.num_iterations, initial=state.iteration, disable=not config.progress, desc="train")
    try:
        with _DeferredInterrupt() as interrupt:
            while state.iteration < config.num_iterations:
                _train_one_iteration(model, weighter, objective, optimizer, generator, shared, config, state)
                state.iteration += 1
                bar.update(1)
                if state.iteration % config.eval_every == 0 or state.iteration == config.num_iterations:
                    _validate(model, evaluate, config, state)
                    bar.set_postfix({config.selection_metric: state.best_val.get(config.selection_metric)})
                periodic = config.checkpoint_every and state.iteration % config.checkpoint_every == 0
                if periodic or (interrupt.requested and config.checkpoint_path):
                    _save_checkpoint(config.checkpoint_path, model, optimizer, weighter, objective, generator, state)
                if interrupt.requested:
                    saved_to = config.checkpoint_path or "none, because checkpoint_path is not set"
                    logger.warning("interrupted after iteration %d; checkpoint: %s", state.iteration, saved_to)
                    raise KeyboardInterrupt
    finally:
        bar.close()

    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    return TrainResult(state.history, state.best_step, state.best_val, state.elapsed(), resumed_from)


class _DeferredInterrupt:
    """Turn the first Ctrl-C (SIGINT) into a flag that the loop checks between iterations.

    A second Ctrl-C raises KeyboardInterrupt at once. Signal handlers can only be installed in
    the main thread. In a worker thread Ctrl-C therefore keeps its default behaviour, and no
    checkpoint is written on interruption.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> "_DeferredInterrupt":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: stopping after the current iteration (press again to stop at once)")


@dataclass
class _RunState:
    history: dict[str, Any]
    iteration: int = 0
    best_step: int = -1
    best_val: dict[str, float] = field(default_factory=dict)
    best_model: dict[str, torch.Tensor] | None = None
    elapsed_before: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Return the wall time of the run so far, including time before a resume."""
        return self.elapsed_before + time.perf_counter() - self.started


def _train_one_iteration(
    model: MultiHead,
    weighter: Weighter,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    shared: list[torch.nn.Parameter],
    config: TrainConfig,
    state: _RunState,
) -> None:
    lr = learning_rate_at(config, state.iteration)
    for group in optimizer.param_groups:
        group["lr"] = lr

    model.train()
    optimizer.zero_grad(set_to_none=True)
    losses = objective.compute_losses(model, generator)
    info = weighter.backward(losses.main, losses.aux, shared, features=losses.features)
    if not info.skip_model_step:
        optimizer.step()
        weighter.after_optimizer_step(lr)
        objective.after_step(model)

    if state.iteration % config.log_every == 0 or state.iteration == config.num_iterations - 1:
        history = state.history
        history["step"].append(state.iteration)
        history["main_loss"].append(float(losses.main.detach()))
        history["aux_losses"].append([float(loss.detach()) for loss in losses.aux])
        history["weights"].append([float(w) for w in weighter.weights])
        history["diagnostics"].append(dict(info.metrics))


def _validate(
    model: MultiHead,
    evaluate: Callable[[MultiHead], dict[str, float]],
    config: TrainConfig,
    state: _RunState,
) -> None:
    model.eval()
    with torch.no_grad():
        metrics = {key: float(value) for key, value in evaluate(model).items()}
    model.train()
    if config.selection_metric not in metrics:
        raise KeyError(
            f"evaluate() returned {sorted(metrics)}, which lacks the selection metric "
            f"{config.selection_metric!r}; set TrainConfig.selection_metric to one of them"
        )
    state.history["val"].append({"step": state.iteration, **metrics})
    score = metrics[config.selection_metric]
    best = state.best_val.get(config.selection_metric, math.nan)
    # A NaN score never wins, and any number beats a NaN best.
    if state.best_step < 0 or score > best or (math.isnan(best) and not math.isnan(score)):
        state.best_step = state.iteration
        state.best_val = metrics
        state.best_model = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _save_checkpoint(
    path: str | None,
    model: MultiHead,
    optimizer: torch.optim.Optimizer,
    weighter: Weighter,
    objective: Objective,
    generator: torch.Generator,
    state: _RunState,
) -> None:
    if path is None:
        return
    checkpoint = {
        "iteration": state.iteration,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "weighter": weighter.state_dict(),
        "objective": objective.state_dict(),
        "generator": generator.get_state(),
        "history": state.history,
        "best_step": state.best_step,
        "best_val": state.best_val,
        "best_model": state.best_model,
        "elapsed": state.elapsed(),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, target)


def _load_checkpoint(
    path: str,
    model: MultiHead,
    optimizer: torch.optim.Optimizer,
    weighter: Weighter,
    objective: Objective,
    generator: torch.Generator,
    state: _RunState,
) -> int:
    checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    weighter.load_state_dict(checkpoint["weighter"])
    objective.load_state_dict(checkpoint["objective"])
    generator.set_state(checkpoint["generator"])
    state.iteration = int(checkpoint["iteration"])
    state.history = copy.deepcopy(checkpoint["history"])
    state.best_step = int(checkpoint["best_step"])
    state.best_val = dict(checkpoint["best_val"])
    state.best_model = checkpoint["best_model"]
    state.elapsed_before = float(checkpoint["elapsed"])
    state.started = time.perf_counter()
    return state.iteration
