"""scikit-learn's handwritten digits (1,797 images, 8x8, 10 classes): real data that works offline.

The images ship inside scikit-learn, so every CPU default of the book runs on them. Pixel values
0..16 are scaled to [0, 1]; images have shape (1, 8, 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from arml_core.data.splits import balanced_subset


@dataclass(frozen=True)
class DigitsSplits:
    """Stratified train/validation/test splits and a labelled subset of the training split.

    Tensors: images float32 (N, 1, 8, 8) in [0, 1], labels int64 (N,). ``labelled`` indexes
    into the training split; the unlabelled pool for auxiliary tasks is the whole training split.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    labelled: torch.Tensor

    @property
    def labelled_images(self) -> torch.Tensor:
        return self.train_images[self.labelled]

    @property
    def labelled_labels(self) -> torch.Tensor:
        return self.train_labels[self.labelled]


def load_digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Return all digits as float32 images (1797, 1, 8, 8) in [0, 1] and int64 labels (1797,)."""
    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]
    return images, bunch.target.astype(np.int64)


def load_digits_splits(
    labels_per_class: int = 10,
    val_fraction: float = 0.15,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> DigitsSplits:
    """Split the digits into stratified train/validation/test sets and pick the labelled subset.

    The split and the labelled subset are deterministic functions of ``seed``.
    """
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
            f"{val_fraction} and {test_fraction}"
        )
    images, labels = load_digit_arrays()
    rest_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    train_idx, val_idx = train_test_split(
        rest_idx, test_size=val_fraction / (1 - test_fraction), stratify=labels[rest_idx],
        random_state=seed,
    )
    labelled = balanced_subset(labels[train_idx], labels_per_class, seed)

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images[idx]), torch.from_numpy(labels[idx])

    train, val, test = tensors(train_idx), tensors(val_idx), tensors(test_idx)
    return DigitsSplits(*train, *val, *test, labelled=torch.from_numpy(labelled))
