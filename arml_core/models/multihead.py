"""A shared backbone with one head per task, the model shape every ARML experiment uses."""

from __future__ import annotations

import torch
from torch import nn


class MultiHead(nn.Module):
    """Shared ``backbone`` (images -> features of size ``backbone.feature_dim``) and named ``heads``.

    The shared parameters that weighters reweight are the backbone's; each head belongs to one
    task. ``shared_parameters()`` returns them explicitly, so no code selects "the backbone" by
    position.
    """

    def __init__(self, backbone: nn.Module, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        if not hasattr(backbone, "feature_dim"):
            raise ValueError("backbone must have an int attribute feature_dim (its output size)")
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Return the shared representation, shape (B, feature_dim)."""
        return self.backbone(images)

    def head(self, name: str, features: torch.Tensor) -> torch.Tensor:
        """Apply head ``name`` to features; raises KeyError listing the heads when unknown."""
        if name not in self.heads:
            raise KeyError(f"no head named {name!r}; heads are {sorted(self.heads)}")
        return self.heads[name](features)

    def forward(self, images: torch.Tensor, head: str) -> torch.Tensor:
        return self.head(head, self.features(images))

    def shared_parameters(self) -> list[nn.Parameter]:
        """Return the backbone parameters that require grad, in registration order."""
        return [p for p in self.backbone.parameters() if p.requires_grad]


def linear_head(feature_dim: int, num_outputs: int) -> nn.Module:
    """Return a linear head mapping features to ``num_outputs`` logits."""
    return nn.Linear(feature_dim, num_outputs)
