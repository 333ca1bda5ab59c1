"""A deliberately unrelated auxiliary task: predict a pseudo-random label fixed for each image.

The label is a hash of the pixel values (the fractional digits of a random projection), so
it is a fixed function of the image that carries no information about the class. A network
can only fit it by memorising images, and its gradient is unrelated to the main task's.
A useful weighting method should drive its weight toward 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from arml_core.models.multihead import MultiHead, linear_head
from arml_core.tasks.base import StatelessTask


def hash_labels(images: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Return a label in [0, num_classes) for each image: a fixed pseudo-random function of its pixels."""
    flat = images.reshape(images.shape[0], -1).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(flat.shape[1], generator=generator, dtype=torch.float64).to(flat.device)
    scores = (flat @ projection) * 1e4
    return (torch.floor(scores).to(torch.int64) % num_classes).to(images.device)


class RandomLabelTask(StatelessTask):
    """Classify each image into ``num_classes`` hash labels unrelated to its class."""

    def __init__(self, num_classes: int = 10, seed: int = 12345, name: str = "random_label") -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.name = name
        self.head_name = name
        self.num_classes = num_classes
        self.seed = seed

    def make_head(self, feature_dim: int) -> nn.Module:
        return linear_head(feature_dim, self.num_classes)

    def loss(self, model: MultiHead, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels = hash_labels(images, self.num_classes, self.seed)
        return F.cross_entropy(model(images, self.head_name), labels)
