"""Sweeps: a YAML file expanded into notebook runs, executed locally or on SLURM.

A sweep file::

    notebook: notebooks/03_semi_supervised.ipynb
    parameters_file: notebooks/params/ssl_cifar10.yml   # optional
    parameters: {num_epochs: 200}                         # fixed values, override the file
    grid: {method: [uniform, arml], seed: [0, 1, 2]}      # every combination is one run
    slurm: {timeout_min: 720, slurm_partition: gpu}       # optional submitit options

Paths are relative to the working directory. Each run gets the folder
``OUTPUT/<name>-<value>__<name>-<value>`` (grid order), which receives the executed notebook,
``parameters.yml``, ``run.log`` and a ``DONE`` marker when it finishes. Running the sweep
again skips finished runs (``DONE`` present, or ``record.json`` with status "finished").

Command line::

    python -m arml_core.sweep SWEEP.yml --output DIR [--executor local|slurm|submitit-local]
        [--max-parallel N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from arml_core.results import RECORD_FILE, write_json_atomic
from arml_core.run import ParameterError, load_parameter_file, run_notebook, validate_parameters

logger = logging.getLogger(__name__)

DONE_FILE = "DONE"
FAILED_FILE = "FAILED"
LOG_FILE = "run.log"
SWEEP_KEYS = {"notebook", "parameters_file", "parameters", "grid", "slurm"}


@dataclass
class RunSpec:
    """One run of a sweep: the notebook, its full parameters and its output folder."""

    notebook: str
    parameters: dict[str, Any]
    output_dir: str
    grid_values: dict[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return Path(self.output_dir) / LOG_FILE


@dataclass
class SweepReport:
    """Outcome of a sweep: runs skipped as finished before, runs finished now, runs failed."""

    skipped: list[RunSpec] = field(default_factory=list)
    finished: list[RunSpec] = field(default_factory=list)
    failed: list[tuple[RunSpec, str]] = field(default_factory=list)


def _folder_part(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return re.sub(r"[^A-Za-z0-9.+_-]+", "_", text).strip("_") or "empty"


def run_folder_name(grid_values: dict[str, Any]) -> str:
    """Return the folder name for one grid point, e.g. ``method-arml__seed-0``."""
    if not grid_values:
        return "run"
    return "__".join(f"{_folder_part(k)}-{_folder_part(v)}" for k, v in grid_values.items())


def expand_sweep(sweep: dict[str, Any], output: str | Path) -> list[RunSpec]:
    """Expand a parsed sweep file into one validated RunSpec per grid point.

    Every run's parameters are checked against the notebook before anything executes, so
    a misspelled grid key fails the whole sweep at once. Raises ParameterError.
    """
    unknown = set(sweep) - SWEEP_KEYS
    if unknown:
        raise ParameterError(f"unknown sweep keys {sorted(unknown)}; valid keys: {sorted(SWEEP_KEYS)}")
    if "notebook" not in sweep:
        raise ParameterError("the sweep file must name a 'notebook'")
    notebook = str(Path(sweep["notebook"]).resolve())
    base = load_parameter_file(sweep["parameters_file"]) if sweep.get("parameters_file") else {}
    base.update(sweep.get("parameters") or {})
    grid = sweep.get("grid") or {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParameterError(f"grid entry {name!r} must be a non-empty YAML list, got {values!r}")

    specs = []
    for combination in itertools.product(*grid.values()):
        grid_values = dict(zip(grid, combination))
        parameters = validate_parameters(notebook, {**base, **grid_values})
        folder = Path(output).resolve() / run_folder_name(grid_values)
        specs.append(RunSpec(notebook, parameters, str(folder), grid_values))
    names = [spec.output_dir for spec in specs]
    if len(set(names)) != len(names):
        raise ParameterError("two grid points map to the same folder name; make the grid values distinct")
    return specs


def is_finished(output_dir: str | Path) -> bool:
    """Return True if the folder has a DONE marker or a record.json with status "finished"."""
    folder = Path(output_dir)
    if (folder / DONE_FILE).exists():
        return True
    try:
        record = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("status") == "finished"


def execute_run(spec: RunSpec, timeout_s: float | None = None) -> str:
    """Execute one run, writing its log to ``run.log``; return "" on success, else the error.

    Writes the ``DONE`` marker on success and a ``FAILED`` JSON (error and log path) on
    failure, both atomically. Safe to call in a worker process.
    """
    folder = Path(spec.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FAILED_FILE).unlink(missing_ok=True)
    handler = logging.FileHandler(spec.log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    try:
        run_notebook(spec.notebook, spec.parameters, folder, timeout_s=timeout_s)
    except Exception as error:  # noqa: BLE001: any failure of one run is recorded, not raised
        logger.error("run %s failed: %s", folder, error)
        write_json_atomic(folder / FAILED_FILE, {"error": str(error), "log": str(spec.log_path)})
        return str(error) or type(error).__name__
    finally:
        root.removeHandler(handler)
        handler.close()
    write_json_atomic(folder / DONE_FILE, {"notebook": spec.notebook})
    return ""


def _pin_gpu(queue: Any) -> None:
    """Pool initializer: give this worker process one GPU through CUDA_VISIBLE_DEVICES."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(queue.get())


