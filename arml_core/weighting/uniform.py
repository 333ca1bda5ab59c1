"""Uniform weighting: every auxiliary task has weight 1 (the S4L baseline of the ARML paper)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from arml_core.weighting.base import StepInfo, Weighter, weighted_backward


class Uniform(Weighter):
    """Fixed weights of 1 for every auxiliary loss; one plain backward pass."""

    name = "uniform"

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        weighted_backward(main_loss, aux, self.weights)
        self.step_count += 1
        return StepInfo()


class SupervisedOnly(Weighter):
    """All auxiliary weights fixed at 0: the purely supervised baseline."""

    name = "supervised"

    def __init__(self, num_aux: int) -> None:
        super().__init__(num_aux)
        self.weights = torch.zeros(num_aux)

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        self._check_inputs(main_loss, aux_losses)
        if main_loss.requires_grad:
            main_loss.backward()
        self.step_count += 1
        return StepInfo()


class FixedWeights(Weighter):
    """Constant weights given by the caller; each run of a grid search uses one of these."""

    name = "fixed"

    def __init__(self, num_aux: int, weights: Sequence[float]) -> None:
        super().__init__(num_aux)
        values = torch.as_tensor(list(weights), dtype=torch.float32)
        if values.shape != (num_aux,):
            raise ValueError(f"weights must have {num_aux} entries, got {values.tolist()}")
        if (values < 0).any():
            raise ValueError(f"weights must be non-negative, got {values.tolist()}")
        self.weights = values

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        weighted_backward(main_loss, aux, self.weights)
        self.step_count += 1
        return StepInfo()
