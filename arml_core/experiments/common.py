"""Helpers shared by the experiments: seeding, devices, accuracy and the result of one run."""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from arml_core.models.multihead import MultiHead

logger = logging.getLogger(__name__)


def seed_everything(seed: int, num_threads: int | None = None) -> None:
    """Seed Python, NumPy and torch; fix torch's CPU thread count when given.

    CPU results depend on the thread count (reductions are split differently), so runs that
    must be bitwise reproducible fix it. On CUDA this also sets what cuBLAS needs for
    deterministic kernels (CUBLAS_WORKSPACE_CONFIG) and turns on deterministic algorithms.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(device: str) -> torch.device:
    """Return the torch device for "auto" (CUDA when available, else CPU), "cpu" or "cuda[:n]"."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available; use device='cpu', or on "
            "Colab choose Runtime > Change runtime type > GPU"
        )
    return torch.device(device)


@torch.no_grad()
def classification_accuracy(
    model: MultiHead, head: str, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    """Return the fraction of ``images`` whose argmax prediction of ``head`` equals ``labels``."""
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size].to(device), head)
        correct += int((logits.argmax(dim=1).cpu() == labels[start:start + batch_size]).sum())
    return correct / len(images)


@dataclass
class RunResult:
    """The outcome of one run: its config, final metrics, training history and wall time."""

    experiment: str
    dataset: str
    method: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, float]
    history: dict[str, Any]
    wall_time_s: float
    extras: dict[str, Any] = field(default_factory=dict)

    def weights_history(self) -> list[dict[str, Any]]:
        """Return the logged task weights as [{"step": int, "weights": [float, ...]}, ...]."""
        return [
            {"step": step, "weights": weights}
            for step, weights in zip(self.history["step"], self.history["weights"])
        ]
