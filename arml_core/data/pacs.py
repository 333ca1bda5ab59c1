"""PACS from disk for domain generalisation with a few labelled target images.

Expected layout (an ImageFolder per domain)::

    ROOT/pacs/<domain>/<class>/*.jpg|*.jpeg|*.png

with domains photo, art_painting, cartoon, sketch and classes dog, elephant, giraffe,
guitar, horse, house, person. ARML (Shi et al., NeurIPS 2020, Sec. 3.2 and Appendix B.3)
uses each domain in turn as the target: every source domain is split train:validation
9:1, the whole target domain is the test set, and Nm = 1..5 labelled target images per
class are added. Here the 9:1 split is stratified by class within each source domain, and
the Nm labelled target images are removed from the test set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from arml_core.data.errors import DatasetNotFoundError
from arml_core.data.splits import balanced_subset, stratified_split

logger = logging.getLogger(__name__)

SCRIPT = "download_pacs.py"
FOLDER = "pacs"
DOMAINS = ("photo", "art_painting", "cartoon", "sketch")
CLASSES = ("dog", "elephant", "giraffe", "guitar", "horse", "house", "person")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class PACSImages(Dataset):
    """Images of all four domains; an item is ``(RGB image after transform, class index)``.

    Attributes:
        paths: image files, sorted by domain (in ``DOMAINS`` order), class, then file name.
        labels: int64 class index (into ``CLASSES``) of each image, shape (N,).
        domains: int64 domain index (into ``DOMAINS``) of each image, shape (N,).
    """

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, domains: np.ndarray,
                 transform: Callable | None = None) -> None:
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.domains = np.asarray(domains, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        with Image.open(self.paths[index]) as image:
            rgb = image.convert("RGB")
        if self.transform is not None:
            rgb = self.transform(rgb)
        return rgb, int(self.labels[index])


def scan_pacs(root: str | Path) -> PACSImages:
    """List every PACS image under ``ROOT/pacs`` (no transform).

    Raises:
        DatasetNotFoundError: a domain or class folder is missing, or a class folder contains
            no .jpg/.jpeg/.png file; the message lists every such folder and names the data script.
    """
    root = Path(root)
    base = root / FOLDER
    missing = []
    paths: list[Path] = []
    labels: list[int] = []
    domains: list[int] = []
    if not base.is_dir():
        raise DatasetNotFoundError("PACS", root, SCRIPT, [f"{FOLDER}/"])
    for domain_index, domain in enumerate(DOMAINS):
        if not (base / domain).is_dir():
            missing.append(f"{FOLDER}/{domain}/")
            continue
        for class_index, name in enumerate(CLASSES):
            folder = base / domain / name
            files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
            if not files:
                missing.append(f"{FOLDER}/{domain}/{name}/*.jpg|png")
            paths.extend(files)
            labels.extend([class_index] * len(files))
            domains.extend([domain_index] * len(files))
    if missing:
        raise DatasetNotFoundError("PACS", root, SCRIPT, missing)
    return PACSImages(paths, np.asarray(labels), np.asarray(domains))


@dataclass
class PACSData:
    """PACS images and index arrays into ``images`` for one target domain.

    Attributes:
        images: all images of all domains, without transform.
        target_domain: the held-out domain (main task).
        source_domains: the other three domains (auxiliary tasks), in ``DOMAINS`` order.
        train: per source domain, the training indices (about 90% of the domain).
        val: per source domain, the validation indices (the other 10%).
        target_labelled: Nm labelled target images per class.
        test: the target domain without ``target_labelled``.
    """

    images: PACSImages
    target_domain: str
    source_domains: list[str]
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    target_labelled: np.ndarray
    test: np.ndarray

    def subset(self, indices: np.ndarray, transform: Callable | None = None) -> PACSImages:
        """Return a dataset of the images at ``indices`` with ``transform`` applied."""
        images = self.images
        return PACSImages([images.paths[i] for i in indices], images.labels[indices], images.domains[indices], transform)


def load_pacs(
    root: str | Path,
    target_domain: str,
    *,
    num_target_labels_per_class: int = 5,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> PACSData:
    """Scan PACS and split it for ``target_domain`` deterministically from ``seed``.

    Args:
        root: folder that contains ``pacs/``.
        target_domain: one of ``DOMAINS``.
        num_target_labels_per_class: Nm, labelled target images per class (paper: 1..5;
            0 gives plain domain generalisation).
        val_fraction: validation share of each source domain (paper: 0.1, i.e. 9:1),
            rounded to whole images.
        seed: seed of the source splits and of the labelled target draw.

    Raises:
        ValueError: unknown ``target_domain``, or a target class with fewer than Nm images.
        DatasetNotFoundError: a domain or class folder is missing or empty.
    """
    if target_domain not in DOMAINS:
        raise ValueError(f"unknown PACS domain {target_domain!r}; valid domains: {', '.join(DOMAINS)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    images = scan_pacs(root)
    seeds = np.random.SeedSequence(seed).generate_state(len(DOMAINS) + 1)

    train: dict[str, np.ndarray] = {}
    val: dict[str, np.ndarray] = {}
    sources = [d for d in DOMAINS if d != target_domain]
    for domain in sources:
        members = np.flatnonzero(images.domains == DOMAINS.index(domain))
        num_val = int(round(val_fraction * members.size))
        local_train, local_val = stratified_split(images.labels[members], num_val, int(seeds[DOMAINS.index(domain)]))
        train[domain], val[domain] = members[local_train], members[local_val]

    target = np.flatnonzero(images.domains == DOMAINS.index(target_domain))
    labelled = balanced_subset(images.labels, num_target_labels_per_class, int(seeds[-1]),
                               candidates=target, num_classes=len(CLASSES))
    test = np.setdiff1d(target, labelled).astype(np.int64)
    logger.info(
        "PACS target %s: %d labelled target, %d test; sources %s with %d train / %d validation",
        target_domain, labelled.size, test.size, ", ".join(sources),
        sum(a.size for a in train.values()), sum(a.size for a in val.values()),
    )
    return PACSData(images, target_domain, sources, train, val, labelled, test)
