"""Multi-label classification: one main attribute with few labels, the other attributes auxiliary.

The setting of Shi et al. (NeurIPS 2020, Sec. 3.1 and Appendix B.2) is CelebA. One face
attribute is the main task with 1% of its training labels, and the other 39 attributes are
auxiliary tasks with all labels. A ResNet-18 backbone is shared, and every attribute has its
own binary head trained with binary cross-entropy. The CPU default replaces CelebA with the
binary attributes of scikit-learn's digits (``arml_core.data.digit_attributes``) and a small CNN.

The binary heads of all attributes are the rows of one ``nn.Linear(feature_dim, A)`` named
"attributes": row k only receives gradient from the loss of attribute k, so this equals A
separate linear heads and costs one matrix product. The main loss averages the binary
cross-entropy over the batch images whose main label is kept. A batch without any kept main
label gives a main loss of exactly zero that is still connected to the graph (the masked sum
divided by max(count, 1)), so every weighter sees g_m = 0 on that step instead of an error.

Batches are drawn without replacement within an epoch. The batch of iteration t is a function
of (seed, t) only, so a run resumed at iteration t draws the batches that an uninterrupted
run would draw.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from arml_core.data.digit_attributes import load_digit_attributes, mutual_information
from arml_core.experiments.common import (
    RunResult, cap_workers, load_history, resolve_device, resolve_repo_path, run_in_folder, seed_everything,
)
from arml_core.models import MultiHead, linear_head, make_backbone
from arml_core.results import RunRecord
from arml_core.training import Losses, TrainConfig, train
from arml_core.weighting import make_weighter

logger = logging.getLogger(__name__)

HEAD = "attributes"
DATASETS = ("digit_attributes", "celeba")
# Per-method options that keep a step cheap with many auxiliary tasks: ARML takes its gradients
# at the shared features. CosineSim and OL_AUX only offer gradients over the shared parameters,
# and their default "loop" mode ran faster than "batched" on a 2-core CPU with 18 tasks.
# GradNorm measures one layer by default.
FAST_OPTIONS: dict[str, dict[str, Any]] = {"arml": {"grad_mode": "features"}}


@dataclass
class MultilabelConfig:
    """Settings of one multi-label run. Defaults are the digit-attributes CPU setting."""

    dataset: str = "digit_attributes"
    main_attribute: str = "closed_loop"
    main_label_fraction: float = 0.03
    method: str = "arml"
    method_options: dict[str, Any] = field(default_factory=dict)
    backbone: str = "small_cnn"
    backbone_options: dict[str, Any] = field(default_factory=dict)
    num_iterations: int = 150
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    lr_milestones: tuple[tuple[int, float], ...] = ()
    weight_decay: float = 0.0
    eval_every: int = 25
    log_every: int = 5
    checkpoint_every: int = 0
    checkpoint_path: str | None = None
    data_root: str = "data"
    image_size: int = 64
    num_workers: int = 2
    verify_checksums: bool = True
    seed: int = 0
    num_threads: int | None = 1
    device: str = "cpu"
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def epoch_batch_indices(num_items: int, batch_size: int, seed: int, iteration: int) -> torch.Tensor:
    """Return the indices of the batch of ``iteration``: a slice of a per-epoch permutation.

    An epoch has ``max(1, num_items // batch_size)`` batches (the last partial batch is
    dropped); epoch e uses ``randperm`` seeded with ``seed * 1_000_003 + e``.
    """
    per_epoch = max(1, num_items // batch_size)
    epoch, position = divmod(iteration, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator)
    return order[position * batch_size:(position + 1) * batch_size]


def masked_main_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean binary cross-entropy over the entries where ``mask`` is True.

    ``logits``, ``targets`` (0/1 floats) and ``mask`` (bool) have shape (B,). With no True
    entry the result is a zero that depends on ``logits``, so backward still runs.
    """
    per_image = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weights = mask.to(per_image.dtype)
    return (per_image * weights).sum() / weights.sum().clamp_min(1.0)


