"""CosineSim: use an auxiliary task only while its gradient points the main task's way.

Source: Du, Czarnecki, Jayakumar, Farajtabar, Pascanu and Lakshminarayanan, "Adapting
Auxiliary Losses Using Gradient Similarity", arXiv:1812.02224, 2018.

With g_m and g_k the gradients of the main loss and of auxiliary loss k over the shared
parameters, and cos_k = g_k . g_m / (|g_k| |g_m|), the weight of task k for this step is

    w_k = 1 if cos_k > 0 else 0          (weighted=False, the unweighted rule of Du et al.)
    w_k = max(0, cos_k)                   (weighted=True)

A zero gradient has cosine 0 with everything, so its task gets weight 0. The weights are not
normalised. The model gradient of L_main + sum_k w_k L_k is built from the per-task gradients
already computed (no second backward through the shared parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from arml_core.gradients import GradMode, task_gradients
from arml_core.weighting.base import StepInfo, Weighter, write_model_gradient


class CosineSim(Weighter):
    """CosineSim weighter; see the module docstring for the rule.

    Args:
        num_aux: number of auxiliary tasks K.
        weighted: weight by max(0, cos) in place of the 0/1 gate.
        grad_mode: ``"loop"`` or ``"batched"`` per-task gradients (see ``arml_core.gradients``).
        eps: norms below it count as zero gradients.
    """

    name = "cosine"

    def __init__(
        self, num_aux: int, weighted: bool = False, grad_mode: GradMode = "loop", eps: float = 1e-12
    ) -> None:
        super().__init__(num_aux)
        if grad_mode not in ("loop", "batched"):
            raise ValueError(f"grad_mode must be 'loop' or 'batched', got {grad_mode!r}")
        self.weighted = weighted
        self.grad_mode = grad_mode
        self.eps = eps

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

        wide = grads.to(torch.float64)
        main_grad, aux_grads = wide[0], wide[1:]
        norms = aux_grads.norm(dim=1) * main_grad.norm()
        valid = (aux_grads.norm(dim=1) > self.eps) & (main_grad.norm() > self.eps)
        cosines = torch.where(valid, aux_grads @ main_grad / norms.clamp_min(self.eps**2), torch.zeros_like(norms))
        if self.weighted:
            weights = cosines.clamp_min(0.0)
        else:
            weights = (cosines > 0).to(torch.float64)

        self.weights = weights.to(device=main_loss.device, dtype=torch.float32)
        coefficients = torch.cat([torch.ones(1, dtype=grads.dtype, device=grads.device), weights.to(grads)])
        write_model_gradient(losses, shared, grads, coefficients)
        self.step_count += 1
        return StepInfo(metrics={f"cos_{k}": float(cosines[k]) for k in range(self.num_aux)})