def _count_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


def _run_local(specs: list[RunSpec], max_parallel: int | None, timeout_s: float | None) -> list[str]:
    gpus = _count_gpus()
    workers = max_parallel or max(gpus, 1)
    context = get_context("spawn")
    if gpus:
        workers = min(workers, gpus)
        queue = context.Manager().Queue()
        for gpu in range(workers):
            queue.put(gpu)
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_pin_gpu, initargs=(queue,))
    else:
        pool = ProcessPoolExecutor(workers, mp_context=context)
    logger.info("running %d runs locally, %d at once, on %d GPUs", len(specs), workers, gpus)
    with pool:
        return list(pool.map(execute_run, specs, [timeout_s] * len(specs)))


def _run_submitit(
    specs: list[RunSpec], output: Path, cluster: str, options: dict[str, Any],
    max_parallel: int | None, timeout_s: float | None,
) -> list[str]:
    import submitit

    executor = submitit.AutoExecutor(folder=output / "submitit", cluster=cluster)
    settings: dict[str, Any] = {"timeout_min": 60 * 24, **options}
    if cluster == "slurm":
        settings.setdefault("gpus_per_node", 1)
        if max_parallel:
            settings["slurm_array_parallelism"] = max_parallel
    executor.update_parameters(**settings)
    jobs = executor.map_array(execute_run, specs, [timeout_s] * len(specs))
    logger.info("submitted %d jobs to %s; submitit logs are in %s", len(jobs), cluster, output / "submitit")
    results = []
    for spec, job in zip(specs, jobs):
        try:
            results.append(job.result())
        except Exception as error:  # noqa: BLE001: a crashed job is reported with its log
            results.append(f"{error}; submitit log {job.paths.stderr}")
            logger.error("job for %s crashed; see %s", spec.output_dir, job.paths.stderr)
    return results


def run_sweep(
    sweep_file: str | Path,
    output: str | Path,
    executor: str = "local",
    max_parallel: int | None = None,
    timeout_s: float | None = None,
) -> SweepReport:
    """Expand ``sweep_file``, skip finished runs, execute the rest and report the outcome.

    ``executor`` is "local" (a process pool, one GPU per worker when GPUs exist), "slurm" or
    "submitit-local" (submitit's local executor, for testing the SLURM path without SLURM).
    """
    with open(sweep_file, encoding="utf-8") as handle:
        sweep = yaml.safe_load(handle) or {}
    output = Path(output).resolve()
    specs = expand_sweep(sweep, output)
    report = SweepReport(skipped=[s for s in specs if is_finished(s.output_dir)])
    pending = [s for s in specs if not is_finished(s.output_dir)]
    logger.info("%d runs in the sweep: %d finished before, %d to run",
                len(specs), len(report.skipped), len(pending))
    if not pending:
        return report
    if executor == "local":
        errors = _run_local(pending, max_parallel, timeout_s)
    elif executor in ("slurm", "submitit-local"):
        cluster = "slurm" if executor == "slurm" else "local"
        errors = _run_submitit(pending, output, cluster, sweep.get("slurm") or {}, max_parallel, timeout_s)
    else:
        raise ValueError(f"unknown executor {executor!r}; use local, slurm or submitit-local")
    for spec, error in zip(pending, errors):
        if error:
            report.failed.append((spec, error))
        else:
            report.finished.append(spec)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m arml_core.sweep``; returns 1 if any run failed."""
    parser = argparse.ArgumentParser(
        prog="python -m arml_core.sweep", description="Run a sweep of notebook executions."
    )
    parser.add_argument("sweep_file", type=Path, help="YAML sweep file")
    parser.add_argument("--output", type=Path, required=True, help="folder for the run folders")
    parser.add_argument("--executor", choices=("local", "slurm", "submitit-local"), default="local")
    parser.add_argument("--max-parallel", type=int, default=None,
                        help="runs at once (default: one per GPU, or 1 without GPUs)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        report = run_sweep(args.sweep_file, args.output, args.executor, args.max_parallel, args.timeout)
    except ParameterError as error:
        logger.error("%s", error)
        return 2
    logger.info("skipped %d finished runs, finished %d, failed %d",
                len(report.skipped), len(report.finished), len(report.failed))
    for spec, error in report.failed:
        logger.error("failed: %s (log: %s): %s", spec.output_dir, spec.log_path, error)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
