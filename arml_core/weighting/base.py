"""The interface every task-weighting method implements.

A weighter receives the main loss, the K auxiliary losses and the shared parameters after
one forward pass. Its ``backward`` writes ``.grad`` for every parameter the losses reach,
as ``loss.backward()`` would for the weighted total L_main + sum_k w_k L_aux_k, updates its
own weights, and returns a ``StepInfo``. The training loop then steps the optimiser unless
``StepInfo.skip_model_step`` is set, and calls ``after_optimizer_step`` (where ARML adds
Langevin noise). No loop ever branches on which method it holds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from arml_core.gradients import add_flat_to_grad, graph_leaf_parameters


@dataclass
class StepInfo:
    """Report of one weighter step: scalar diagnostics and whether to skip the model step."""

    metrics: dict[str, float] = field(default_factory=dict)
    skip_model_step: bool = False


class Weighter(ABC):
    """Base class of all weighters, with ``weights``, a float tensor of shape (num_aux,)."""

    name: str = "weighter"

    def __init__(self, num_aux: int) -> None:
        if not isinstance(num_aux, int) or num_aux < 1:
            raise ValueError(f"num_aux must be a positive integer, got {num_aux!r}")
        self.num_aux = num_aux
        self.weights = torch.ones(num_aux)
        self.step_count = 0

    @abstractmethod
    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        """Write ``.grad`` for all parameters, update ``weights`` and return diagnostics.

        ``features`` is the shared representation of the batch; only methods that take
        gradients at the representation read it, the others ignore it.
        """

    def after_optimizer_step(self, lr: float) -> None:
        """Hook called after every optimiser step with the current learning rate."""

    def state_dict(self) -> dict[str, Any]:
        """Return the state needed for exact resume: tensors and plain Python values only."""
        return {"weights": self.weights.detach().cpu().clone(), "step_count": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state returned by ``state_dict``."""
        self.weights = state["weights"].clone()
        self.step_count = int(state["step_count"])

    def _check_inputs(
        self, main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        aux = list(aux_losses)
        if len(aux) != self.num_aux:
            raise ValueError(
                f"{type(self).__name__} was built for num_aux={self.num_aux} auxiliary losses "
                f"but received {len(aux)}"
            )
        for index, loss in enumerate([main_loss, *aux]):
            if loss.dim() != 0:
                raise ValueError(f"loss {index} must be a scalar, got shape {tuple(loss.shape)}")
        self.weights = self.weights.to(main_loss.device)
        return aux


def weighted_backward(
    main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor], weights: torch.Tensor
) -> None:
    """Run one backward pass of L_main + sum_k weights_k L_aux_k; weights are treated as constants."""
    total = main_loss
    for weight, loss in zip(weights.detach(), aux_losses):
        total = total + weight * loss
    if total.requires_grad:
        total.backward()


def write_model_gradient(
    losses: Sequence[torch.Tensor],
    shared_params: Sequence[torch.Tensor],
    shared_grads: torch.Tensor,
    coefficients: torch.Tensor,
) -> None:
    """Write the gradient of sum_i coefficients_i * losses_i into ``.grad`` of every parameter.

    ``shared_grads`` contains the per-task gradients over ``shared_params`` (one row per loss),
    so the shared part is a weighted sum of rows and needs no backward. The remaining
    parameters (heads, task-specific variables) get one backward restricted to them, which
    does not traverse the shared backbone. This call frees the graph.
    """
    coefficients = coefficients.detach().to(shared_grads)
    add_flat_to_grad(shared_params, coefficients @ shared_grads)

    shared_ids = {id(p) for p in shared_params}
    others = [p for p in graph_leaf_parameters(losses) if id(p) not in shared_ids]
    total = sum(c * loss for c, loss in zip(coefficients, losses) if loss.requires_grad)
    if not others or not isinstance(total, torch.Tensor) or not total.requires_grad:
        return
    grads = torch.autograd.grad(total, others, allow_unused=True)
    for param, grad in zip(others, grads):
        if grad is None:
            continue
        if param.grad is None:
            param.grad = grad.detach().clone()
        else:
            param.grad.add_(grad.detach())
