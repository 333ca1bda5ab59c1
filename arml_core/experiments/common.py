"""Helpers shared by the experiments: seeding, devices, accuracy and the result of one run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from arml_core.models.multihead import MultiHead
from arml_core.results import RECORD_FILE, RunRecord, collect_versions, save_record, write_json_atomic

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
    if re.fullmatch(r"cpu|cuda(:\d+)?", device) is None:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        # Paper-scale parameter files ask for "cuda", so this is where a CPU-only Colab runtime stops.
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available; use device='cpu', or on "
            "Colab choose Runtime > Change runtime type > GPU"
        )
    return torch.device(device)


def cap_workers(requested: int) -> int:
    """Return a DataLoader worker count no larger than the CPUs this process may use."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(requested, available))


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

    @property
    def weights_history(self) -> list[dict[str, Any]]:
        """Logged task weights as [{"step": int, "weights": [float, ...]}, ...], as in ``RunRecord``."""
        return [
            {"step": step, "weights": weights}
            for step, weights in zip(self.history["step"], self.history["weights"])
        ]

    def to_record(self) -> RunRecord:
        """Return the run as a ``RunRecord`` (metrics as fractions, weights over training)."""
        return RunRecord(
            experiment=self.experiment, dataset=self.dataset, method=self.method, seed=self.seed,
            config=_plain(self.config), metrics=dict(self.metrics),
            weights_history=self.weights_history, versions=collect_versions(),
            wall_time_s=self.wall_time_s,
        )


ConfigT = TypeVar("ConfigT")
HISTORY_FILE = "history.json"
CHECKPOINT_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"
# Config fields that do not change what a run computes.
BOOKKEEPING_FIELDS = frozenset({"checkpoint_path", "checkpoint_every", "progress"})


def config_key(config: Any, ignore: frozenset[str] | set[str] = BOOKKEEPING_FIELDS, length: int = 8) -> str:
    """Return ``length`` hex digits of a hash of a dataclass config, leaving out ``ignore``.

    Chapters put the key in run folder names, so a run with other settings gets its own folder.
    """
    settings = {k: v for k, v in _plain(dataclasses.asdict(config)).items() if k not in ignore}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _check_same_settings(folder: Path, config: Any) -> None:
    """Raise ValueError when ``folder`` contains a run made with other settings than ``config``."""
    path = folder / CONFIG_FILE
    if not path.exists():
        return
    stored = json.loads(path.read_text(encoding="utf-8"))
    requested = _plain(dataclasses.asdict(config))
    differing = sorted(
        key for key in stored.keys() | requested.keys()
        if key not in BOOKKEEPING_FIELDS and stored.get(key) != requested.get(key)
    )
    if differing:
        details = ", ".join(f"{key}={stored.get(key)!r} (requested {requested.get(key)!r})" for key in differing[:4])
        raise ValueError(
            f"{folder} contains a run with other settings: {details}. Delete that folder to train "
            "again, or point runs_dir at another folder"
        )


def run_in_folder(run_fn: Callable[[ConfigT], RunResult], config: ConfigT, folder: str | Path) -> RunRecord:
    """Run ``run_fn(config)`` with its checkpoint, history and record kept in ``folder``.

    A folder that already contains a finished record returns it at once without training. A
    folder with a checkpoint (an interrupted or killed run) resumes from it and reaches the
    same result as an uninterrupted run. A folder whose run used other settings (saved in
    ``config.json``) raises ValueError instead of being reused. ``config`` is a dataclass with ``num_iterations``,
    ``checkpoint_every`` and ``checkpoint_path`` fields; when ``checkpoint_every`` is 0, a
    checkpoint is written every tenth of the run. The checkpoint is removed once the record
    is saved.
    """
    folder = Path(folder)
    _check_same_settings(folder, config)
    record_path = folder / RECORD_FILE
    if record_path.exists():
        record = RunRecord.from_dict(json.loads(record_path.read_text(encoding="utf-8")))
        if record.status == "finished":
            logger.info("run in %s already finished; returning its stored record", folder)
            return record

    every = config.checkpoint_every or max(1, config.num_iterations // 10)  # type: ignore[attr-defined]
    checkpoint = folder / CHECKPOINT_FILE
    config = dataclasses.replace(config, checkpoint_every=every, checkpoint_path=str(checkpoint))  # type: ignore[type-var]
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / CONFIG_FILE, _plain(dataclasses.asdict(config)))
    result = run_fn(config)
    write_json_atomic(folder / HISTORY_FILE, result.history)
    record = result.to_record()
    save_record(record, folder)
    checkpoint.unlink(missing_ok=True)
    return record


def resolve_repo_path(path: str | Path) -> Path:
    """Resolve a relative ``path`` from the repository root when running in its ``notebooks`` folder.

    papermill and nbval run a chapter with the notebook's folder as working directory, so a
    relative "runs/..." would otherwise land in notebooks/runs. Elsewhere (for example on
    Colab) a relative path stays relative to the working directory; absolute paths are kept.
    """
    path = Path(path)
    cwd = Path.cwd()
    if not path.is_absolute() and cwd.name == "notebooks" and (cwd.parent / "pyproject.toml").exists():
        return cwd.parent / path
    return path


def load_history(folder: str | Path) -> dict[str, Any]:
    """Return the training history that ``run_in_folder`` stored in ``folder``."""
    return json.loads((Path(folder) / HISTORY_FILE).read_text(encoding="utf-8"))


def _plain(value: Any) -> Any:
    """Return ``value`` with tuples turned into lists and paths into strings, for JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
