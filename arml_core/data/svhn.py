"""SVHN from disk for semi-supervised learning: 65,932 train / 7,325 validation, 1,000 labels.

Expected layout (the official .mat files, read by torchvision's SVHN with SciPy)::

    ROOT/svhn/train_32x32.mat, ROOT/svhn/test_32x32.mat

ARML (Shi et al., NeurIPS 2020, Appendix B.1) sets 7,325 of the 73,257 official training
images aside for validation and labels 1,000 of the remaining 65,932. Here the validation
split is stratified by class and the labels are balanced (100 per class). The .mat files
store digit 0 as label 10; torchvision 0.29.1 maps it to 0, and this loader checks that
every label ends up in 0..9.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.datasets import SVHN

from arml_core.data.errors import DatasetCorruptedError, require_paths, verify_md5s
from arml_core.data.splits import SemiSupervisedSplit, semi_supervised_split

logger = logging.getLogger(__name__)

SCRIPT = "download_svhn.py"
FOLDER = "svhn"
NUM_CLASSES = 10


class _SVHNVerified(SVHN):
    """torchvision's SVHN with its per-load MD5 check turned off (``load_svhn`` checks first).

    torchvision 0.29.1 reads the digest from the class attribute ``split_list`` and treats
    ``md5=None`` as "the file exists".
    """

    split_list = {key: [url, name, None] for key, (url, name, _) in SVHN.split_list.items()}


def expected_md5s(splits: tuple[str, ...] = ("train", "test")) -> dict[str, str]:
    """Return the MD5 of each split's .mat file, keyed by path relative to ROOT (from torchvision)."""
    return {f"{FOLDER}/{SVHN.split_list[s][1]}": SVHN.split_list[s][2] for s in splits}


def require_scipy() -> None:
    """Raise ImportError with the install command unless SciPy (needed to read .mat files) is importable."""
    if importlib.util.find_spec("scipy") is None:
        raise ImportError(
            "SVHN is stored as MATLAB .mat files, which torchvision reads with SciPy, but SciPy is not "
            "installed. Install it with `pip install scipy` before downloading or loading SVHN."
        )


@dataclass
class SVHNData:
    """SVHN datasets and the semi-supervised split.

    Attributes:
        train_set: the official 73,257-image training set; items are ``(PIL image, int label)``
            and ``train_set.data`` is a uint8 array of shape (N, 3, 32, 32).
        test_set: the official 26,032-image test set, same item format.
        split: index arrays into ``train_set`` (train, val, labelled, unlabelled).
        targets: int64 labels of ``train_set``, shape (N,), values 0..9 (digit 0 is 0).
    """

    train_set: SVHN
    test_set: SVHN
    split: SemiSupervisedSplit
    targets: np.ndarray


def _read_split(root: Path, split: str) -> SVHN:
    from scipy.io.matlab import MatReadError

    try:
        return _SVHNVerified(str(root / FOLDER), split=split, download=False)
    except (MatReadError, ValueError, KeyError, IndexError, OSError) as error:
        path = root / FOLDER / SVHN.split_list[split][1]
        raise DatasetCorruptedError("SVHN", path, f"cannot be read as an SVHN .mat file ({error!r})", SCRIPT, root) from error


def _check_labels(dataset: SVHN, root: Path) -> np.ndarray:
    labels = np.asarray(dataset.labels, dtype=np.int64)
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        path = root / FOLDER / dataset.filename
        raise DatasetCorruptedError("SVHN", path, f"labels outside 0..9 after mapping 10 to 0: {np.unique(bad)}", SCRIPT, root)
    return labels


def load_svhn(
    root: str | Path,
    *,
    num_val: int = 7325,
    num_labels: int = 1000,
    seed: int = 0,
    verify_checksums: bool = True,
) -> SVHNData:
    """Load SVHN from ``root`` and split it deterministically from ``seed``.

    Args:
        root: folder that contains ``svhn/train_32x32.mat`` and ``svhn/test_32x32.mat``.
        num_val: validation images held out of the official training set (paper: 7,325).
        num_labels: labelled training images, a multiple of 10 (paper: 1,000, 100 per class).
        seed: seed of the validation split and of the labelled draw.
        verify_checksums: check both files against torchvision's MD5s (about 250 MB read).
            Pass False only for a re-encoded or synthetic copy of the files.

    Raises:
        ImportError: SciPy is not installed.
        DatasetNotFoundError: a file is missing; names ``data_scripts/download_svhn.py``.
        DatasetCorruptedError: a file has the wrong MD5, is an HTML page, or has labels
            outside 0..9.
    """
    require_scipy()
    root = Path(root)
    require_paths("SVHN", root, expected_md5s(), SCRIPT)
    if verify_checksums:
        verify_md5s("SVHN", root, expected_md5s(), SCRIPT)

    train_set = _read_split(root, "train")
    test_set = _read_split(root, "test")
    targets = _check_labels(train_set, root)
    _check_labels(test_set, root)
    split = semi_supervised_split(targets, num_val, num_labels, NUM_CLASSES, seed)
    logger.info(
        "SVHN: %d train (%d labelled), %d validation, %d test",
        split.train.size, split.labelled.size, split.val.size, len(test_set),
    )
    return SVHNData(train_set, test_set, split, targets)
