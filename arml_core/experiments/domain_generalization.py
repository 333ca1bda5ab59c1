"""Multi-source domain generalisation with a few labelled target images (ARML Table 4, Figures 3, 4).

Every source domain is an auxiliary task (classification of that domain's batch) and the Nm
labelled images per class of the target domain form the main task. All tasks share one
classifier head, ``"main"``: the target is classified by the head the sources train, which is
the only choice under which the Baseline (sources alone, target labels unused) can classify
target images at all. The methods (``METHODS``):

- ``baseline``: uniform weights on the sources; the target labels never reach the model step.
- ``jt``: joint training, the target loss added to the uniform source losses.
- ``baseline_arml``: ARML weights the sources; the target loss enters only ARML's objective
  (through g_m), and the model step uses the weighted source losses alone.
- ``jt_arml``: ARML with the target loss in the model step as well.
- ``fada`` and ``fada_arml``: joint training plus FADA's adversarial pair loss (see ``fada``).

Model selection uses the pooled source validation sets (9:1 splits), never the target.
In ``baseline`` and ``baseline_arml`` the target batch passes through batch norm with its
running statistics frozen, so the model never absorbs anything from the target domain.

The CPU default is the rotated digits with a small CNN; Shi et al.'s setting is PACS with
ResNet-18 (ImageNet weights from a local file), crops of 80 to 100% of the area, flips, SGD.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from arml_core.experiments.common import RunResult, resolve_device, resolve_repo_path, seed_everything
from arml_core.experiments.dg_data import BatchTransform, DGData, accuracy, load_dg_data
from arml_core.experiments.dg_weighting import make_dg_weighter
from arml_core.experiments.fada import FADA
from arml_core.models import MultiHead, linear_head, make_backbone
from arml_core.training import Losses, TrainConfig, train

logger = logging.getLogger(__name__)

METHODS = ("baseline", "jt", "baseline_arml", "jt_arml", "fada", "fada_arml")
TARGET_LABELS_IN_MODEL_STEP = {"baseline": False, "baseline_arml": False}


@dataclass
class DGConfig:
    """Settings of one domain-generalisation run.

    The defaults are the rotated-digits CPU setting of the notebooks, except the backbone
    width, which the notebooks shrink with ``backbone_options``.
    """

    dataset: str = "rotated_digits"
    data_root: str = "data"
    target_domain: str = "rot75"
    source_domains: tuple[str, ...] = ()  # empty: every other domain
    labels_per_class: int = 5  # Nm; -1 labels the whole target domain and leaves no test set
    method: str = "jt_arml"
    arml_options: dict[str, Any] = field(default_factory=dict)  # used by the *_arml methods only
    backbone: str = "small_cnn"
    backbone_options: dict[str, Any] = field(default_factory=dict)  # e.g. {"width": 16} for small_cnn
    pretrained_weights_path: str | None = None
    image_size: int = 16
    crop_scale: tuple[float, float] | None = None
    horizontal_flip: bool = False
    batch_size: int = 12  # images per source domain per iteration
    target_batch_size: int = 64  # labelled target images per iteration (all of them when fewer)
    num_iterations: int = 120
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_milestones: tuple[tuple[int, float], ...] = ()
    fada_gamma: float = 0.1
    fada_lr: float = 1e-3
    fada_pairs_per_group: int = 32
    fada_warmup: int = 50
    eval_every: int = 20
    log_every: int = 5
    checkpoint_every: int = 0
    checkpoint_path: str | None = None
    seed: int = 0
    num_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True
    setting: str = ""  # shown beside the numbers in tables; built from the config when empty

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain values, with ``setting`` filled in."""
        values = dataclasses.asdict(self)
        values["setting"] = self.setting or describe_setting(self)
        return values


def describe_setting(config: DGConfig) -> str:
    """Return a one-line description such as "rotated digits, target rot75, 5 labels/class, small_cnn"."""
    dataset = "rotated digits" if config.dataset == "rotated_digits" else config.dataset.upper()
    labels = "all labelled" if config.labels_per_class < 0 else f"{config.labels_per_class} labels/class"
    return f"{dataset}, target {config.target_domain}, {labels}, {config.backbone}"


