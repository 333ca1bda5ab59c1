"""ARML: Auxiliary task Reweighting for Minimum-data Learning.

Source: Shi, Hoffman, Saenko, Darrell and Xu, "Auxiliary Task Reweighting for Minimum-data
Learning", NeurIPS 2020 (Algorithms 1 and 2).

With g_m the gradient of the main loss and g_k that of auxiliary loss k, all over the shared
parameters, G = [g_k . g_j] and b = [g_k . g_m], ARML minimises

    f(alpha) = ||g_m - sum_k alpha_k g_k||^2 = |g_m|^2 - 2 alpha . b + alpha^T G alpha

by projected gradient steps alpha <- Proj_A(alpha - lr * 2 (G alpha - b)) on
A = {alpha >= 0, sum_k alpha_k = K}. The model step uses the gradient of
L_main + sum_k alpha_k L_aux_k, built from the per-task gradients already computed.

Algorithm 1 adds Langevin noise N(0, 2 * model_lr * temperature) to the shared parameters
after each model step while alpha has not converged, then freezes alpha and stops the
noise. Algorithm 2 never adds noise and keeps updating alpha.

The authors' public code departs from the paper in two ways. This class exposes both as
options with the paper's choice as the default, so that a reader can reproduce either:
``projection="shift_clamp"`` (shift to the right sum, then clamp at 0, which is inexact), and
``update_every=20`` with ``skip_model_step_on_update=True`` (alpha moves every 20 iterations
and those iterations make no model step).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import torch

from arml_core.gradients import feature_gradients, task_gradients
from arml_core.langevin import add_langevin_noise
from arml_core.weighting.base import StepInfo, Weighter, weighted_backward, write_model_gradient
from arml_core.weighting.simplex import project_nonnegative, project_to_simplex, shift_then_clamp

logger = logging.getLogger(__name__)

Projection = Literal["exact", "shift_clamp"]
Constraint = Literal["simplex", "nonnegative"]
ArmlGradMode = Literal["loop", "batched", "features"]


def alpha_objective(alpha: torch.Tensor, gram: torch.Tensor, b: torch.Tensor, main_sq: torch.Tensor) -> torch.Tensor:
    """Return f(alpha) = |g_m|^2 - 2 alpha . b + alpha^T G alpha."""
    return main_sq - 2 * alpha @ b + alpha @ gram @ alpha


def alpha_gradient(alpha: torch.Tensor, gram: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the gradient of f at alpha, 2 (G alpha - b)."""
    return 2 * (gram @ alpha - b)


