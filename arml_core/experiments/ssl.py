"""Semi-supervised learning with self-supervised auxiliary tasks (S4L), reweighted by a weighter.

The main task is classification on a small labelled subset; the auxiliary tasks (rotation,
Exemplar-MT, or a deliberately unrelated random-label task) run on unlabelled images. The CPU
default uses scikit-learn's digits; the paper's CIFAR-10 and SVHN settings use WRN-28-2.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from arml_core.data.digits import load_digits_splits
from arml_core.experiments.common import RunResult, classification_accuracy, resolve_device, seed_everything
from arml_core.models import MultiHead, linear_head, make_backbone
from arml_core.tasks import AuxTask, make_aux_task
from arml_core.training import Losses, TrainConfig, train
from arml_core.weighting import make_weighter

logger = logging.getLogger(__name__)


@dataclass
class SSLConfig:
    """Settings of one semi-supervised run. Defaults are the digits CPU setting."""

    dataset: str = "digits"
    labels_per_class: int = 10
    aux_tasks: tuple[str, ...] = ("rotation", "random_label")
    aux_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    method: str = "arml"
    method_options: dict[str, Any] = field(default_factory=dict)
    backbone: str = "small_cnn"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    num_iterations: int = 600
    batch_size: int = 32
    unlabelled_batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    lr_milestones: tuple[tuple[int, float], ...] = ()
    weight_decay: float = 0.0
    eval_every: int = 50
    log_every: int = 5
    checkpoint_every: int = 0
    checkpoint_path: str | None = None
    seed: int = 0
    num_threads: int | None = 2
    device: str = "cpu"
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SSLObjective:
    """Main loss on a labelled batch and each auxiliary loss on an unlabelled batch.

    Batches are drawn with replacement from in-memory tensors using the loop's generator, so
    the sequence of batches is a deterministic function of the seed and survives a resume.
    """

    def __init__(
        self,
        labelled_images: torch.Tensor,
        labelled_labels: torch.Tensor,
        unlabelled_images: torch.Tensor,
        aux_tasks: list[AuxTask],
        batch_size: int,
        unlabelled_batch_size: int,
        device: torch.device,
    ) -> None:
        self.labelled_images = labelled_images
        self.labelled_labels = labelled_labels
        self.unlabelled_images = unlabelled_images
        self.aux_tasks = aux_tasks
        self.batch_size = batch_size
        self.unlabelled_batch_size = unlabelled_batch_size
        self.device = device

    def compute_losses(self, model: MultiHead, generator: torch.Generator) -> Losses:
        index = torch.randint(len(self.labelled_images), (self.batch_size,), generator=generator)
        images = self.labelled_images[index].to(self.device)
        labels = self.labelled_labels[index].to(self.device)
        main = F.cross_entropy(model(images, "main"), labels)

        index = torch.randint(len(self.unlabelled_images), (self.unlabelled_batch_size,), generator=generator)
        unlabelled = self.unlabelled_images[index].to(self.device)
        aux = [task.loss(model, unlabelled, generator) for task in self.aux_tasks]
        return Losses(main=main, aux=aux)

    def after_step(self, model: MultiHead) -> None:
        for task in self.aux_tasks:
            task.after_step(model)

    def state_dict(self) -> dict[str, Any]:
        return {task.name: task.state_dict() for task in self.aux_tasks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for task in self.aux_tasks:
            task.load_state_dict(state[task.name])


def build_model(config: SSLConfig, num_classes: int, in_channels: int, tasks: list[AuxTask]) -> MultiHead:
    """Build the backbone and one head per task: "main" plus each auxiliary task's own head."""
    options = dict(config.backbone_options)
    if config.backbone == "small_cnn":
        options.setdefault("in_channels", in_channels)
    backbone = make_backbone(config.backbone, **options)
    heads = {"main": linear_head(backbone.feature_dim, num_classes)}
    for task in tasks:
        heads[task.head_name] = task.make_head(backbone.feature_dim)
    return MultiHead(backbone, heads)


def run(config: SSLConfig) -> RunResult:
    """Train one semi-supervised run and evaluate the selected model on the test set."""
    if config.dataset != "digits":
        raise ValueError(
            f"dataset {config.dataset!r} is not available in this build of the SSL experiment; "
            "use dataset='digits'"
        )
    seed_everything(config.seed, config.num_threads)
    device = resolve_device(config.device)
    splits = load_digits_splits(labels_per_class=config.labels_per_class, seed=config.seed)
    tasks = [make_aux_task(name, **config.aux_options.get(name, {})) for name in config.aux_tasks]
    model = build_model(config, num_classes=10, in_channels=1, tasks=tasks).to(device)

    options = dict(config.method_options)
    if config.method == "arml":
        options.setdefault("seed", config.seed)
    weighter = make_weighter(config.method, len(tasks), **options)
    objective = SSLObjective(
        splits.labelled_images, splits.labelled_labels, splits.train_images, tasks,
        config.batch_size, config.unlabelled_batch_size, device,
    )
    train_config = TrainConfig(
        num_iterations=config.num_iterations, lr=config.lr, optimizer=config.optimizer,
        weight_decay=config.weight_decay, lr_milestones=config.lr_milestones,
        eval_every=config.eval_every, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, checkpoint_path=config.checkpoint_path,
        selection_metric="val_accuracy", seed=config.seed, progress=config.progress,
    )

    def evaluate(current: MultiHead) -> dict[str, float]:
        return {"val_accuracy": classification_accuracy(current, "main", splits.val_images, splits.val_labels)}

    result = train(model, weighter, objective, evaluate, train_config)
    model.eval()
    test_accuracy = classification_accuracy(model, "main", splits.test_images, splits.test_labels)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "val_accuracy": result.best_val["val_accuracy"],
        "best_step": float(result.best_step),
    }
    weights_at_best = _weights_at(result.history, result.best_step)
    return RunResult(
        experiment="ssl", dataset=config.dataset, method=config.method, seed=config.seed,
        config=config.to_dict(), metrics=metrics, history=result.history,
        wall_time_s=result.wall_time_s,
        extras={"aux_tasks": [t.name for t in tasks], "weights_at_best": weights_at_best},
    )


def _weights_at(history: dict[str, Any], step: int) -> list[float]:
    """Return the last logged weights at or before ``step``."""
    chosen = history["weights"][0] if history["weights"] else []
    for logged_step, weights in zip(history["step"], history["weights"]):
        if logged_step <= step:
            chosen = weights
    return chosen
