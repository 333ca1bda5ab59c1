"""Rotated digits: scikit-learn's handwritten digits as six domains for domain generalisation.

Each domain is a rotation angle (0, 15, 30, 45, 60 and 75 degrees, counter-clockwise), in the
style of the Rotated MNIST benchmark. The 1,797 digits are split into one disjoint group per
domain (stratified by class), so no digit appears in two domains and the target test images
are never rotated copies of source training images. Every image is first upsampled from 8x8
to ``image_size`` x ``image_size`` (bilinear), then rotated (bilinear, background 0): at 8x8 a
rotation blurs a stroke over most of the digit, at 16x16 the digit stays legible.

One domain is the target (main task): ``labels_per_class`` labelled images per class are drawn
from it and the rest of the domain is the test set. The other domains are the sources
(auxiliary tasks), each split train:validation 9:1, stratified by class. Every split is a
deterministic function of ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from arml_core.data.digits import load_digit_arrays
from arml_core.data.splits import balanced_subset, stratified_split

logger = logging.getLogger(__name__)

ANGLES = (0, 15, 30, 45, 60, 75)
NUM_CLASSES = 10
ALL_LABELLED = -1  # labels_per_class value that labels the whole target domain


def domain_name(angle: int) -> str:
    """Return the name of the domain rotated by ``angle`` degrees, e.g. ``"rot15"``."""
    return f"rot{int(angle)}"


def domain_angle(name: str) -> int:
    """Return the angle in degrees of a domain named ``"rot<angle>"``."""
    if not name.startswith("rot") or not name[3:].lstrip("-").isdigit():
        raise ValueError(f"invalid rotated-digits domain {name!r}; expected 'rot<angle>', e.g. 'rot75'")
    return int(name[3:])


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize images (N, C, H, W) to (N, C, size, size) with bilinear interpolation."""
    if size == images.shape[-1] and size == images.shape[-2]:
        return images.clone()
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def rotate_images(images: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotate images (N, C, H, W) by ``angle`` degrees counter-clockwise about their centre.

    Bilinear interpolation; pixels that come from outside the image are 0 (the background).
    """
    return TF.rotate(images, float(angle), interpolation=TF.InterpolationMode.BILINEAR, fill=0.0)


@dataclass
class RotatedDigits:
    """Source and target splits of the rotated digits for one target domain.

    Images are float32 (N, 1, S, S) in [0, 1]; labels are int64 (N,). ``train`` and ``val``
    map each source domain name to ``(images, labels)``.
    """

    target_domain: str
    source_domains: list[str]
    train: dict[str, tuple[torch.Tensor, torch.Tensor]]
    val: dict[str, tuple[torch.Tensor, torch.Tensor]]
    labelled: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def partition_by_domain(labels: np.ndarray, num_domains: int, seed: int) -> list[np.ndarray]:
    """Split indices of ``labels`` into ``num_domains`` disjoint groups, stratified by class.

    Every class is shuffled and cut into ``num_domains`` near-equal parts, so each group
    holds about 1/num_domains of every class. Returns sorted int64 index arrays.
    """
    rng = np.random.default_rng(seed)
    groups: list[list[np.ndarray]] = [[] for _ in range(num_domains)]
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        for group, part in zip(groups, np.array_split(members, num_domains)):
            group.append(part)
    return [np.sort(np.concatenate(parts)).astype(np.int64) for parts in groups]


def build_rotated_digits(
    target_domain: str,
    labels_per_class: int,
    angles: Sequence[int] = ANGLES,
    image_size: int = 16,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> RotatedDigits:
    """Build the rotated-digits splits for ``target_domain`` (a name such as ``"rot75"``).

    Args:
        target_domain: the held-out domain; must be one of ``domain_name(a)`` for a in ``angles``.
        labels_per_class: Nm labelled target images per class; 0 gives none, ``ALL_LABELLED``
            (-1) labels the whole target domain and leaves the test set empty.
        angles: the domains, in degrees.
        image_size: side of the images after upsampling, before rotation.
        val_fraction: validation share of each source domain (9:1 is 0.1).
        seed: seed of the domain partition, the source splits and the labelled draw.

    Raises:
        ValueError: unknown target domain, or a target class with fewer than Nm images.
    """
    names = [domain_name(a) for a in angles]
    if target_domain not in names:
        raise ValueError(f"unknown target domain {target_domain!r}; valid domains: {', '.join(names)}")
    if labels_per_class < ALL_LABELLED:
        raise ValueError(f"labels_per_class must be >= 0 or -1 (all labelled), got {labels_per_class}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")

    images, labels = load_digit_arrays()
    images = upsample(torch.from_numpy(images), image_size)
    partition_seed, *split_seeds = np.random.SeedSequence(seed).generate_state(len(angles) + 1)
    groups = partition_by_domain(labels, len(angles), int(partition_seed))

    train: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    val: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    labelled = test = (torch.zeros(0), torch.zeros(0))
    for name, angle, group, split_seed in zip(names, angles, groups, split_seeds):
        domain_images = rotate_images(images[group], angle)
        domain_labels = torch.from_numpy(labels[group])
        if name == target_domain:
            labelled, test = _split_target(domain_images, domain_labels, labels_per_class, int(split_seed))
            continue
        num_val = int(round(val_fraction * len(group)))
        train_idx, val_idx = stratified_split(labels[group], num_val, int(split_seed))
        train[name] = (domain_images[train_idx], domain_labels[train_idx])
        val[name] = (domain_images[val_idx], domain_labels[val_idx])

    sources = [n for n in names if n != target_domain]
    logger.info(
        "rotated digits, target %s: %d labelled, %d test; sources %s with %d train / %d validation",
        target_domain, len(labelled[1]), len(test[1]), ", ".join(sources),
        sum(len(t[1]) for t in train.values()), sum(len(v[1]) for v in val.values()),
    )
    return RotatedDigits(target_domain, sources, train, val, labelled, test)


def _split_target(
    images: torch.Tensor, labels: torch.Tensor, per_class: int, seed: int
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Return ((labelled images, labels), (test images, labels)) of the target domain."""
    if per_class == ALL_LABELLED:
        return (images, labels), (images[:0], labels[:0])
    chosen = balanced_subset(labels.numpy(), per_class, seed, num_classes=NUM_CLASSES)
    rest = np.setdiff1d(np.arange(len(labels)), chosen)
    return (images[chosen], labels[chosen]), (images[rest], labels[rest])
