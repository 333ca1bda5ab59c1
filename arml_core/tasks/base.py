"""The contract of an auxiliary task: turn a batch of unlabelled images into a scalar loss."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from arml_core.models.multihead import MultiHead


class AuxTask(Protocol):
    """An auxiliary task with its own head on the shared backbone.

    ``loss`` draws all its randomness from ``generator`` so that a seeded run is reproducible.
    ``after_step`` runs after each optimiser step (a teacher update, for example).
    """

    name: str
    head_name: str

    def make_head(self, feature_dim: int) -> nn.Module: ...

    def loss(self, model: MultiHead, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...

    def after_step(self, model: MultiHead) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StatelessTask:
    """Mixin for tasks with nothing to update or checkpoint outside the model."""

    def after_step(self, model: MultiHead) -> None:
        """Do nothing: the task has no state outside the model."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Accept the empty state of ``state_dict``."""
