"""GradNorm: weights that balance the gradient norms of the tasks at one shared layer.

Source: Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.

Let W be the measured layer, n_i = ||d L_i / d W|| and G_i = w_i n_i the weighted gradient norm
of task i, where the main task is task 0 with the fixed weight w_0 = 1. With the loss ratio
Lt_i = L_i / L_i(0) and the relative inverse training rate r_i = Lt_i / mean_j Lt_j, GradNorm
pulls every G_i toward the target mean_j G_j * r_i ** alpha_gn. The target is detached (a
constant), so the gradient of L_grad = sum_i |G_i - target_i| with respect to an auxiliary
weight is sign(G_k - target_k) * n_k. Each call then makes one step

    w <- w - lr * dL_grad/dw,  w <- max(w, min_weight),  w <- K * w / sum(w),

which keeps every weight positive (the clamp comes before the positive rescale) and sum w = K.

The model gradient is that of L_main + sum_k w_k L_k with the weights before the step. The
per-task gradients are taken at W only, which is cheap when W sits near the output, so the
model gradient comes from one ordinary backward pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch

from arml_core.gradients import task_gradients
from arml_core.weighting.base import StepInfo, Weighter, weighted_backward

logger = logging.getLogger(__name__)


class GradNorm(Weighter):
    """GradNorm weighter; see the module docstring for the update rule.

    Args:
        num_aux: number of auxiliary tasks K.
        lr: step size of the weight update.
        alpha_gn: asymmetry alpha of GradNorm; 0 equalises the gradient norms, larger values
            favour tasks that train slower.
        norm_params: the tensors of the measured layer W. ``None`` measures the last tensor of
            ``shared_params`` as passed to each call. For the WRN and torchvision ResNet
            backbones that is the bias of the final batch norm, which is cheap to reach. A
            convolution kernel costs one weight-gradient convolution per task: pass it
            explicitly to measure it.
        loss_reference: ``"first_step"`` records L_i(0) from the first call; a sequence gives
            L_i(0) explicitly, one positive value per balanced task (main first when
            ``balance_main``).
        balance_main: include the main task (weight fixed at 1) in the means over tasks. When
            false, only the auxiliary tasks are balanced among themselves.
        min_weight: positive floor applied before the rescaling to sum K.
        eps: lower bound of L_i(0) and of mean_j Lt_j, so zero losses give no division by zero.
    """

    name = "gradnorm"

    def __init__(
        self,
        num_aux: int,
        lr: float = 0.01,
        alpha_gn: float = 1.5,
        norm_params: Sequence[torch.Tensor] | None = None,
        loss_reference: Literal["first_step"] | Sequence[float] = "first_step",
        balance_main: bool = True,
        min_weight: float = 1e-3,
        eps: float = 1e-12,
    ) -> None:
        super().__init__(num_aux)
        if lr < 0 or alpha_gn < 0:
            raise ValueError(f"lr and alpha_gn must be non-negative, got lr={lr}, alpha_gn={alpha_gn}")
        if not 0 < min_weight < 1:
            raise ValueError(f"min_weight must be in (0, 1) so that weights stay positive, got {min_weight}")
        if num_aux == 1:
            logger.warning("GradNorm with one auxiliary task keeps its weight at K = 1, like Uniform")
        self.lr = lr
        self.alpha_gn = alpha_gn
        self.norm_params = None if norm_params is None else list(norm_params)
        self.balance_main = balance_main
        self.min_weight = min_weight
        self.eps = eps
        self.num_balanced = num_aux + 1 if balance_main else num_aux
        self.reference: torch.Tensor | None = None
        if isinstance(loss_reference, str):
            if loss_reference != "first_step":
                raise ValueError(f"loss_reference must be 'first_step' or a sequence of values, got {loss_reference!r}")
        else:
            values = torch.as_tensor(list(loss_reference), dtype=torch.float64)
            if values.shape != (self.num_balanced,) or not (values > 0).all():
                raise ValueError(
                    f"loss_reference must hold {self.num_balanced} positive values (main first when "
                    f"balance_main=True), got {values.tolist()}"
                )
            self.reference = values

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        losses = [main_loss, *aux] if self.balance_main else aux
        values = torch.tensor([float(loss.detach()) for loss in losses], dtype=torch.float64)
        if self.reference is None:
            self.reference = values.clamp_min(self.eps)
            logger.info("GradNorm reference losses L(0) from the first step: %s", self.reference.tolist())

        layer = self._measured_layer(shared_params)
        grads = task_gradients(losses, layer, retain_graph=True).to(torch.float64)
        norms = grads.norm(dim=1)

        alpha_before = self.weights.detach().cpu().to(torch.float64)
        all_weights = torch.cat([torch.ones(1, dtype=torch.float64), alpha_before]) if self.balance_main else alpha_before
        weighted_norms = all_weights * norms
        ratios = values / self.reference
        relative_rate = ratios / ratios.mean().clamp_min(self.eps)
        targets = weighted_norms.mean() * relative_rate**self.alpha_gn

        weighted_backward(main_loss, aux, self.weights)

        offset = 1 if self.balance_main else 0
        grad_w = torch.sign(weighted_norms - targets)[offset:] * norms[offset:]
        updated = (alpha_before - self.lr * grad_w).clamp_min(self.min_weight)
        updated = self.num_aux * updated / updated.sum()
        self.weights = updated.to(device=main_loss.device, dtype=torch.float32)
        self.step_count += 1

        metrics = {"gradnorm_loss": float((weighted_norms - targets).abs().sum())}
        for k in range(self.num_aux):
            metrics[f"grad_norm_{k}"] = float(norms[offset + k])
            metrics[f"target_{k}"] = float(targets[offset + k])
        return StepInfo(metrics=metrics)

    def _measured_layer(self, shared_params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.norm_params is not None:
            return self.norm_params
        shared = list(shared_params)
        if not shared:
            raise ValueError("shared_params is empty: GradNorm needs a shared layer to measure")
        return [shared[-1]]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["reference"] = None if self.reference is None else self.reference.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        reference = state["reference"]
        self.reference = None if reference is None else reference.clone().to(torch.float64)
