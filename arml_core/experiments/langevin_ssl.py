"""Langevin checks on the semi-supervised digits model: Table 5's noise sizes and Appendix A.4.

``measure_noise_along_run`` trains one ARML run in segments with the shared training loop and,
at each checkpoint, measures the per-parameter spread of the step over minibatch draws on the
shared parameters (the ones that receive Langevin noise): lr * g_B for plain SGD, and the
change Adam would make from its current state. It sets these beside the injected noise std
sqrt(2 lr T). Measuring uses its own random generator and a copy of the model loaded from the
checkpoint, so the parameters follow the same trajectory as in an uninterrupted run.

``run_algorithms`` trains ARML's Algorithm 1 (Langevin noise until alpha converges) and
Algorithm 2 (no noise) with the same seeds in run folders. Shi et al. (NeurIPS 2020,
appendix A.4) report that both find similar weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from arml_core.experiments import ssl_runs
from arml_core.experiments.common import load_history, resolve_device, seed_everything
from arml_core.experiments.ssl import SSLConfig, SSLObjective, build_aux_tasks, build_model, build_weighter
from arml_core.experiments.ssl_data import evaluate_accuracy, load_ssl_data
from arml_core.langevin import noise_std
from arml_core.results import RunRecord, weights_at_selection, write_json_atomic
from arml_core.theory.langevin_checks import flat_adam_state, measure_step_noise
from arml_core.training import TrainConfig, learning_rate_at, make_optimizer, train
from arml_core.weighting import ARML

logger = logging.getLogger(__name__)

NOISE_FILE = "noise.json"
NOISE_COLUMNS = (
    "iteration", "lr", "injected_std", "sgd_median", "sgd_rms", "adam_median", "adam_rms",
    "langevin_active", "num_params", "num_draws", "weights",
)
CHECKPOINT_FILE = "checkpoint.pt"


def options_label(options: Mapping[str, Any]) -> str:
    """Return a folder name such as "arml_alg1_3f9a0c2e" that changes with every ARML option."""
    digest = hashlib.sha256(json.dumps(dict(options), sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"arml_alg{options.get('algorithm', 1)}_{digest}"


def noise_folder(runs_dir: str | Path, config: SSLConfig, num_draws: int) -> Path:
    """Return the folder of one noise measurement, named after every setting that changes it."""
    key = f"{ssl_runs.config_key(config)}-{options_label(config.method_options)}-seed{config.seed}-draws{num_draws}"
    return Path(runs_dir) / f"noise-{config.dataset}-{key}"


def _train_config(config: SSLConfig, num_iterations: int, checkpoint: Path) -> TrainConfig:
    return TrainConfig(
        num_iterations=num_iterations, lr=config.lr, optimizer=config.optimizer,
        weight_decay=config.weight_decay, lr_milestones=config.lr_milestones,
        eval_every=config.eval_every, log_every=config.log_every,
        checkpoint_every=num_iterations, checkpoint_path=str(checkpoint),
        selection_metric="val_accuracy", seed=config.seed, progress=config.progress,
    )


def measure_noise_along_run(
    config: SSLConfig, checkpoints: Sequence[int], num_draws: int, folder: str | Path, draw_seed: int = 1234
) -> pd.DataFrame:
    """Train ``config`` (method "arml") up to each checkpoint and measure the step noise there.

    Returns one row per checkpoint (columns ``NOISE_COLUMNS``). Each row has the learning rate
    and the injected noise std sqrt(2 lr T). ``sgd_*`` and ``adam_*`` summarise, by the median
    and the root mean square over the shared parameters, the per-parameter std of lr * g_B and
    of Adam's step (NaN under SGD). ``langevin_active`` says whether Algorithm 1 still injected
    noise. g_B is the gradient of L_main + sum_k alpha_k L_aux_k on
    one minibatch, with alpha the weighter's weights at the checkpoint. Rows are stored in
    ``folder/noise.json`` as they are measured, and a later call returns stored rows without
    training again; the training checkpoint in ``folder`` lets an interrupted call resume.
    """
    if config.method != "arml":
        raise ValueError(f"the noise check trains ARML, got method={config.method!r}; set method='arml'")
    points = sorted(set(int(c) for c in checkpoints))
    if not points or points[0] < 1 or points[-1] > config.num_iterations:
        raise ValueError(f"checkpoints must lie in [1, num_iterations={config.num_iterations}], got {list(checkpoints)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored_path = folder / NOISE_FILE
    rows: list[dict[str, Any]] = json.loads(stored_path.read_text(encoding="utf-8")) if stored_path.exists() else []
    done = {row["iteration"] for row in rows}

    seed_everything(config.seed, config.num_threads)
    device = resolve_device(config.device)
    data = load_ssl_data(config.dataset, config.labels_per_class, config.seed, config.data_root,
                         config.num_val, config.verify_checksums)
    tasks = build_aux_tasks(config, data.image_size)
    model = build_model(config, num_classes=10, in_channels=data.in_channels, tasks=tasks).to(device)
    weighter = build_weighter(config, len(tasks))
    objective = SSLObjective(
        data.labelled_images, data.labelled_labels, data.unlabelled_images, tasks,
        config.batch_size, config.unlabelled_batch_size, device, prepare=data.prepare,
    )

    def evaluate(current: torch.nn.Module) -> dict[str, float]:
        return {"val_accuracy": evaluate_accuracy(current, data, data.val_images, data.val_labels)}

    checkpoint = folder / CHECKPOINT_FILE
    for point in points:
        if point in done:
            continue
        train_config = _train_config(config, point, checkpoint)
        train(model, weighter, objective, evaluate, train_config)
        state = torch.load(checkpoint, weights_only=True, map_location="cpu")
        if int(state["iteration"]) != point:
            raise ValueError(
                f"the checkpoint in {folder} is at iteration {state['iteration']}, past the requested "
                f"checkpoint {point}; measure earlier checkpoints in a new folder"
            )
        rows.append(_measure_at(config, train_config, state, data, tasks, objective, weighter, num_draws, draw_seed + point))
        write_json_atomic(stored_path, rows)
    kept = sorted((row for row in rows if row["iteration"] in points), key=lambda row: row["iteration"])
    return pd.DataFrame(kept, columns=list(NOISE_COLUMNS))


def _measure_at(
    config: SSLConfig, train_config: TrainConfig, state: dict[str, Any], data: Any, tasks: list[Any],
    objective: SSLObjective, weighter: ARML, num_draws: int, draw_seed: int,
) -> dict[str, Any]:
    """Measure the step noise of the model stored in a training checkpoint ``state``."""
    device = resolve_device(config.device)
    model = build_model(config, num_classes=10, in_channels=data.in_channels, tasks=tasks).to(device)
    model.load_state_dict(state["model"])
    model.train()  # the training step's mode: batch norm uses the minibatch statistics
    optimizer = make_optimizer(model, train_config)
    optimizer.load_state_dict(state["optimizer"])
    shared = model.shared_parameters()
    adam = flat_adam_state(optimizer, shared) if config.optimizer == "adam" else None
    alpha = state["weighter"]["weights"].to(device)
    iteration = int(state["iteration"])
    lr = learning_rate_at(train_config, iteration)
    generator = torch.Generator().manual_seed(draw_seed)

    def draw_gradient() -> torch.Tensor:
        losses = objective.compute_losses(model, generator)
        total = losses.main + sum(w * loss for w, loss in zip(alpha, losses.aux))
        return torch.cat([g.flatten() for g in torch.autograd.grad(total, shared)])

    noise = measure_step_noise(draw_gradient, num_draws, lr, adam)
    active = weighter.algorithm == 1 and not state["weighter"]["converged"]
    return {
        "iteration": iteration, "lr": lr, "injected_std": noise_std(lr, weighter.temperature),
        "sgd_median": float(noise.gradient.median()), "sgd_rms": float(noise.gradient.pow(2).mean().sqrt()),
        "adam_median": float(noise.adam.median()) if noise.adam is not None else float("nan"),
        "adam_rms": float(noise.adam.pow(2).mean().sqrt()) if noise.adam is not None else float("nan"),
        "langevin_active": bool(active), "num_params": int(noise.gradient.numel()), "num_draws": num_draws,
        "weights": [float(w) for w in alpha.cpu()],
    }


def run_algorithms(
    base: SSLConfig, seeds: Sequence[int], runs_dir: str | Path, arml_options: Mapping[str, Any]
) -> dict[int, list[RunRecord]]:
    """Train ARML with Algorithm 1 and with Algorithm 2 for every seed; return records by algorithm.

    Both algorithms share ``arml_options`` except ``algorithm``. Each run has its own folder
    (``ssl_runs.run_folder`` with the label of ``options_label``), so finished runs are loaded
    and interrupted ones resume. The same seed gives both algorithms the same split,
    initial weights and minibatches; only the injected noise differs.
    """
    records: dict[int, list[RunRecord]] = {}
    for algorithm in (1, 2):
        options = {**arml_options, "algorithm": algorithm}
        label = options_label(options)
        records[algorithm] = [ssl_runs.run_one(base, "arml", seed, runs_dir, options, label) for seed in seeds]
    return records


def algorithm_histories(
    base: SSLConfig, seeds: Sequence[int], runs_dir: str | Path, arml_options: Mapping[str, Any]
) -> dict[int, dict[int, dict[str, Any]]]:
    """Return the stored training histories of ``run_algorithms``, keyed by algorithm, then seed."""
    histories: dict[int, dict[int, dict[str, Any]]] = {}
    for algorithm in (1, 2):
        options = {**arml_options, "algorithm": algorithm}
        label = options_label(options)
        histories[algorithm] = {
            seed: load_history(ssl_runs.run_folder(runs_dir, dataclasses.replace(base, method="arml", seed=seed), label))
            for seed in seeds
        }
    return histories


def algorithm_weights_table(records: Mapping[int, Sequence[RunRecord]], task_names: Sequence[str]) -> pd.DataFrame:
    """Return mean and standard deviation over seeds of each task's weight, final and at selection.

    One row per algorithm and moment ("final", "selected"); task columns hold "mean ± std"
    rounded to 2 decimals (std with ddof 1; "n/a" for one seed). Also the mean selected
    iteration and the mean test accuracy in percent (1 decimal).
    """
    rows = []
    for algorithm, runs in records.items():
        moments = {"final": [r.weights_history[-1]["weights"] for r in runs],
                   "selected": [weights_at_selection(r) for r in runs]}
        for moment, values in moments.items():
            weights = np.array(values)
            row: dict[str, Any] = {"algorithm": algorithm, "weights": moment}
            for k, name in enumerate(task_names):
                spread = f"{weights[:, k].std(ddof=1):.2f}" if len(weights) > 1 else "n/a"
                row[name] = f"{weights[:, k].mean():.2f} ± {spread}"
            row["selected iteration"] = round(float(np.mean([r.metrics["best_step"] for r in runs])), 1)
            row["test accuracy (%)"] = round(100 * float(np.mean([r.metrics["test_accuracy"] for r in runs])), 1)
            rows.append(row)
    return pd.DataFrame(rows)


def paired_weight_gap(records: Mapping[int, Sequence[RunRecord]]) -> pd.DataFrame:
    """Return, per seed, the largest |alpha_k(Algorithm 1) - alpha_k(Algorithm 2)|, final and at selection.

    Runs are paired by seed, so each gap compares two runs that differ only in the injected noise.
    """
    by_seed = {alg: {r.seed: r for r in runs} for alg, runs in records.items()}
    rows = []
    for seed in sorted(set(by_seed[1]) & set(by_seed[2])):
        first, second = by_seed[1][seed], by_seed[2][seed]
        final_gap = np.abs(np.subtract(first.weights_history[-1]["weights"], second.weights_history[-1]["weights"])).max()
        selected_gap = np.abs(np.subtract(weights_at_selection(first), weights_at_selection(second))).max()
        rows.append({"seed": seed, "final gap": round(float(final_gap), 2), "selected gap": round(float(selected_gap), 2)})
    return pd.DataFrame(rows)


def langevin_fraction(history: Mapping[str, Any]) -> float:
    """Return the fraction of logged iterations at which Algorithm 1 was still injecting noise."""
    flags = [diag.get("langevin", 0.0) for diag in history["diagnostics"]]
    return float(np.mean(flags)) if flags else 0.0
