"""Rotation prediction (Gidaris et al. 2018), the self-supervised task of S4L (Zhai et al. 2019).

Every unlabelled image is rotated by 0, 90, 180 and 270 degrees and the head predicts which
rotation it sees, a 4-way classification with cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from arml_core.models.multihead import MultiHead, linear_head
from arml_core.tasks.base import StatelessTask


def rotate_all(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the four rotations of each image, shape (4B, C, H, W), and labels 0..3 (quarter turns).

    Images must be square, because a quarter turn of a non-square image changes its shape.
    """
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images of shape (B, C, H, H), got {tuple(images.shape)}")
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


class RotationTask(StatelessTask):
    """Predict the quarter-turn rotation applied to each unlabelled image."""

    def __init__(self, name: str = "rotation") -> None:
        self.name = name
        self.head_name = name

    def make_head(self, feature_dim: int) -> nn.Module:
        return linear_head(feature_dim, 4)

    def loss(self, model: MultiHead, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        rotated, labels = rotate_all(images)
        return F.cross_entropy(model(rotated, self.head_name), labels)
