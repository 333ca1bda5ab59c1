"""In-memory tensors and batch augmentation for the domain-generalisation experiment.

Both datasets end up in the same layout, ``DGData``: one (images, labels) pair per source
domain for training and for validation, the Nm labelled target images, and the target test
set. Rotated digits are float images in [0, 1]; PACS images are decoded once, resized to
``image_size`` x ``image_size`` and kept as uint8, so a paper-scale run reads each JPEG once.

Training batches are augmented on the batch's device with one call per batch: a random crop
of ``crop_scale`` of the image area (aspect ratio in [3/4, 4/3]) resized back to the image
size, and a horizontal flip with probability 1/2. The random numbers come from the training
loop's generator, so batches are a deterministic function of the seed and survive a resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from arml_core.data.pacs import CLASSES, PACSData, load_pacs
from arml_core.data.rotated_digits import build_rotated_digits
from arml_core.models.multihead import MultiHead

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Split = tuple[torch.Tensor, torch.Tensor]


@dataclass
class DGData:
    """Training, validation and test tensors of one target domain.

    ``train`` and ``val`` have one ``(images, labels)`` pair per source domain, in the order
    of ``source_domains``. Images are (N, C, H, W), float in [0, 1] or uint8 in [0, 255].
    """

    target_domain: str
    source_domains: list[str]
    train: list[Split]
    val: list[Split]
    labelled: Split
    test: Split
    num_classes: int
    in_channels: int


def load_dg_data(
    dataset: str,
    target_domain: str,
    labels_per_class: int,
    image_size: int,
    seed: int,
    data_root: str = "data",
    source_domains: tuple[str, ...] = (),
) -> DGData:
    """Load ``dataset`` ("rotated_digits" or "pacs") split for ``target_domain``.

    ``labels_per_class`` is Nm; -1 labels the whole target domain and leaves the test set
    empty. ``source_domains`` keeps only those sources (all other domains when empty).
    """
    if dataset == "rotated_digits":
        digits = build_rotated_digits(target_domain, labels_per_class, image_size=image_size, seed=seed)
        data = DGData(target_domain, digits.source_domains, [digits.train[d] for d in digits.source_domains],
                      [digits.val[d] for d in digits.source_domains], digits.labelled, digits.test, 10, 1)
    elif dataset == "pacs":
        pacs = load_pacs(data_root, target_domain, num_target_labels_per_class=max(labels_per_class, 0), seed=seed)
        data = _pacs_tensors(pacs, image_size)
        if labels_per_class < 0:  # the whole target domain is labelled and no test set remains
            data.labelled, data.test = data.test, (data.test[0][:0], data.test[1][:0])
    else:
        raise ValueError(f"unknown dataset {dataset!r}; valid datasets are 'rotated_digits' and 'pacs'")
    if source_domains:
        unknown = sorted(set(source_domains) - set(data.source_domains))
        if unknown:
            raise ValueError(f"source domains {unknown} are not sources here; valid: {data.source_domains}")
        keep = [data.source_domains.index(d) for d in source_domains]
        data.source_domains = list(source_domains)
        data.train = [data.train[i] for i in keep]
        data.val = [data.val[i] for i in keep]
    return data


def _read_images(paths: list[Path], image_size: int) -> torch.Tensor:
    """Decode images as RGB, resize to image_size x image_size; return uint8 (N, 3, S, S)."""
    out = torch.empty(len(paths), 3, image_size, image_size, dtype=torch.uint8)
    for index, path in enumerate(paths):
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
        out[index] = torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)
    return out


def _pacs_tensors(pacs: PACSData, image_size: int) -> DGData:
    paths, labels = pacs.images.paths, torch.from_numpy(pacs.images.labels)

    def split(indices: np.ndarray) -> Split:
        return _read_images([paths[i] for i in indices], image_size), labels[indices]

    return DGData(
        pacs.target_domain, list(pacs.source_domains),
        [split(pacs.train[d]) for d in pacs.source_domains],
        [split(pacs.val[d]) for d in pacs.source_domains],
        split(pacs.target_labelled), split(pacs.test), len(CLASSES), 3,
    )


class BatchTransform:
    """Turn a batch of stored images into network input, with augmentation in training.

    Args:
        normalize: subtract the ImageNet mean and divide by its std (for pretrained ResNet-18).
        crop_scale: (min, max) area fraction of the random crop; None turns cropping off.
        horizontal_flip: flip each training image with probability 1/2.
    """

    def __init__(self, normalize: bool, crop_scale: tuple[float, float] | None, horizontal_flip: bool) -> None:
        if crop_scale is not None and not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}")
        self.normalize = normalize
        self.crop_scale = crop_scale
        self.horizontal_flip = horizontal_flip

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return float images; augment when ``generator`` is given (training), else not."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        if generator is not None and (self.crop_scale is not None or self.horizontal_flip):
            x = self._augment(x, generator)
        if self.normalize:
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x

    def _augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # One affine sampling grid per image: scale (crop size), translation (crop position),
        # sign of the x scale (flip). Coordinates are normalised to [-1, 1].
        n = x.shape[0]
        uniform = torch.rand(n, 4, generator=generator)
        width = height = torch.ones(n)
        if self.crop_scale is not None:
            low, high = self.crop_scale
            area = low + (high - low) * uniform[:, 0]
            log_ratio = math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * uniform[:, 1]
            ratio = torch.exp(log_ratio)
            width = torch.sqrt(area * ratio).clamp(max=1.0)
            height = torch.sqrt(area / ratio).clamp(max=1.0)
        centre_x = (1 - width) * (2 * uniform[:, 2] - 1)
        centre_y = (1 - height) * (2 * torch.rand(n, generator=generator) - 1)
        flip = torch.ones(n)
        if self.horizontal_flip:
            flip = torch.where(uniform[:, 3] < 0.5, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = width * flip
        theta[:, 0, 2] = centre_x
        theta[:, 1, 1] = height
        theta[:, 1, 2] = centre_y
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@torch.no_grad()
def accuracy(model: MultiHead, images: torch.Tensor, labels: torch.Tensor, transform: BatchTransform,
             batch_size: int = 256) -> float:
    """Return the fraction of ``images`` that the ``main`` head classifies as ``labels``."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined; the test set has no images")
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = transform(images[start:start + batch_size].to(device))
        predictions = model(batch, "main").argmax(dim=1).cpu()
        correct += int((predictions == labels[start:start + batch_size]).sum())
    return correct / len(labels)
