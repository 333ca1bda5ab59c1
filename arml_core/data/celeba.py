"""CelebA from disk for multi-label learning: one main attribute with 1% labels, 39 auxiliary ones.

Expected layout (what torchvision's CelebA reads with ``download=False``)::

    ROOT/celeba/img_align_celeba/000001.jpg ...
    ROOT/celeba/list_attr_celeba.txt, list_eval_partition.txt, identity_CelebA.txt,
    ROOT/celeba/list_bbox_celeba.txt, list_landmarks_align_celeba.txt

torchvision 0.29.1 parses all five text files whatever ``target_type`` is, so all five
must be present. The raw attribute file stores -1/1; targets here are float 0/1.
ARML (Shi et al., NeurIPS 2020, Sec. 3.1 and Appendix B.2) keeps 1% of the main
attribute's labels. This loader keeps that fraction of the training split's main labels
(deterministic from a seed) and every auxiliary label. Validation and test keep all labels.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.datasets import CelebA

from arml_core.data.errors import DatasetCorruptedError, require_paths, verify_md5s
from arml_core.data.splits import random_mask

logger = logging.getLogger(__name__)

SCRIPT = "download_celeba.py"
FOLDER = CelebA.base_folder
IMAGE_FOLDER = "img_align_celeba"
DEFAULT_MAIN_ATTRIBUTE = "5_o_Clock_Shadow"
NUM_ATTRIBUTES = 40


class _CelebAVerified(CelebA):
    """torchvision's CelebA with its per-load MD5 check turned off (``load_celeba`` checks first).

    torchvision 0.29.1 reads the digests from the class attribute ``file_list`` and treats
    ``md5=None`` as "the file exists"; the image folder is only checked for existence.
    """

    file_list = [(file_id, None, name) for file_id, _, name in CelebA.file_list]


def expected_md5s() -> dict[str, str]:
    """Return the MD5 of each annotation file, keyed by path relative to ROOT (from torchvision)."""
    return {f"{FOLDER}/{name}": md5 for _, md5, name in CelebA.file_list if name.endswith(".txt")}


def attrs_to_float(target: torch.Tensor) -> torch.Tensor:
    """Convert torchvision's 0/1 integer attribute vector to float32 (a picklable target transform)."""
    return target.to(torch.float32)


@dataclass
class CelebAData:
    """CelebA splits, attribute names and label masks.

    Attributes:
        train_set, val_set, test_set: the official partitions (162,770 / 19,867 / 19,962 images
            in the full dataset); items are ``(image, float32 tensor of shape (40,))`` with 0/1 values.
        attr_names: the 40 attribute names in file order.
        main_index: column of the main attribute in the target vector.
        train_label_mask: bool tensor of shape (len(train_set), 40); True where a label may be used.
            Every auxiliary column is all True; the main column is ``train_main_mask``.
    """

    train_set: CelebA
    val_set: CelebA
    test_set: CelebA
    attr_names: list[str]
    main_index: int
    train_label_mask: torch.Tensor

    @property
    def train_main_mask(self) -> torch.Tensor:
        """Bool tensor of shape (len(train_set),): training images whose main label is kept."""
        return self.train_label_mask[:, self.main_index]

    @property
    def aux_indices(self) -> list[int]:
        """Columns of the 39 auxiliary attributes, in file order."""
        return [i for i in range(len(self.attr_names)) if i != self.main_index]


def main_attribute_index(attr_names: list[str], main_attribute: str) -> int:
    """Return the column of ``main_attribute``; raise ValueError listing the valid names otherwise."""
    if main_attribute in attr_names:
        return attr_names.index(main_attribute)
    close = difflib.get_close_matches(main_attribute, attr_names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown CelebA attribute {main_attribute!r}.{hint} Valid names: {', '.join(attr_names)}"
    )


def _read_split(root: Path, split: str, transform: Callable | None) -> CelebA:
    try:
        dataset = _CelebAVerified(
            str(root), split=split, target_type="attr", transform=transform,
            target_transform=attrs_to_float, download=False,
        )
    except (ValueError, IndexError, RuntimeError) as error:
        raise DatasetCorruptedError(
            "CelebA", root / FOLDER, f"an annotation file cannot be parsed ({error!r})", SCRIPT, root
        ) from error
    # csv.reader turns a trailing space on the header line into an empty name.
    names = [name for name in dataset.attr_names if name]
    if len(names) != dataset.attr.shape[1] or len(names) != NUM_ATTRIBUTES:
        raise DatasetCorruptedError(
            "CelebA", root / FOLDER / "list_attr_celeba.txt",
            f"expected {NUM_ATTRIBUTES} attribute names and columns, found {len(names)} names "
            f"and {dataset.attr.shape[1]} columns", SCRIPT, root,
        )
    values = torch.unique(dataset.attr)
    if not bool(((values == 0) | (values == 1)).all()):
        raise DatasetCorruptedError(
            "CelebA", root / FOLDER / "list_attr_celeba.txt",
            f"attribute values must be -1 or 1, but torchvision's (value + 1) // 2 gives {values.tolist()}",
            SCRIPT, root,
        )
    dataset.attr_names = names
    return dataset


def load_celeba(
    root: str | Path,
    *,
    main_attribute: str = DEFAULT_MAIN_ATTRIBUTE,
    main_label_fraction: float = 0.01,
    seed: int = 0,
    transform: Callable | None = None,
    eval_transform: Callable | None = None,
    verify_checksums: bool = True,
) -> CelebAData:
    """Load CelebA's official partitions and mask all but a fraction of the main training labels.

    Args:
        root: folder that contains ``celeba/``.
        main_attribute: the attribute used as the main task (paper: ``5_o_Clock_Shadow``).
        main_label_fraction: fraction of training images whose main label is kept
            (paper: 0.01); the count is rounded and at least 1.
        seed: seed of the kept main labels.
        transform: image transform of the training set (e.g. augmentation and ToTensor).
        eval_transform: image transform of validation and test; defaults to ``transform``.
        verify_checksums: check the annotation files against torchvision's MD5s (about 50 MB
            read; the images are not hashed). Pass False only for a synthetic copy.

    Raises:
        DatasetNotFoundError: a file or the image folder is missing; names ``data_scripts/download_celeba.py``.
        DatasetCorruptedError: an annotation file has the wrong MD5, is an HTML page or cannot be parsed.
        ValueError: ``main_attribute`` is not an attribute name; the message lists the valid names.
    """
    root = Path(root)
    require_paths("CelebA", root, [*expected_md5s(), f"{FOLDER}/{IMAGE_FOLDER}"], SCRIPT)
    if verify_checksums:
        verify_md5s("CelebA", root, expected_md5s(), SCRIPT)

    eval_transform = transform if eval_transform is None else eval_transform
    train_set = _read_split(root, "train", transform)
    val_set = _read_split(root, "valid", eval_transform)
    test_set = _read_split(root, "test", eval_transform)
    main_index = main_attribute_index(train_set.attr_names, main_attribute)

    label_mask = torch.ones(len(train_set), len(train_set.attr_names), dtype=torch.bool)
    label_mask[:, main_index] = random_mask(len(train_set), main_label_fraction, seed)
    logger.info(
        "CelebA: main attribute %s, %d of %d training main labels kept; %d validation, %d test",
        main_attribute, int(label_mask[:, main_index].sum()), len(train_set), len(val_set), len(test_set),
    )
    return CelebAData(train_set, val_set, test_set, list(train_set.attr_names), main_index, label_mask)
