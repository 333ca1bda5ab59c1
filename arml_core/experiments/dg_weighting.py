"""Weighters of the domain-generalisation methods, including the two whose model step omits the main loss.

In "Baseline" and "Baseline + ARML" (Shi et al., NeurIPS 2020, section 3.2) the model is updated with the
source (auxiliary) losses alone, and the few labelled target images serve only to set the
source weights. ``SourcesOnly`` and ``ARML(main_coefficient=0)`` implement that: the main
loss's coefficient in the model step is 0, and ARML still uses g_m, the gradient of the main
loss over the shared parameters, in its alpha update.

"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from arml_core.weighting import make_weighter
from arml_core.weighting.base import StepInfo, Weighter, weighted_backward


class SourcesOnly(Weighter):
    """Weights of 1 on every auxiliary loss and 0 on the main loss: the source-only baseline."""

    name = "sources_only"

    def backward(self, main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor],
                 shared_params: Sequence[torch.Tensor], features: torch.Tensor | None = None) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        weighted_backward(main_loss.detach(), aux, self.weights)
        self.step_count += 1
        return StepInfo()


def make_dg_weighter(method: str, num_aux: int, options: dict[str, Any], seed: int) -> Weighter:
    """Build the weighter of a DG method; ``options`` go to ARML and the other methods ignore them.

    baseline: SourcesOnly; jt and fada: Uniform; baseline_arml: ARML(main_coefficient=0);
    jt_arml and fada_arml: ARML.
    """
    if method.endswith("_arml"):
        options = {"seed": seed, **options}
        if method == "baseline_arml":
            options["main_coefficient"] = 0.0
        return make_weighter("arml", num_aux, **options)
    if method == "baseline":
        return SourcesOnly(num_aux)
    if method in ("jt", "fada"):
        return make_weighter("uniform", num_aux)
    raise ValueError(f"unknown DG method {method!r}; valid: baseline, jt, baseline_arml, jt_arml, fada, fada_arml")