class AttributeSource(Protocol):
    """Training batches and evaluation batches of one attribute dataset."""

    attr_names: list[str]
    main_index: int
    num_train: int
    setting: str
    train_attributes: torch.Tensor  # float 0/1, (num_train, A), all labels (for analysis only)

    def train_batches(self, indices: Iterator[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (images, attributes (B, A) float 0/1, main-label mask (B,) bool) per index batch."""
        ...

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (images, attributes) over the "val" or "test" split."""
        ...


class DigitAttributeSource:
    """The digit attributes, held in memory."""

    def __init__(self, config: MultilabelConfig) -> None:
        self.data = load_digit_attributes(config.main_attribute, config.main_label_fraction, seed=config.seed)
        self.attr_names = self.data.attr_names
        self.main_index = self.data.main_index
        self.num_train = len(self.data.train_images)
        self.train_attributes = self.data.train_attributes
        kept = int(self.data.train_main_mask.sum())
        self.setting = f"digit attributes, {kept} main labels, small CNN"

    def train_batches(self, indices: Iterator[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for index in indices:
            yield self.data.train_images[index], self.data.train_attributes[index], self.data.train_main_mask[index]

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split == "val":
            yield self.data.val_images, self.data.val_attributes
        else:
            yield self.data.test_images, self.data.test_attributes


class _Indexed(Dataset):
    """Items of ``dataset`` with their index appended: (image, target, index)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image, target = self.dataset[index]
        return image, target, index


class CelebASource:
    """CelebA from ``config.data_root``, resized to ``image_size`` and normalised with ImageNet statistics."""

    def __init__(self, config: MultilabelConfig) -> None:
        from torchvision import transforms

        from arml_core.data.celeba import load_celeba

        # NOTE: Shi et al. state neither the input size nor the augmentation. This uses a
        # resize and centre crop to image_size and no augmentation.
        transform = transforms.Compose([
            transforms.Resize(config.image_size), transforms.CenterCrop(config.image_size), transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])
        self.data = load_celeba(config.data_root, main_attribute=config.main_attribute,
                                main_label_fraction=config.main_label_fraction, seed=config.seed, transform=transform,
                                verify_checksums=config.verify_checksums)
        self.attr_names = self.data.attr_names
        self.main_index = self.data.main_index
        self.num_train = len(self.data.train_set)
        self.train_attributes = self.data.train_set.attr.to(torch.float32)
        self.workers = cap_workers(config.num_workers)
        self.batch_size = config.batch_size
        self.setting = f"CelebA, {config.main_label_fraction:.0%} main labels, ResNet-18"

    def train_batches(self, indices: Iterator[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        # The batch sampler runs in this process, so batches arrive in the order of ``indices``.
        loader = DataLoader(_Indexed(self.data.train_set), batch_sampler=(i.tolist() for i in indices),
                            num_workers=self.workers, pin_memory=torch.cuda.is_available())
        mask = self.data.train_main_mask
        for images, targets, index in loader:
            yield images, targets, mask[index]

    def eval_batches(self, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        dataset = self.data.val_set if split == "val" else self.data.test_set
        yield from DataLoader(dataset, batch_size=self.batch_size, num_workers=self.workers)


def build_source(config: MultilabelConfig) -> AttributeSource:
    """Return the data source named by ``config.dataset``."""
    if config.dataset == "digit_attributes":
        return DigitAttributeSource(config)
    if config.dataset == "celeba":
        return CelebASource(config)
    raise ValueError(f"unknown dataset {config.dataset!r}; valid names are: {', '.join(DATASETS)}")


class MultilabelObjective:
    """Main loss over the kept main labels of a batch, one auxiliary BCE loss per other attribute."""

    def __init__(self, source: AttributeSource, batch_size: int, seed: int, device: torch.device) -> None:
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.aux_indices = [i for i in range(len(source.attr_names)) if i != source.main_index]
        self.iteration = 0
        self._batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def _index_stream(self, start: int) -> Iterator[torch.Tensor]:
        iteration = start
        while True:
            yield epoch_batch_indices(self.source.num_train, self.batch_size, self.seed, iteration)
            iteration += 1

    def compute_losses(self, model: MultiHead, generator: torch.Generator) -> Losses:
        if self._batches is None:
            self._batches = self.source.train_batches(self._index_stream(self.iteration))
        images, targets, mask = next(self._batches)
        self.iteration += 1
        images, targets, mask = images.to(self.device), targets.to(self.device), mask.to(self.device)

        features = model.features(images)
        logits = model.head(HEAD, features)
        main = self.source.main_index
        main_loss = masked_main_loss(logits[:, main], targets[:, main], mask)
        aux = [F.binary_cross_entropy_with_logits(logits[:, k], targets[:, k]) for k in self.aux_indices]
        return Losses(main=main_loss, aux=aux, features=features)

    def after_step(self, model: MultiHead) -> None:
        """No task state changes after a step."""

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self._batches = None


@torch.no_grad()
def main_accuracy(model: MultiHead, source: AttributeSource, split: str) -> float:
    """Return the fraction of ``split`` images whose main attribute the model predicts (logit > 0)."""
    device = next(model.parameters()).device
    correct = total = 0
    for images, targets in source.eval_batches(split):
        logits = model.head(HEAD, model.features(images.to(device)))[:, source.main_index].cpu()
        correct += int(((logits > 0).float() == targets[:, source.main_index]).sum())
        total += len(targets)
    return correct / total


def backbone_options(backbone: str, width: int, feature_dim: int, weights_path: str) -> dict[str, Any]:
    """Return the backbone options for the notebook's plain parameters ("" weights_path: random init)."""
    if backbone == "small_cnn":
        return {"width": width, "feature_dim": feature_dim}
    if backbone == "resnet18":
        return {"weights_path": weights_path or None}
    raise ValueError(f"unknown backbone {backbone!r} for the multi-label experiment; use 'small_cnn' or 'resnet18'")


def build_model(config: MultilabelConfig, num_attributes: int) -> MultiHead:
    """Build the backbone and one linear binary head per attribute (rows of the "attributes" head)."""
    options = dict(config.backbone_options)
    if config.backbone == "small_cnn":
        options.setdefault("in_channels", 1)
    backbone = make_backbone(config.backbone, **options)
    return MultiHead(backbone, {HEAD: linear_head(backbone.feature_dim, num_attributes)})


def run(config: MultilabelConfig) -> RunResult:
    """Train one multi-label run and report the main attribute's test error of the selected model."""
    seed_everything(config.seed, config.num_threads)
    device = resolve_device(config.device)
    source = build_source(config)
    model = build_model(config, len(source.attr_names)).to(device)
    objective = MultilabelObjective(source, config.batch_size, config.seed, device)
    aux_names = [source.attr_names[k] for k in objective.aux_indices]

    options = {**FAST_OPTIONS.get(config.method, {}), **config.method_options}
    if config.method == "arml":
        options.setdefault("seed", config.seed)
    weighter = make_weighter(config.method, len(aux_names), **options)
    train_config = TrainConfig(
        num_iterations=config.num_iterations, lr=config.lr, optimizer=config.optimizer,  # type: ignore[arg-type]
        momentum=config.momentum, weight_decay=config.weight_decay, lr_milestones=config.lr_milestones,
        eval_every=config.eval_every, log_every=config.log_every,
        checkpoint_every=config.checkpoint_every, checkpoint_path=config.checkpoint_path,
        selection_metric="val_accuracy", seed=config.seed, progress=config.progress,
    )

    def evaluate(current: MultiHead) -> dict[str, float]:
        return {"val_accuracy": main_accuracy(current, source, "val")}

    result = train(model, weighter, objective, evaluate, train_config)
    model.eval()
    test_accuracy = main_accuracy(model, source, "test")
    metrics = {
        "test_accuracy": test_accuracy,
        "test_error": 1.0 - test_accuracy,
        "val_accuracy": result.best_val["val_accuracy"],
        "best_step": float(result.best_step),
    }
    recorded = {**config.to_dict(), "main_task": config.main_attribute, "aux_tasks": aux_names,
                "setting": source.setting}
    return RunResult(
        experiment="multilabel", dataset=config.dataset,
        method=config.method, seed=config.seed, config=recorded, metrics=metrics,
        history=result.history, wall_time_s=result.wall_time_s, extras={"aux_tasks": aux_names},
    )


def run_grid(
    base: MultilabelConfig,
    methods: Sequence[str],
    seeds: Sequence[int],
    runs_dir: str | Path,
    options_by_method: dict[str, dict[str, Any]] | None = None,
) -> list[RunRecord]:
    """Run every (method, seed) pair in ``runs_dir/<method>/seed<seed>`` and return the records.

    Each run goes through ``run_in_folder``, so a finished run is loaded instead of retrained
    and an interrupted one resumes from its checkpoint. ``options_by_method`` gives the
    ``method_options`` of each method; other fields come from ``base``.
    """
    options_by_method = options_by_method or {}
    records = []
    for method, seed in tqdm(list(itertools.product(methods, seeds)), desc="runs"):
        config = dataclasses.replace(
            base, method=method, seed=seed, method_options=dict(options_by_method.get(method, {})), progress=False,
        )
        records.append(run_in_folder(run, config, run_folder(runs_dir, method, seed)))
    return records


def run_folder(runs_dir: str | Path, method: str, seed: int) -> Path:
    """Return the folder of one run: ``runs_dir/<method>/seed<seed>``, resolved by ``resolve_repo_path``."""
    return resolve_repo_path(runs_dir) / method / f"seed{seed}"


def load_run_history(runs_dir: str | Path, method: str, seed: int) -> dict[str, Any]:
    """Return the training history (losses, weights, diagnostics) stored by ``run_grid``."""
    return load_history(run_folder(runs_dir, method, seed))


def attribute_relatedness(source: AttributeSource) -> dict[str, float]:
    """Return the mutual information (nats) of each auxiliary attribute with the main one.

    Computed from every training label, the hidden main labels included, so it serves only to
    judge the weights after training and never enters training or model selection.
    """
    labels = source.train_attributes.numpy()
    aux = [k for k in range(len(source.attr_names)) if k != source.main_index]
    values = mutual_information(labels[:, source.main_index], labels[:, aux])
    return {source.attr_names[k]: float(v) for k, v in zip(aux, values)}
