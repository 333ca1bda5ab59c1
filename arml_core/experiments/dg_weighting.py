"""Weighters of the domain-generalisation methods, including the two whose model step omits the main loss.

In "Baseline" and "Baseline + ARML" (Shi et al., NeurIPS 2020, section 3.2) the model is updated with the
source (auxiliary) losses alone, and the few labelled target images serve only to set the
source weights. ``SourcesOnly`` and ``SourceStepARML`` implement that: the main loss's
coefficient in the model step is 0, and ``SourceStepARML`` still uses g_m, the gradient of
the main loss over the shared parameters, in its alpha update.

NOTE: ``SourceStepARML`` repeats the step logic of ``ARML.backward`` with the main
coefficient set to 0. A ``main_coefficient`` option on ``ARML`` itself would remove the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml_core.gradients import task_gradients
from arml_core.weighting import ARML, make_weighter
from arml_core.weighting.arml import alpha_gradient, alpha_objective
from arml_core.weighting.base import StepInfo, Weighter, weighted_backward, write_model_gradient


class SourcesOnly(Weighter):
    """Weights of 1 on every auxiliary loss and 0 on the main loss: the source-only baseline."""

    name = "sources_only"

    def backward(self, main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor],
                 shared_params: Sequence[torch.Tensor], features: torch.Tensor | None = None) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        weighted_backward(main_loss.detach(), aux, self.weights)
        self.step_count += 1
        return StepInfo()


class SourceStepARML(ARML):
    """ARML whose model step is the gradient of sum_k alpha_k L_aux_k, without L_main.

    The alpha update is ARML's: it minimises ||g_m - sum_k alpha_k g_k||^2 with the main
    gradient g_m, so the target labels move alpha and nothing else. Options are ARML's;
    ``grad_mode="features"`` is not supported.
    """

    name = "source_step_arml"

    def __init__(self, num_aux: int, **options: Any) -> None:
        super().__init__(num_aux, **options)
        if self.grad_mode == "features":
            raise ValueError("SourceStepARML supports grad_mode 'loop' and 'batched', not 'features'")

    def backward(self, main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor],
                 shared_params: Sequence[torch.Tensor], features: torch.Tensor | None = None) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        shared = list(shared_params)
        self._noise_params = shared
        self.step_count += 1

        frozen = self.algorithm == 1 and self.converged
        if frozen or (self.step_count - 1) % self.update_every != 0:
            weighted_backward(main_loss.detach(), aux, self.weights)
            return StepInfo(metrics={"langevin": float(self.langevin_active)})

        losses = [main_loss, *aux]
        skip = self.skip_model_step_on_update
        grads = task_gradients(losses, shared, mode=self.grad_mode, retain_graph=not skip).to(torch.float64)
        main_grad, aux_grads = grads[0], grads[1:]
        gram = aux_grads @ aux_grads.T
        b = aux_grads @ main_grad
        main_sq = main_grad @ main_grad

        alpha_before = self.weights.to(torch.float64)
        if not skip:
            zero = torch.zeros(1, dtype=torch.float64, device=grads.device)
            coefficients = torch.cat([zero, alpha_before]).to(shared[0].dtype)
            write_model_gradient(losses, shared, grads.to(shared[0].dtype), coefficients)
        alpha_after = self._project(alpha_before - self.lr * alpha_gradient(alpha_before, gram, b))
        self.weights = alpha_after.to(torch.float32)
        self._update_convergence(alpha_after)
        return StepInfo(metrics=gradient_metrics(main_sq, b, gram, alpha_before, self.langevin_active),
                        skip_model_step=skip)


def gradient_metrics(main_sq: torch.Tensor, b: torch.Tensor, gram: torch.Tensor, alpha: torch.Tensor,
                     langevin: bool) -> dict[str, float]:
    """Return ARML's diagnostics under the keys ``ARML`` logs: main_grad_sq, objective, b_k, cos_k, aux_grad_sq_k."""
    norms = gram.diagonal().clamp_min(0).sqrt() * main_sq.clamp_min(0).sqrt()
    cosines = torch.where(norms > 0, b / norms.clamp_min(1e-300), torch.zeros_like(b))
    metrics = {"main_grad_sq": float(main_sq), "objective": float(alpha_objective(alpha, gram, b, main_sq)),
               "langevin": float(langevin)}
    for k in range(len(b)):
        metrics[f"b_{k}"] = float(b[k])
        metrics[f"cos_{k}"] = float(cosines[k])
        metrics[f"aux_grad_sq_{k}"] = float(gram[k, k])
    return metrics


def make_dg_weighter(method: str, num_aux: int, options: dict[str, Any], seed: int) -> Weighter:
    """Build the weighter of a DG method; ``options`` go to ARML and the other methods ignore them.

    baseline: SourcesOnly; jt and fada: Uniform; baseline_arml: SourceStepARML;
    jt_arml and fada_arml: ARML.
    """
    if method.endswith("_arml"):
        options = {"seed": seed, **options}
        if method == "baseline_arml":
            return SourceStepARML(num_aux, **options)
        return make_weighter("arml", num_aux, **options)
    if method == "baseline":
        return SourcesOnly(num_aux)
    if method in ("jt", "fada"):
        return make_weighter("uniform", num_aux)
    raise ValueError(f"unknown DG method {method!r}; valid: baseline, jt, baseline_arml, jt_arml, fada, fada_arml")