class ARML(Weighter):
    """ARML weighter; see the module docstring for the update rules and options.

    Args:
        num_aux: number of auxiliary tasks K.
        lr: step size beta of the alpha update (the paper samples it from [0.0005, 0.05]).
        update_every: alpha moves on every ``update_every``-th call; the other calls run one
            plain weighted backward and cost what ``Uniform`` costs.
        algorithm: 1 for Langevin sampling until alpha converges, 2 for no noise and no freeze.
        temperature: scale of the Langevin noise, std = sqrt(2 * model_lr * temperature).
        converge_tol, converge_window: Algorithm 1 declares convergence when, after at least
            ``converge_window`` alpha updates, every entry of alpha stayed within a range of
            ``converge_tol`` (max minus min) over the last ``converge_window`` updates.
        projection: ``"exact"`` Euclidean projection, or the authors' ``"shift_clamp"``.
        constraint: ``"simplex"`` (sum alpha = K) or ``"nonnegative"`` (alpha >= 0 only).
        skip_model_step_on_update: the authors' code makes no model step on alpha updates.
        main_coefficient: weight of the main loss in the model step. 1 is the paper's joint
            loss; 0 leaves the main task out of the model step, so its labels only move alpha
            (the "Baseline + ARML" setting of domain generalisation).
        grad_mode: ``"loop"`` or ``"batched"`` per-task gradients over the shared parameters,
            or ``"features"``: gradients at the shared representation passed as ``features``
            (all tasks must be computed from that same tensor).
        seed: seed of the Langevin noise generator.
    """

    name = "arml"

    def __init__(
        self,
        num_aux: int,
        lr: float = 0.01,
        update_every: int = 1,
        algorithm: Literal[1, 2] = 1,
        temperature: float = 1e-4,
        converge_tol: float = 0.01,
        converge_window: int = 100,
        projection: Projection = "exact",
        constraint: Constraint = "simplex",
        skip_model_step_on_update: bool = False,
        grad_mode: ArmlGradMode = "loop",
        seed: int = 0,
        main_coefficient: float = 1.0,
    ) -> None:
        super().__init__(num_aux)
        if constraint == "simplex" and num_aux == 1:
            raise ValueError(
                "With one auxiliary task the simplex {alpha >= 0, sum alpha = 1} is the single "
                "point alpha = 1, so ARML has nothing to learn. Pass constraint='nonnegative' to "
                "learn alpha >= 0 without the sum constraint."
            )
        if constraint not in ("simplex", "nonnegative"):
            raise ValueError(f"constraint must be 'simplex' or 'nonnegative', got {constraint!r}")
        if projection not in ("exact", "shift_clamp"):
            raise ValueError(f"projection must be 'exact' or 'shift_clamp', got {projection!r}")
        if algorithm not in (1, 2):
            raise ValueError(f"algorithm must be 1 (Langevin phase) or 2 (no noise), got {algorithm!r}")
        if grad_mode not in ("loop", "batched", "features"):
            raise ValueError(f"grad_mode must be 'loop', 'batched' or 'features', got {grad_mode!r}")
        if not isinstance(update_every, int) or update_every < 1:
            raise ValueError(f"update_every must be a positive integer, got {update_every!r}")
        if main_coefficient < 0:
            raise ValueError(f"main_coefficient must be non-negative, got {main_coefficient}")
        if lr < 0 or temperature < 0 or converge_tol < 0 or converge_window < 1:
            raise ValueError(
                f"lr, temperature and converge_tol must be >= 0 and converge_window >= 1, got "
                f"lr={lr}, temperature={temperature}, converge_tol={converge_tol}, "
                f"converge_window={converge_window}"
            )
        self.lr = lr
        self.update_every = update_every
        self.algorithm = algorithm
        self.temperature = temperature
        self.converge_tol = converge_tol
        self.converge_window = converge_window
        self.projection = projection
        self.constraint = constraint
        self.skip_model_step_on_update = skip_model_step_on_update
        self.grad_mode = grad_mode
        self.main_coefficient = main_coefficient
        self.converged = False
        self.converged_at: int | None = None
        self._history: deque[torch.Tensor] = deque(maxlen=converge_window + 1)
        self._generator = torch.Generator().manual_seed(seed)
        self._noise_params: list[torch.Tensor] = []

    @property
    def langevin_active(self) -> bool:
        """True while Algorithm 1 is in its sampling phase and noise is added."""
        return self.algorithm == 1 and not self.converged and self.temperature > 0

    def backward(
        self,
        main_loss: torch.Tensor,
        aux_losses: Sequence[torch.Tensor],
        shared_params: Sequence[torch.Tensor],
        features: torch.Tensor | None = None,
    ) -> StepInfo:
        aux = self._check_inputs(main_loss, aux_losses)
        shared = list(shared_params)
        self._noise_params = shared
        self.step_count += 1

        frozen = self.algorithm == 1 and self.converged
        if frozen or (self.step_count - 1) % self.update_every != 0:
            weighted_backward(self._model_step_main(main_loss), aux, self.weights)
            return StepInfo(metrics={"langevin": float(self.langevin_active)})

        losses = [main_loss, *aux]
        skip = self.skip_model_step_on_update
        if self.grad_mode == "features":
            grads = self._feature_grads(losses, features)
        else:
            grads = task_gradients(losses, shared, mode=self.grad_mode, retain_graph=not skip)
        # Inner products in the gradients' dtype (one matmul), then the small (K+1) x (K+1)
        # result in float64 for the alpha step. Copying the gradient rows to float64 first
        # costs a pass over K+1 model-sized vectors.
        inner = (grads @ grads.T).to(torch.float64)
        main_sq, b, gram = inner[0, 0], inner[1:, 0], inner[1:, 1:]

        # NOTE: alpha is stored in float32 between updates, so a step smaller than about 6e-8
        # (half a float32 unit at 1) is lost. With tiny gradients and a tiny lr, alpha stays put.
        alpha_before = self.weights.to(torch.float64)
        if not skip:
            model_weights = alpha_before.to(grads.dtype)
            if self.grad_mode == "features":
                weighted_backward(self._model_step_main(main_loss), aux, model_weights)
            else:
                main_weight = torch.full((1,), self.main_coefficient, dtype=grads.dtype, device=grads.device)
                coefficients = torch.cat([main_weight, model_weights])
                write_model_gradient(losses, shared, grads, coefficients)

        step = self.lr * alpha_gradient(alpha_before, gram, b)
        alpha_after = self._project(alpha_before - step)
        self.weights = alpha_after.to(torch.float32)
        self._update_convergence(alpha_after)

        norms = torch.sqrt(torch.diagonal(gram).clamp_min(0) * main_sq.clamp_min(0))
        cosines = torch.where(norms > 0, b / norms.clamp_min(1e-300), torch.zeros_like(b))
        metrics = {
            "main_grad_sq": float(main_sq),
            "objective": float(alpha_objective(alpha_before, gram, b, main_sq)),
            "langevin": float(self.langevin_active),
        }
        for k in range(self.num_aux):
            metrics[f"b_{k}"] = float(b[k])
            metrics[f"cos_{k}"] = float(cosines[k])
            metrics[f"aux_grad_sq_{k}"] = float(gram[k, k])
        return StepInfo(metrics=metrics, skip_model_step=skip)

    def _model_step_main(self, main_loss: torch.Tensor) -> torch.Tensor:
        """Return the main loss as it enters the model step: scaled, or detached when its weight is 0.

        NOTE: with weight 0, parameters that only the main loss reaches get .grad None on these
        calls but a zero gradient on alpha updates, so an optimiser with weight decay decays
        them on alpha updates only. The domain-generalisation chapter shares its head, so it
        is not affected.
        """
        if self.main_coefficient == 1.0:
            return main_loss
        if self.main_coefficient == 0.0:
            return main_loss.detach()
        return self.main_coefficient * main_loss

    def after_optimizer_step(self, lr: float) -> None:
        if self.langevin_active and self._noise_params:
            add_langevin_noise(self._noise_params, lr, self.temperature, self._generator)

    def _feature_grads(self, losses: list[torch.Tensor], features: torch.Tensor | None) -> torch.Tensor:
        if features is None:
            raise ValueError("grad_mode='features' needs the shared representation: pass features=...")
        try:
            return feature_gradients(losses, features, retain_graph=True)
        except RuntimeError as error:
            raise ValueError(
                "grad_mode='features' failed: every loss must be computed from the same features "
                f"tensor (autograd said: {error})"
            ) from error

    def _project(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.constraint == "nonnegative":
            return project_nonnegative(alpha)
        if self.projection == "exact":
            return project_to_simplex(alpha, float(self.num_aux))
        return shift_then_clamp(alpha, float(self.num_aux))

    def _update_convergence(self, alpha: torch.Tensor) -> None:
        self._history.append(alpha.detach().cpu())
        if self.algorithm != 1 or self.converged or len(self._history) <= self.converge_window:
            return
        # The range within the window, not the net change across it: alpha can wander away
        # and return to where it was, which is not convergence.
        window = torch.stack(list(self._history))
        spread = (window.max(dim=0).values - window.min(dim=0).values).max()
        if spread < self.converge_tol:
            self.converged = True
            self.converged_at = self.step_count
            logger.info("ARML alpha converged at step %d: %s", self.step_count, self.weights.tolist())

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(
            converged=self.converged,
            converged_at=self.converged_at,
            history=[h.clone() for h in self._history],
            generator_state=self._generator.get_state(),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.converged = bool(state["converged"])
        self.converged_at = state["converged_at"]
        self._history = deque((h.clone() for h in state["history"]), maxlen=self.converge_window + 1)
        self._generator.set_state(state["generator_state"])
