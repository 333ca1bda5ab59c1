"""Semi-supervised learning with self-supervised auxiliary tasks (S4L), reweighted by a weighter.

The main task is classification on a small labelled subset; the auxiliary tasks (rotation,
Exemplar-MT, or a deliberately unrelated random-label task) run on unlabelled images. The CPU
default uses scikit-learn's digits with a small CNN. The paper's settings (ARML appendix B.1)
use CIFAR-10 (4,000 labels) or SVHN (1,000 labels) read from ``data_root`` with WRN-28-2.
They train for 200,000 iterations at batch 256 with Adam, lr 0.005 and then 0.001 from
iteration 160,000. Those values live in the paper-scale parameter files, not in the defaults.

Labelled-batch augmentation (``augment_labelled``): the realistic-SSL reference settings of
Oliver et al. (2018), which ARML follows, translate images by up to 2 pixels and flip CIFAR-10
images left-right. The ARML paper does not mention it, so it is off by default and the
paper-scale parameter files turn it on. On digits it keeps the main loss from reaching zero,
a departure from the paper that keeps g_m informative for longer.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from arml_core.experiments.common import RunResult, resolve_device, seed_everything
from arml_core.experiments.ssl_data import SSLData, evaluate_accuracy, load_ssl_data, translate_and_flip
from arml_core.models import MultiHead, linear_head, make_backbone
from arml_core.tasks import AuxTask, make_aux_task
from arml_core.training import Losses, TrainConfig, train
from arml_core.weighting import Weighter, make_weighter

logger = logging.getLogger(__name__)

Prepare = Callable[[torch.Tensor, torch.device], torch.Tensor]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class SSLConfig:
    """Settings of one semi-supervised run. Defaults are the digits CPU setting."""

    dataset: str = "digits"
    labels_per_class: int = 10
    aux_tasks: tuple[str, ...] = ("rotation", "exemplar")
    # Options per auxiliary task name; Exemplar-MT's cutout_size defaults to half the image side.
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
    augment_labelled: bool = False
    max_shift: int | None = None  # pixels; None: 2 for 32x32 images, 1 for 8x8 digits
    data_root: str = "data"
    num_val: int | None = None  # CIFAR-10 and SVHN only; None: the paper's 5,000 and 7,325
    verify_checksums: bool = True
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

    def setting(self) -> str:
        """Return a short description such as "digits, 10 labels/class, small_cnn, rotation+exemplar, 600 iterations"."""
        return (f"{self.dataset}, {self.labels_per_class} labels/class, {self.backbone}, "
                f"{'+'.join(self.aux_tasks)}, {self.num_iterations} iterations")


class SSLObjective:
    """Main loss on a labelled batch and each auxiliary loss on an unlabelled batch.

    Batches are drawn with replacement from in-memory tensors using the loop's generator, so
    the sequence of batches is a deterministic function of the seed and survives a resume.
    ``prepare`` turns a stored batch into float on ``device`` (default: move it there);
    ``augment`` (optional) transforms the prepared labelled batch.
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
        prepare: Prepare | None = None,
        augment: Augment | None = None,
    ) -> None:
        self.labelled_images = labelled_images
        self.labelled_labels = labelled_labels
        self.unlabelled_images = unlabelled_images
        self.aux_tasks = aux_tasks
        self.batch_size = batch_size
        self.unlabelled_batch_size = unlabelled_batch_size
        self.device = device
        self.prepare = prepare or (lambda images, target: images.to(target))
        self.augment = augment

    def compute_losses(self, model: MultiHead, generator: torch.Generator) -> Losses:
        index = torch.randint(len(self.labelled_images), (self.batch_size,), generator=generator)
        images = self.prepare(self.labelled_images[index], self.device)
        if self.augment is not None:
            images = self.augment(images, generator)
        labels = self.labelled_labels[index].to(self.device)
        main = F.cross_entropy(model(images, "main"), labels)

        index = torch.randint(len(self.unlabelled_images), (self.unlabelled_batch_size,), generator=generator)
        unlabelled = self.prepare(self.unlabelled_images[index], self.device)
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
    if config.backbone in ("small_cnn", "wrn28_2"):
        options.setdefault("in_channels", in_channels)
    backbone = make_backbone(config.backbone, **options)
    heads = {"main": linear_head(backbone.feature_dim, num_classes)}
    for task in tasks:
        heads[task.head_name] = task.make_head(backbone.feature_dim)
    return MultiHead(backbone, heads)


