"""A small convolutional backbone for the 8x8 handwritten digits of scikit-learn."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with batch norm and ReLU, then global average pooling.

    Maps images of shape (B, in_channels, H, W) to features of shape (B, feature_dim); sized for
    8x8 inputs (one 2x2 max-pool), but any H, W >= 2 works.
    """

    def __init__(self, in_channels: int = 1, width: int = 32, feature_dim: int = 64) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, feature_dim, 3, padding=1, bias=False),
            nn.BatchNorm2d(feature_dim),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)
