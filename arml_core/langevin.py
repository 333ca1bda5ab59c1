"""Langevin noise for the model step: theta <- theta - lr * grad + N(0, 2 * lr * temperature).

With plain SGD on a loss L and temperature 1 the iterates sample exp(-L) in the small-step
limit (Welling and Teh 2011). Training losses here are means over a batch, so the
log-posterior is N times the loss for N training examples, and temperature = 1 / N samples
the posterior. Under Adam the update is preconditioned, so the noise has no exact sampling
meaning. It is then a perturbation of stated scale, and ARML logs whether it is on at each step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def noise_std(lr: float, temperature: float) -> float:
    """Return the standard deviation sqrt(2 * lr * temperature) of the injected noise."""
    if lr < 0 or temperature < 0:
        raise ValueError(f"lr and temperature must be non-negative, got lr={lr}, temperature={temperature}")
    return math.sqrt(2.0 * lr * temperature)


@torch.no_grad()
def add_langevin_noise(
    params: Sequence[torch.Tensor], lr: float, temperature: float, generator: torch.Generator
) -> float:
    """Add N(0, 2 * lr * temperature) noise to each parameter in place; return the std used.

    The noise is drawn on the CPU from ``generator`` and moved to each parameter's device,
    so a seeded run draws the same noise on any device.
    """
    std = noise_std(lr, temperature)
    if std == 0.0:
        return 0.0
    for p in params:
        noise = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        p.add_(noise.to(device=p.device, dtype=p.dtype), alpha=std)
    return std
