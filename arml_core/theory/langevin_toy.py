"""ARML with Langevin sampling on the Gaussian toy, using the same weighter as for networks.

theta is a torch Parameter of shape (d,), the only shared parameter. The losses are negative
log-likelihoods up to constants, L_i(theta) = 0.5 (theta - mu_i)^T Lambda_i (theta - mu_i).
Each iteration runs ``ARML.backward``, one ``torch.optim.SGD`` step and
``ARML.after_optimizer_step(lr)``, which adds N(0, 2 * lr * temperature) noise. With
temperature 1 and lr * (largest eigenvalue of the joint precision) << 1 the iterates sample
p_J(alpha), so alpha drifts toward the fixed point of ``GaussianToy.arml_fixed_point``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from arml_core.theory.gaussian import GaussianToy
from arml_core.weighting import ARML


@dataclass(frozen=True)
class ToyArmlRun:
    """Trajectories of one run: ``alphas`` (steps, K) and ``thetas`` (steps, d), after each step."""

    alphas: np.ndarray
    thetas: np.ndarray

    def mean_weights(self, burn_in: float = 0.5) -> np.ndarray:
        """Return alpha averaged over the steps after the first ``burn_in`` fraction, shape (K,)."""
        if not 0 <= burn_in < 1:
            raise ValueError(f"burn_in must be in [0, 1), got {burn_in}")
        start = int(burn_in * len(self.alphas))
        return self.alphas[start:].mean(axis=0)


def quadratic_loss(theta: torch.Tensor, mean: np.ndarray, precision: np.ndarray) -> torch.Tensor:
    """Return 0.5 (theta - mean)^T precision (theta - mean), i.e. -log N(theta | mean, cov) + const."""
    diff = theta - torch.as_tensor(mean, dtype=theta.dtype)
    return 0.5 * diff @ torch.as_tensor(precision, dtype=theta.dtype) @ diff


def run_arml_langevin(
    toy: GaussianToy,
    steps: int = 4000,
    lr: float = 0.01,
    arml_lr: float = 0.002,
    temperature: float = 1.0,
    seed: int = 0,
    progress: bool = False,
) -> ToyArmlRun:
    """Run ARML (Algorithm 1, sampling phase throughout) on ``toy`` and record the trajectories.

    Args:
        toy: the Gaussian problem; theta starts at the main-task likelihood mean.
        steps: number of SGD steps.
        lr: SGD step size epsilon; the Langevin noise has variance 2 * lr * temperature.
        arml_lr: step size beta of the alpha update.
        temperature: 1 samples p_J exactly in the small-step limit.
        seed: seed of the Langevin noise.
        progress: show a tqdm progress bar.
    The run uses float64 and no torch global state beyond the weighter's own generator, so it
    is bitwise reproducible on CPU for a given seed.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    # Every alpha on the simplex has alpha_k <= K, so this bounds the joint precision.
    bound = toy.main_precision + toy.num_aux * toy.aux_precisions.sum(axis=0)
    stiffness = float(np.linalg.eigvalsh(bound).max())
    if lr * stiffness >= 1.0:
        raise ValueError(
            f"lr={lr} is too large for Langevin sampling: lr times a bound on the largest joint "
            f"precision eigenvalue is {lr * stiffness:.3g} >= 1; use lr below {0.1 / stiffness:.3g}"
        )

    theta = torch.nn.Parameter(torch.tensor(toy.main_mean, dtype=torch.float64))
    optimizer = torch.optim.SGD([theta], lr=lr)
    # converge_tol=0 keeps Algorithm 1 in its sampling phase for the whole run.
    weighter = ARML(
        num_aux=toy.num_aux, lr=arml_lr, algorithm=1, temperature=temperature,
        converge_tol=0.0, seed=seed,
    )
    alphas = np.empty((steps, toy.num_aux))
    thetas = np.empty((steps, toy.dim))
    for step in tqdm(range(steps), disable=not progress, desc="ARML + Langevin"):
        optimizer.zero_grad(set_to_none=True)
        main_loss = quadratic_loss(theta, toy.main_mean, toy.main_precision)
        aux_losses = [
            quadratic_loss(theta, toy.aux_means[k], toy.aux_precisions[k]) for k in range(toy.num_aux)
        ]
        info = weighter.backward(main_loss, aux_losses, shared_params=[theta])
        if not info.skip_model_step:
            optimizer.step()
        weighter.after_optimizer_step(lr)
        alphas[step] = weighter.weights.double().numpy()
        thetas[step] = theta.detach().numpy()
    return ToyArmlRun(alphas=alphas, thetas=thetas)
