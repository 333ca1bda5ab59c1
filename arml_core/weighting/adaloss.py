"""AdaLoss: auxiliary weights inversely proportional to a running mean of each auxiliary loss.

Source: Hu, Dey, Hebert and Bagnell, "Learning Anytime Predictions in Neural Networks via
Adaptive Loss Balancing", AAAI 2019. AdaLoss weighs each loss by the inverse of its expected
value, so every task contributes a similar relative change to the total.

Per call, with L_k the k-th auxiliary loss of the batch (detached):

    m_k <- L_k                                      on the first call
    m_k <- momentum * m_k + (1 - momentum) * L_k    afterwards
    w_k = K * (1 / (m_k + eps)) / sum_j (1 / (m_j + eps))

so the weights are positive and sum to K. The main loss keeps weight 1. The model gradient is
that of L_main + sum_k w_k L_k with the weights computed from this call's running mean. Losses
must be non-negative because a negative mean would give a negative weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml_core.weighting.base import StepInfo, Weighter, weighted_backward


def check_nonnegative_losses(aux_losses: Sequence[torch.Tensor], method: str) -> None:
    """Raise ValueError naming the first auxiliary loss that is negative."""
    for index, loss in enumerate(aux_losses):
        value = float(loss.detach())
        if value < 0:
            raise ValueError(
                f"{method} needs non-negative losses, but auxiliary loss {index} is {value:.6g}. "
                "Transform it to a non-negative loss first, for example use 1 - cosine "
                "similarity in place of a negative cosine similarity."
            )


class AdaLoss(Weighter):
    """AdaLoss weighter; see the module docstring for the update rule.

    Args:
        num_aux: number of auxiliary tasks K.
        momentum: decay of the exponential running mean, in [0, 1); 0 uses the current loss only.
        eps: added to each running mean before inversion, so a zero loss gives a finite weight.
    """

    name = "adaloss"

    def __init__(self, num_aux: int, momentum: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(num_aux)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not eps > 0:
            raise ValueError(f"eps must be positive so that a zero loss gets a finite weight, got {eps}")
        self.momentum = momentum
        self.eps = eps
        self.running_mean = torch.zeros(num_aux, dtype=torch.float64)

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        check_nonnegative_losses(aux, "AdaLoss")
        values = torch.tensor([float(loss.detach()) for loss in aux], dtype=torch.float64)

        if self.step_count == 0:
            self.running_mean = values
        else:
            self.running_mean = self.momentum * self.running_mean + (1.0 - self.momentum) * values
        inverse = 1.0 / (self.running_mean + self.eps)
        weights = self.num_aux * inverse / inverse.sum()
        self.weights = weights.to(device=main_loss.device, dtype=torch.float32)

        weighted_backward(main_loss, aux, self.weights)
        self.step_count += 1
        metrics = {f"running_mean_{k}": float(self.running_mean[k]) for k in range(self.num_aux)}
        return StepInfo(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["running_mean"] = self.running_mean.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.running_mean = state["running_mean"].clone().to(torch.float64)
