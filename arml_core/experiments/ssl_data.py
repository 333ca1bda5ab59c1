"""Data of the semi-supervised experiment: digits in memory, CIFAR-10 and SVHN from disk as uint8.

``load_ssl_data`` returns every split as an in-memory tensor. Digits are float32 in [0, 1].
CIFAR-10 and SVHN stay uint8 of shape (N, 3, 32, 32), about 150 MB and 225 MB.
``SSLData.prepare`` turns each sampled batch into float32 on the training device,
standardised per channel with the mean and standard deviation of the training split.

NOTE: the realistic-SSL reference code (Oliver et al. 2018), whose settings ARML follows,
applies global contrast normalisation and ZCA whitening to CIFAR-10. This module uses
per-channel standardisation for both datasets; the ARML paper does not say which it used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from arml_core.data.cifar10 import load_cifar10
from arml_core.data.digits import load_digits_splits
from arml_core.data.svhn import load_svhn
from arml_core.models.multihead import MultiHead

logger = logging.getLogger(__name__)

DATASETS = ("digits", "cifar10", "svhn")
NUM_CLASSES = 10
# Validation images held out of the official training set (ARML appendix B.1).
DEFAULT_NUM_VAL = {"cifar10": 5000, "svhn": 7325}


@dataclass
class SSLData:
    """The splits of one semi-supervised dataset as CPU tensors.

    Images are float32 (N, C, H, W) for digits and uint8 (N, 3, 32, 32) for CIFAR-10 and
    SVHN; labels are int64 (N,). ``unlabelled_images`` is the whole training split, labelled
    images included, as in S4L. ``mean`` and ``std`` (shape (C,)) standardise uint8 images
    after scaling to [0, 1]; they are None for float images.
    """

    dataset: str
    labelled_images: torch.Tensor
    labelled_labels: torch.Tensor
    unlabelled_images: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return int(self.labelled_images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.labelled_images.shape[-1])

    def prepare(self, images: torch.Tensor, device: torch.device) -> torch.Tensor:
        """Return a batch as float32 on ``device``: uint8 is scaled to [0, 1] and standardised."""
        images = images.to(device, non_blocking=True)
        if images.dtype != torch.uint8:
            return images
        mean = self.mean.to(device).view(1, -1, 1, 1)
        std = self.std.to(device).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the per-channel mean and standard deviation of uint8 images (N, C, H, W) scaled to [0, 1].

    Sums run in float64 over chunks, so memory stays at one chunk in float.
    """
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        batch = images[start:start + chunk].to(torch.float64) / 255.0
        total += batch.sum(dim=(0, 2, 3))
        total_sq += batch.pow(2).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.pow(2)).clamp_min(1e-12).sqrt()
    return mean.float(), std.float()


def load_ssl_data(
    dataset: str,
    labels_per_class: int,
    seed: int,
    data_root: str | Path = "data",
    num_val: int | None = None,
    verify_checksums: bool = True,
) -> SSLData:
    """Load ``dataset`` and draw its validation split and labelled subset from ``seed``.

    ``num_val`` (CIFAR-10 and SVHN only) defaults to the paper's 5,000 and 7,325. Digits use
    fixed fractions: 15% validation, 30% test. Missing or corrupted files raise the loader's
    error, which names the download script in ``data_scripts/``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid names are: {', '.join(DATASETS)}")
    if dataset == "digits":
        splits = load_digits_splits(labels_per_class=labels_per_class, seed=seed)
        return SSLData(
            "digits", splits.labelled_images, splits.labelled_labels, splits.train_images,
            splits.val_images, splits.val_labels, splits.test_images, splits.test_labels,
        )

    num_val = DEFAULT_NUM_VAL[dataset] if num_val is None else num_val
    loader = load_cifar10 if dataset == "cifar10" else load_svhn
    loaded = loader(data_root, num_val=num_val, num_labels=labels_per_class * NUM_CLASSES,
                    seed=seed, verify_checksums=verify_checksums)
    if dataset == "cifar10":
        # torchvision keeps CIFAR-10 as (N, H, W, C) and SVHN as (N, C, H, W).
        train_images = torch.from_numpy(np.ascontiguousarray(loaded.train_set.data.transpose(0, 3, 1, 2)))
        test_images = torch.from_numpy(np.ascontiguousarray(loaded.test_set.data.transpose(0, 3, 1, 2)))
        test_labels = torch.as_tensor(loaded.test_set.targets, dtype=torch.int64)
    else:
        train_images = torch.from_numpy(np.ascontiguousarray(loaded.train_set.data))
        test_images = torch.from_numpy(np.ascontiguousarray(loaded.test_set.data))
        test_labels = torch.as_tensor(loaded.test_set.labels, dtype=torch.int64)
    targets = torch.from_numpy(loaded.targets)
    split = {name: torch.from_numpy(getattr(loaded.split, name)) for name in ("train", "val", "labelled")}

    unlabelled = train_images[split["train"]]
    mean, std = channel_stats(unlabelled)
    logger.info("%s channel mean %s, std %s", dataset, mean.tolist(), std.tolist())
    return SSLData(
        dataset, train_images[split["labelled"]], targets[split["labelled"]], unlabelled,
        train_images[split["val"]], targets[split["val"]], test_images, test_labels, mean, std,
    )


def translate_and_flip(
    images: torch.Tensor, generator: torch.Generator, max_shift: int, flip: bool
) -> torch.Tensor:
    """Return a randomly translated (and optionally flipped) copy of ``images`` (B, C, H, W).

    Each image moves by an integer shift in [-max_shift, max_shift] along each axis, with
    zero padding (the value 0 is the channel mean for standardised images), and is mirrored
    left-right with probability 0.5 when ``flip`` is true. Random numbers come from
    ``generator`` on its own device; the input is not mutated.
    """
    if images.dim() != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0 pixels, got {max_shift}")
    batch, _, height, width = images.shape
    out = images
    if flip:
        mirror = torch.rand(batch, generator=generator, device=generator.device) < 0.5
        out = torch.where(mirror.to(images.device).view(-1, 1, 1, 1), out.flip(-1), out)
    if max_shift == 0:
        return out

    span = 2 * max_shift + 1
    offsets = torch.randint(0, span, (batch, 2), generator=generator, device=generator.device).to(images.device)
    padded = torch.nn.functional.pad(out, (max_shift,) * 4)
    rows = offsets[:, 0:1] + torch.arange(height, device=images.device)
    cols = offsets[:, 1:2] + torch.arange(width, device=images.device)
    batch_index = torch.arange(batch, device=images.device).view(-1, 1, 1)
    # Advanced indexing on dims 0, 2 and 3 gives (B, H, W, C); move channels back.
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def evaluate_accuracy(
    model: MultiHead, data: SSLData, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500
) -> float:
    """Return the fraction of ``images`` whose argmax on the "main" head equals ``labels``.

    Batches go through ``data.prepare``; the caller sets the model's mode (eval for BN).
    """
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = data.prepare(images[start:start + batch_size], device)
        predictions = model(batch, "main").argmax(dim=1).cpu()
        correct += int((predictions == labels[start:start + batch_size]).sum())
    return correct / len(images)
