"""OL_AUX: weights that follow the inner products of auxiliary and main-task gradients.

Source: Lin, Baweja, Kantor and Held, "Adaptive Auxiliary Task Weighting for Reinforcement
Learning", NeurIPS 2019.

OL_AUX descends the main loss N steps ahead with respect to the weights. To first order in the
model step size, -dL_main(theta_{t+N}) / dw_k is proportional to sum_{j<N} g_m . g_k at the
intermediate steps, where g_m is the gradient of the main loss alone and g_k that of
auxiliary loss k, both over the shared parameters. So every ``horizon`` calls:

    w_k <- max(0, w_k + lr * sum over the last ``horizon`` calls of g_k . g_m)

``lr`` absorbs the model step size of that first-order expansion. The model gradient of
L_main + sum_k w_k L_k uses the weights in force at each call and is built from the per-task
gradients already computed (no second backward through the shared parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml_core.gradients import GradMode, task_gradients
from arml_core.weighting.base import StepInfo, Weighter, write_model_gradient


class OLAux(Weighter):
    """OL_AUX weighter; see the module docstring for the update rule.

    Args:
        num_aux: number of auxiliary tasks K.
        lr: step size of the weight update (it multiplies a sum of gradient inner products).
        horizon: number N of calls whose inner products are summed before each weight update.
        init_weight: starting value of every weight.
        grad_mode: ``"loop"`` or ``"batched"`` per-task gradients (see ``arml_core.gradients``).
    """

    name = "ol_aux"

    def __init__(
        self,
        num_aux: int,
        lr: float = 0.01,
        horizon: int = 1,
        init_weight: float = 1.0,
        grad_mode: GradMode = "loop",
    ) -> None:
        super().__init__(num_aux)
        if lr < 0:
            raise ValueError(f"lr must be non-negative, got {lr}")
        if not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if init_weight < 0:
            raise ValueError(f"init_weight must be non-negative, got {init_weight}")
        if grad_mode not in ("loop", "batched"):
            raise ValueError(f"grad_mode must be 'loop' or 'batched', got {grad_mode!r}")
        self.lr = lr
        self.horizon = horizon
        self.grad_mode = grad_mode
        self.weights = torch.full((num_aux,), float(init_weight))
        self.accumulated = torch.zeros(num_aux, dtype=torch.float64)

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        shared = list(shared_params)
        losses = [main_loss, *aux]
        grads = task_gradients(losses, shared, mode=self.grad_mode, retain_graph=True)

        coefficients = torch.cat([torch.ones(1, dtype=grads.dtype, device=grads.device), self.weights.to(grads)])
        write_model_gradient(losses, shared, grads, coefficients)

        wide = grads.to(torch.float64)
        inner = (wide[1:] @ wide[0]).cpu()
        self.accumulated = self.accumulated + inner
        self.step_count += 1
        if self.step_count % self.horizon == 0:
            updated = self.weights.detach().cpu().to(torch.float64) + self.lr * self.accumulated
            self.weights = updated.clamp_min(0.0).to(device=main_loss.device, dtype=torch.float32)
            self.accumulated = torch.zeros_like(self.accumulated)
        return StepInfo(metrics={f"inner_{k}": float(inner[k]) for k in range(self.num_aux)})

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["accumulated"] = self.accumulated.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.accumulated = state["accumulated"].clone().to(torch.float64)
