"""CIFAR-10 from disk for semi-supervised learning: 45,000 train / 5,000 validation, 4,000 labels.

Expected layout (what torchvision's CIFAR-10 archive extracts to)::

    ROOT/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta

ARML (Shi et al., NeurIPS 2020, Appendix B.1) uses the standard split of Oliver et al.
(2018): 5,000 validation images held out of the official 50,000 training images and 4,000
labels drawn from the remaining 45,000. Here the validation split is stratified by class
and the labels are balanced (400 per class). The official test batch is the test set.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import CIFAR10

from arml_core.data.errors import DatasetCorruptedError, require_paths, verify_md5s
from arml_core.data.splits import SemiSupervisedSplit, semi_supervised_split

logger = logging.getLogger(__name__)

SCRIPT = "download_cifar10.py"
FOLDER = CIFAR10.base_folder
NUM_CLASSES = 10


class _CIFAR10Verified(CIFAR10):
    """torchvision's CIFAR10 with its per-load MD5 check turned off.

    torchvision 0.29.1 hashes every batch file on each construction, even with
    ``download=False``, and passes ``md5=None`` to ``check_integrity`` as "existence only".
    Setting the class attributes' digests to None is the same mechanism its own CIFAR100
    subclass uses to change them. ``load_cifar10`` verifies the digests itself first
    (unless ``verify_checksums`` is False), so the files are hashed once and a mismatch names the file.
    """

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def expected_md5s() -> dict[str, str]:
    """Return the MD5 of every extracted file, keyed by path relative to ROOT (from torchvision)."""
    entries = CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    return {f"{FOLDER}/{name}": md5 for name, md5 in entries}


def _read_split(root: Path, train: bool) -> CIFAR10:
    try:
        return _CIFAR10Verified(str(root), train=train, download=False)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        raise DatasetCorruptedError(
            "CIFAR-10", root / FOLDER, f"a batch file cannot be read as a CIFAR-10 pickle ({error!r})", SCRIPT, root
        ) from error


@dataclass
class CIFAR10Data:
    """CIFAR-10 datasets and the semi-supervised split.

    Attributes:
        train_set: the official 50,000-image training set; items are ``(PIL image, int label)``
            and ``train_set.data`` is a uint8 array of shape (N, 32, 32, 3).
        test_set: the official 10,000-image test batch, same item format.
        split: index arrays into ``train_set`` (train, val, labelled, unlabelled).
        targets: int64 labels of ``train_set``, shape (N,), values 0..9.
        classes: the 10 class names from ``batches.meta``.
    """

    train_set: CIFAR10
    test_set: CIFAR10
    split: SemiSupervisedSplit
    targets: np.ndarray
    classes: list[str]


def load_cifar10(
    root: str | Path,
    *,
    num_val: int = 5000,
    num_labels: int = 4000,
    seed: int = 0,
    verify_checksums: bool = True,
) -> CIFAR10Data:
    """Load CIFAR-10 from ``root`` and split it deterministically from ``seed``.

    Args:
        root: folder that contains ``cifar-10-batches-py``.
        num_val: validation images held out of the official training set (paper: 5,000).
        num_labels: labelled training images, a multiple of 10 (paper: 4,000, 400 per class).
        seed: seed of the validation split and of the labelled draw.
        verify_checksums: check every file against torchvision's MD5s (about 180 MB read).
            Pass False only for a re-encoded or synthetic copy of the files.

    Raises:
        DatasetNotFoundError: a file is missing; names ``data_scripts/download_cifar10.py``.
        DatasetCorruptedError: a file has the wrong MD5 or is an HTML page.
    """
    root = Path(root)
    require_paths("CIFAR-10", root, expected_md5s(), SCRIPT)
    if verify_checksums:
        verify_md5s("CIFAR-10", root, expected_md5s(), SCRIPT)

    train_set = _read_split(root, train=True)
    test_set = _read_split(root, train=False)
    targets = np.asarray(train_set.targets, dtype=np.int64)
    split = semi_supervised_split(targets, num_val, num_labels, NUM_CLASSES, seed)
    logger.info(
        "CIFAR-10: %d train (%d labelled), %d validation, %d test",
        split.train.size, split.labelled.size, split.val.size, len(test_set),
    )
    return CIFAR10Data(train_set, test_set, split, targets, list(train_set.classes))