def default_backbone_options(backbone: str, width: int, bn_momentum: float) -> dict[str, Any]:
    """Return the backbone options a notebook sets: width for ``small_cnn``, BN momentum for ``wrn28_2``.

    The small CNN's feature size is twice its width. Other backbones get no options.
    """
    if backbone == "small_cnn":
        return {"width": width, "feature_dim": 2 * width}
    if backbone == "wrn28_2":
        return {"bn_momentum": bn_momentum}
    return {}


def build_aux_tasks(config: SSLConfig, image_size: int) -> list[AuxTask]:
    """Build the auxiliary tasks; Exemplar-MT's Cutout square defaults to half the image side.

    Half the side gives the 16-pixel square of Cutout on 32x32 CIFAR-10 and 4 pixels on 8x8 digits.
    """
    tasks = []
    for name in config.aux_tasks:
        options = dict(config.aux_options.get(name, {}))
        if name == "exemplar":
            options.setdefault("cutout_size", image_size // 2)
        tasks.append(make_aux_task(name, **options))
    return tasks


def build_weighter(config: SSLConfig, num_aux: int) -> Weighter:
    """Build ``config.method`` with its options; ARML's Langevin noise is seeded from the run's seed."""
    options = dict(config.method_options)
    if config.method == "arml":
        options.setdefault("seed", config.seed)
    return make_weighter(config.method, num_aux, **options)


def labelled_augmentation(config: SSLConfig, data: SSLData) -> Augment | None:
    """Return the labelled-batch augmentation of the config, or None when it is off.

    Translations by ``max_shift`` pixels (default 2 on 32x32 images, 1 on 8x8 digits), plus
    left-right flips on CIFAR-10 only: flipped digits and house numbers are other symbols.
    """
    if not config.augment_labelled:
        return None
    shift = config.max_shift if config.max_shift is not None else max(1, data.image_size // 16)
    flip = config.dataset == "cifar10"
    return lambda images, generator: translate_and_flip(images, generator, shift, flip)


def run(config: SSLConfig) -> RunResult:
    """Train one semi-supervised run and evaluate the selected model on the test set.

    Model selection uses validation accuracy only; the test set is read once, at the end.
    """
    seed_everything(config.seed, config.num_threads)
    device = resolve_device(config.device)
    data = load_ssl_data(config.dataset, config.labels_per_class, config.seed, config.data_root,
                         config.num_val, config.verify_checksums)
    tasks = build_aux_tasks(config, data.image_size)
    model = build_model(config, num_classes=10, in_channels=data.in_channels, tasks=tasks).to(device)
    weighter = build_weighter(config, len(tasks))
    objective = SSLObjective(
        data.labelled_images, data.labelled_labels, data.unlabelled_images, tasks,
        config.batch_size, config.unlabelled_batch_size, device,
        prepare=data.prepare, augment=labelled_augmentation(config, data),
    )
    train_config = TrainConfig(
        num_iterations=config.num_iterations, lr=config.lr, optimizer=config.optimizer,
        weight_decay=config.weight_decay, lr_milestones=config.lr_milestones,
        eval_every=config.eval_every, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, checkpoint_path=config.checkpoint_path,
        selection_metric="val_accuracy", seed=config.seed, progress=config.progress,
    )

    def evaluate(current: MultiHead) -> dict[str, float]:
        return {"val_accuracy": evaluate_accuracy(current, data, data.val_images, data.val_labels)}

    result = train(model, weighter, objective, evaluate, train_config)
    model.eval()
    test_accuracy = evaluate_accuracy(model, data, data.test_images, data.test_labels)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "val_accuracy": result.best_val["val_accuracy"],
        "best_step": float(result.best_step),
    }
    return RunResult(
        experiment="ssl", dataset=config.dataset, method=config.method, seed=config.seed,
        config={**config.to_dict(), "setting": config.setting()}, metrics=metrics,
        history=result.history, wall_time_s=result.wall_time_s,
        extras={"aux_tasks": [t.name for t in tasks]},
    )
