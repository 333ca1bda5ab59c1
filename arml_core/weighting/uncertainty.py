"""Uncertainty weighting: learned log-variances s_k scale each auxiliary loss.

Source: Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
Scene Geometry and Semantics", CVPR 2018.

Convention used here: s_k = log sigma_k^2 and the objective is

    L_main + sum_k (exp(-s_k) * L_k + s_k),

which is twice Kendall et al.'s regression form 1 / (2 sigma^2) * L + log sigma. The weight of
auxiliary task k is w_k = exp(-s_k). For fixed L_k the s-term is minimised at s_k = log L_k, so
the weights move toward 1 / L_k. The main loss keeps weight 1, like in every weighter here.

The s_k are not model parameters: this class owns them and steps them with its own optimiser
(``optimizer`` and ``lr`` are explicit). Each call writes the model gradient of
L_main + sum_k exp(-s_k) L_k with the current s, then makes one optimiser step on s.

A negative task loss makes exp(-s) L + s unbounded below (s -> -inf), so a negative loss raises
ValueError: transform such a loss to a non-negative one first, for example 1 - cosine similarity.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch

from arml_core.weighting.adaloss import check_nonnegative_losses
from arml_core.weighting.base import StepInfo, Weighter, weighted_backward

OptimizerName = Literal["sgd", "adam"]


class UncertaintyWeighting(Weighter):
    """Uncertainty weighting of Kendall et al.; see the module docstring for the convention.

    Args:
        num_aux: number of auxiliary tasks K.
        lr: learning rate of the optimiser of the log-variances s.
        optimizer: ``"sgd"`` (plain gradient descent) or ``"adam"`` (torch defaults besides lr).
        init_log_var: initial value of every s_k; 0 starts from weights of 1.
    """

    name = "uncertainty"

    def __init__(
        self,
        num_aux: int,
        lr: float = 0.01,
        optimizer: OptimizerName = "adam",
        init_log_var: float = 0.0,
    ) -> None:
        super().__init__(num_aux)
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        self.lr = lr
        self.optimizer_name = optimizer
        # The log-variances live on the CPU: they only see detached loss values.
        self.log_vars = torch.full((num_aux,), float(init_log_var), requires_grad=True)
        if optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD([self.log_vars], lr=lr)
        else:
            self.optimizer = torch.optim.Adam([self.log_vars], lr=lr)
        self.weights = torch.exp(-self.log_vars.detach()).clone()

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        check_nonnegative_losses(aux, "Uncertainty weighting")

        weights = torch.exp(-self.log_vars.detach())
        weighted_backward(main_loss, aux, weights.to(main_loss.device))

        values = torch.tensor([float(loss.detach()) for loss in aux])
        self.optimizer.zero_grad(set_to_none=True)
        objective = (torch.exp(-self.log_vars) * values + self.log_vars).sum()
        objective.backward()
        self.optimizer.step()

        self.weights = torch.exp(-self.log_vars.detach()).clone().to(main_loss.device)
        self.step_count += 1
        metrics = {"uncertainty_objective": float(objective.detach())}
        for k in range(self.num_aux):
            metrics[f"log_var_{k}"] = float(self.log_vars[k].detach())
        return StepInfo(metrics=metrics)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["log_vars"] = self.log_vars.detach().clone()
        # Deep copies: the optimiser state contains live tensors that later steps update in place.
        state["optimizer"] = copy.deepcopy(self.optimizer.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
