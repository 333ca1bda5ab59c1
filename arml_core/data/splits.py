"""Deterministic train/validation splits and labelled subsets shared by every dataset builder.

All functions take integer class labels as a 1-D array, draw from
``numpy.random.default_rng(seed)`` only, and return sorted int64 index arrays into that
array, so the same labels and seed always give the same split on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset


def _as_labels(labels: Sequence[int] | np.ndarray | torch.Tensor) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, ties by class order)."""
    quotas = counts * (total / counts.sum())
    allocation = np.floor(quotas).astype(np.int64)
    remainder = total - int(allocation.sum())
    order = np.argsort(-(quotas - allocation), kind="stable")
    allocation[order[:remainder]] += 1
    return allocation


def stratified_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor, num_val: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (train, validation) with ``num_val`` validation items, stratified by class.

    Each class contributes to validation in proportion to its size (largest-remainder
    rounding), so the class frequencies of both parts match the whole.

    Returns:
        ``(train_indices, val_indices)``: disjoint sorted int64 arrays covering all indices.
    """
    labels = _as_labels(labels)
    if not 0 <= num_val <= labels.size:
        raise ValueError(f"num_val={num_val} must be between 0 and the number of items ({labels.size})")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    val_per_class = _allocate(counts, num_val) if labels.size else np.zeros(0, np.int64)

    val_parts = []
    for cls, n_val in zip(classes, val_per_class):
        members = np.flatnonzero(labels == cls)
        val_parts.append(rng.permutation(members)[:n_val])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, np.int64)
    train = np.setdiff1d(np.arange(labels.size), val)
    return train.astype(np.int64), val.astype(np.int64)


def balanced_subset(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    num_per_class: int,
    seed: int,
    candidates: np.ndarray | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """Pick ``num_per_class`` random indices of every class from ``candidates``.

    Args:
        labels: class index of every item.
        num_per_class: items drawn per class.
        seed: seed of the draw.
        candidates: indices into ``labels`` to draw from; all indices when None.
        num_classes: classes 0..num_classes-1 that must each be present; defaults to the
            classes that occur among the candidates.

    Returns:
        Sorted int64 indices into ``labels``, ``num_per_class`` per class.

    Raises:
        ValueError: a class has fewer than ``num_per_class`` candidates.
    """
    labels = _as_labels(labels)
    if num_per_class < 0:
        raise ValueError(f"num_per_class must be >= 0, got {num_per_class}")
    pool = np.arange(labels.size) if candidates is None else np.asarray(candidates, dtype=np.int64)
    classes = np.arange(num_classes) if num_classes is not None else np.unique(labels[pool])
    rng = np.random.default_rng(seed)

    chosen = []
    for cls in classes:
        members = pool[labels[pool] == cls]
        if members.size < num_per_class:
            raise ValueError(
                f"class {cls} has {members.size} candidate items, fewer than num_per_class={num_per_class}; "
                "lower the number of labels per class"
            )
        chosen.append(rng.permutation(members)[:num_per_class])
    return np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.zeros(0, np.int64)


def labels_per_class(num_labels: int, num_classes: int) -> int:
    """Return ``num_labels // num_classes``, raising ValueError unless it divides evenly."""
    if num_labels < 0 or num_labels % num_classes:
        raise ValueError(
            f"num_labels={num_labels} must be a non-negative multiple of the {num_classes} classes "
            "so every class gets the same number of labels"
        )
    return num_labels // num_classes


def random_mask(num_items: int, fraction: float, seed: int) -> torch.Tensor:
    """Return a bool tensor of shape (num_items,) with ``round(fraction * num_items)`` True entries.

    At least one entry is True when ``fraction > 0`` and ``num_items > 0``.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    count = int(round(fraction * num_items))
    if fraction > 0 and num_items > 0:
        count = max(count, 1)
    rng = np.random.default_rng(seed)
    mask = np.zeros(num_items, dtype=bool)
    mask[rng.permutation(num_items)[:count]] = True
    return torch.from_numpy(mask)


@dataclass
class SemiSupervisedSplit:
    """Index arrays into one official training set (CIFAR-10 or SVHN) for semi-supervised learning.

    Attributes:
        train: indices used for training (labelled and unlabelled together).
        val: held-out validation indices, disjoint from ``train``.
        labelled: the training indices whose labels the learner may use (a subset of ``train``).
        unlabelled: ``train`` minus ``labelled``.
    """

    train: np.ndarray
    val: np.ndarray
    labelled: np.ndarray
    unlabelled: np.ndarray


def semi_supervised_split(
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    num_val: int,
    num_labels: int,
    num_classes: int,
    seed: int,
) -> SemiSupervisedSplit:
    """Split a training set into train/validation (stratified) and pick balanced labels from train.

    The validation split and the labelled draw use independent streams derived from
    ``seed``, so changing ``num_labels`` keeps the validation set unchanged.
    """
    labels = _as_labels(labels)
    val_seed, label_seed = np.random.SeedSequence(seed).generate_state(2)
    train, val = stratified_split(labels, num_val, int(val_seed))
    per_class = labels_per_class(num_labels, num_classes)
    labelled = balanced_subset(labels, per_class, int(label_seed), candidates=train, num_classes=num_classes)
    unlabelled = np.setdiff1d(train, labelled).astype(np.int64)
    return SemiSupervisedSplit(train=train, val=val, labelled=labelled, unlabelled=unlabelled)


class TransformSubset(Dataset):
    """A view of ``dataset`` at ``indices`` that applies ``transform`` to the image of each item.

    The base dataset must return ``(image, target)``; it is not copied or mutated, so two
    views of one dataset can use different transforms (augmented training, plain evaluation).
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int] | np.ndarray, transform: Callable | None = None) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, target = self.dataset[int(self.indices[index])]
        if self.transform is not None:
            image = self.transform(image)
        return image, target