@contextlib.contextmanager
def frozen_batchnorm_statistics(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Keep the running mean and variance of every batch-norm layer unchanged inside the block.

    The batch is still normalised with its own statistics in train mode (the gradient is the
    usual one); only the update of the running statistics is suppressed (momentum 0).
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if enabled else []
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


class DGObjective:
    """Source losses (one per domain) and the target loss of one iteration.

    The source batches go through the model together (one forward, so batch norm sees all
    sources); the labelled target batch goes through on its own. Batches are drawn with the
    loop's generator, so they are a deterministic function of the seed and survive a resume.
    """

    def __init__(self, data: DGData, transform: BatchTransform, batch_size: int, target_batch_size: int,
                 device: torch.device, target_in_model_step: bool, fada: FADA | None = None) -> None:
        if len(data.labelled[1]) == 0:
            raise ValueError("the main task needs labelled target images: set labels_per_class >= 1")
        self.data = data
        self.transform = transform
        self.batch_size = batch_size
        self.target_batch_size = target_batch_size
        self.device = device
        self.target_in_model_step = target_in_model_step
        self.fada = fada

    def compute_losses(self, model: MultiHead, generator: torch.Generator) -> Losses:
        images, labels = [], []
        for domain_images, domain_labels in self.data.train:
            index = torch.randint(len(domain_labels), (self.batch_size,), generator=generator)
            images.append(domain_images[index])
            labels.append(domain_labels[index])
        source_labels = torch.cat(labels).to(self.device)
        source_features = model.features(self.transform(torch.cat(images).to(self.device), generator))
        logits = model.head("main", source_features).split(self.batch_size)
        aux = [F.cross_entropy(chunk, y) for chunk, y in zip(logits, source_labels.split(self.batch_size))]

        target_images, target_labels = self.data.labelled
        if len(target_labels) <= self.target_batch_size:
            index = torch.arange(len(target_labels))
        else:
            index = torch.randint(len(target_labels), (self.target_batch_size,), generator=generator)
        target_labels = target_labels[index].to(self.device)
        with frozen_batchnorm_statistics(model, enabled=not self.target_in_model_step):
            target_features = model.features(self.transform(target_images[index].to(self.device), generator))
        main = F.cross_entropy(model.head("main", target_features), target_labels)

        if self.fada is not None:
            main = main + self.fada.confusion_loss(source_features, source_labels, target_features,
                                                   target_labels, generator)
        return Losses(main=main, aux=aux)

    def after_step(self, model: MultiHead) -> None:
        """Nothing to update after the model step (the DCD trains inside ``compute_losses``)."""

    def state_dict(self) -> dict[str, Any]:
        return {"fada": self.fada.state_dict()} if self.fada is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.fada is not None:
            self.fada.load_state_dict(state["fada"])


def build_model(config: DGConfig, num_classes: int, in_channels: int) -> MultiHead:
    """Build the backbone and the shared classifier head ``"main"``."""
    if config.backbone == "resnet18":
        weights_path = _repo_path_or_none(config.pretrained_weights_path)
        backbone = make_backbone("resnet18", weights_path=weights_path, in_channels=in_channels,
                                 **config.backbone_options)
    elif config.pretrained_weights_path:
        raise ValueError(f"pretrained_weights_path is only read for backbone='resnet18', not {config.backbone!r}")
    else:
        backbone = make_backbone(config.backbone, **{"in_channels": in_channels, **config.backbone_options})
    return MultiHead(backbone, {"main": linear_head(backbone.feature_dim, num_classes)})


def run(config: DGConfig) -> RunResult:
    """Train one run and evaluate the model selected on the source validation sets on the target."""
    if config.method not in METHODS:
        raise ValueError(f"unknown DG method {config.method!r}; valid methods: {', '.join(METHODS)}")
    seed_everything(config.seed, config.num_threads)
    device = resolve_device(config.device)
    data = load_dg_data(config.dataset, config.target_domain, config.labels_per_class, config.image_size,
                        config.seed, resolve_repo_path(config.data_root), tuple(config.source_domains))
    model = build_model(config, data.num_classes, data.in_channels).to(device)
    num_aux = len(data.source_domains)
    weighter = make_dg_weighter(config.method, num_aux, dict(config.arml_options), config.seed)

    fada = None
    if config.method.startswith("fada"):
        fada = FADA(model.backbone.feature_dim, gamma=config.fada_gamma, lr=config.fada_lr,
                    pairs_per_group=config.fada_pairs_per_group, warmup=config.fada_warmup, device=device)
    transform = BatchTransform(normalize=config.dataset == "pacs", crop_scale=config.crop_scale,
                               horizontal_flip=config.horizontal_flip)
    objective = DGObjective(data, transform, config.batch_size, config.target_batch_size, device,
                            TARGET_LABELS_IN_MODEL_STEP.get(config.method, True), fada)
    train_config = TrainConfig(
        num_iterations=config.num_iterations, lr=config.lr, optimizer=config.optimizer,
        momentum=config.momentum, weight_decay=config.weight_decay, lr_milestones=config.lr_milestones,
        eval_every=config.eval_every, log_every=config.log_every, checkpoint_every=config.checkpoint_every,
        checkpoint_path=config.checkpoint_path, selection_metric="val_accuracy", seed=config.seed,
        progress=config.progress,
    )
    val_images = torch.cat([images for images, _ in data.val])
    val_labels = torch.cat([labels for _, labels in data.val])

    def evaluate(current: MultiHead) -> dict[str, float]:
        return {"val_accuracy": accuracy(current, val_images, val_labels, transform)}

    result = train(model, weighter, objective, evaluate, train_config)
    model.eval()
    metrics = {"val_accuracy": result.best_val["val_accuracy"], "best_step": float(result.best_step)}
    record_config = {**config.to_dict(), "aux_tasks": list(data.source_domains)}
    if len(data.test[1]):
        metrics["test_accuracy"] = accuracy(model, *data.test, transform)
    return RunResult(
        experiment="dg", dataset=config.dataset, method=config.method, seed=config.seed,
        config=record_config, metrics=metrics, history=result.history, wall_time_s=result.wall_time_s,
        extras={"aux_tasks": data.source_domains, "weights_at_best": weights_at(result.history, result.best_step)},
    )


def weights_at(history: dict[str, Any], step: int) -> list[float]:
    """Return the last logged task weights at or before ``step``."""
    chosen = history["weights"][0] if history["weights"] else []
    for logged_step, weights in zip(history["step"], history["weights"]):
        if logged_step <= step:
            chosen = weights
    return chosen



def _repo_path_or_none(path: str | None) -> str | None:
    """Return ``path`` resolved like ``resolve_repo_path``, or None for an empty path."""
    return str(resolve_repo_path(path)) if path else None
