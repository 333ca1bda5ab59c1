"""Run records: one JSON file per training run, aggregation over seeds, paper tables.

The paper tables put the numbers of Shi et al. (NeurIPS 2020), kept in
``arml_core.paper_results``, beside the numbers computed from this book's records.

Every experiment writes one ``RunRecord`` per run as ``record.json`` inside the run's output
folder. Metrics that end in ``_error`` or ``_accuracy`` are fractions in [0, 1]; tables show
them in percent. Files are written atomically, so a crash mid-write leaves either the old
file or none, never a truncated one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

logger = logging.getLogger(__name__)

RECORD_FILE = "record.json"
STATUSES = ("finished", "failed")
FRACTION_SUFFIXES = ("_error", "_accuracy")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    """Outcome of one training run.

    ``config`` contains plain JSON values; a string ``config["setting"]`` (for example
    "CIFAR-10, 4000 labels, WRN-28-2") is shown beside the run's numbers in paper tables.
    ``weights_history`` is a list of ``{"step": int, "weights": [float, ...]}``.
    """

    experiment: str
    dataset: str
    method: str
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    weights_history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    status: str = "finished"
    created: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name, value in self.metrics.items():
            if name.endswith(FRACTION_SUFFIXES) and not 0.0 <= float(value) <= 1.0:
                raise ValueError(
                    f"metric {name!r} = {value!r} is outside [0, 1]; store errors and "
                    "accuracies as fractions, not percent"
                )

    def to_dict(self) -> dict[str, Any]:
        """Return the record as plain JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """Build a record from ``to_dict`` output; unknown keys raise TypeError."""
        return cls(**data)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and os.replace.

    The data is fsynced before the rename, so readers see the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def save_record(record: RunRecord, folder: str | Path) -> Path:
    """Write ``record`` to ``folder/record.json`` atomically and return that path."""
    path = Path(folder) / RECORD_FILE
    write_json_atomic(path, record.to_dict())
    return path


def load_records(root: str | Path) -> list[RunRecord]:
    """Load every ``record.json`` under ``root`` (recursively), sorted by path.

    Files that cannot be read or parsed are skipped with a warning naming the file.
    A missing ``root`` gives an empty list.
    """
    records = []
    for path in sorted(Path(root).rglob(RECORD_FILE)):
        try:
            records.append(RunRecord.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as error:
            logger.warning("skipping unreadable run record %s: %s", path, error)
    return records


def collect_versions() -> dict[str, str]:
    """Return the versions of Python, torch, numpy and arml_core."""
    import torch

    import arml_core

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "arml_core": arml_core.__version__,
    }


def t_interval_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Return the half-width of the Student-t confidence interval of the mean of ``values``.

    With fewer than two values the interval is undefined and the result is NaN.
    """
    n = len(values)
    if n < 2:
        return float("nan")
    sem = float(np.std(values, ddof=1)) / np.sqrt(n)
    return float(stats.t.ppf(0.5 + confidence / 2, df=n - 1)) * sem


def aggregate(
    records: Iterable[RunRecord],
    metric: str,
    by: Sequence[str] = ("experiment", "dataset", "method"),
) -> pd.DataFrame:
    """Aggregate ``metric`` over the seeds of each group of finished runs.

    ``by`` names RunRecord fields, ``config`` keys or "signature" (``config_signature``).
    Returns one row per group with the columns of ``by`` and mean, ci95 (half-width of the 95% Student-t interval, NaN with
    one seed), n, seeds (sorted list) and note (why ci95 is NaN, else "").
    Failed runs and runs without ``metric`` are left out.
    """
    groups: dict[tuple[Any, ...], list[tuple[int, float]]] = {}
    for record in records:
        if record.status != "finished" or metric not in record.metrics:
            continue
        key = tuple(_field(record, name) for name in by)
        groups.setdefault(key, []).append((record.seed, float(record.metrics[metric])))

    rows = []
    for key, pairs in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        seeds = sorted(seed for seed, _ in pairs)
        if len(set(seeds)) != len(seeds):
            logger.warning("group %s has repeated seeds %s; each run counts once", key, seeds)
        values = [value for _, value in pairs]
        half_width = t_interval_half_width(values)
        note = "one seed: no confidence interval" if len(values) == 1 else ""
        rows.append({**dict(zip(by, key)), "mean": float(np.mean(values)), "ci95": half_width,
                     "n": len(values), "seeds": seeds, "note": note})
    columns = [*by, "mean", "ci95", "n", "seeds", "note"]
    return pd.DataFrame(rows, columns=columns)


# Config keys that do not change what a run computes, left out of its signature.
VOLATILE_CONFIG_KEYS = frozenset(
    {"seed", "checkpoint_path", "checkpoint_every", "progress", "num_threads", "device", "data_root", "output_dir"}
)


def config_signature(record: RunRecord) -> str:
    """Return 8 hex digits that identify a run's settings apart from its seed.

    Runs of one method under different settings (iterations, options, tasks) get different
    signatures, so ``aggregate(..., by=(..., "signature"))`` never averages them together.
    """
    settings = {k: v for k, v in record.config.items() if k not in VOLATILE_CONFIG_KEYS}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _field(record: RunRecord, name: str) -> Any:
    if name in {f.name for f in dataclasses.fields(RunRecord)}:
        return getattr(record, name)
    if name == "signature":
        return config_signature(record)
    return record.config.get(name)


def runner_command(notebook: str, params_file: str, overrides: dict[str, Any], output: str) -> str:
    """Return the ``python -m arml_core.run`` command line for one run.

    A list value is written as a quoted YAML flow list, for example ``-p methods "[arml]"``.
    """
    def as_text(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return '"[' + ", ".join(str(item) for item in value) + ']"'
        return str(value)

    options = " ".join(f"-p {name} {as_text(value)}" for name, value in overrides.items())
    return f"python -m arml_core.run {notebook} -f {params_file} {options} --output {output}"


def paper_table(name: str, records: Iterable[RunRecord]) -> pd.DataFrame:
    """Render paper table ``name`` with the paper's numbers beside this book's runs.

    Returns a DataFrame indexed by the paper's method labels with two columns per dataset:
    "<column> (paper)" and "<column> (this book)". Every cell names its source. A book cell
    holds "mean ± ci95 (this book, n seeds, setting)" in percent, "not run: <command>"
    when no finished run exists, or "not implemented in this book".
    """
    from arml_core.paper_results import get_table

    table = get_table(name)
    runs = [r for r in records if r.experiment == table.experiment and r.status == "finished"]
    data: dict[str, list[str]] = {}
    for index, column in enumerate(table.columns):
        paper_cells, book_cells = [], []
        for row in table.rows:
            mean, spread = row.values[index]
            spread_text = f" ± {spread:.2f}" if spread is not None else ""
            paper_cells.append(f"{mean:.2f}{spread_text} (paper)")
            book_cells.append(_book_cell(table.metric, column, row.method, runs))
        data[f"{column.label} (paper)"] = paper_cells
        data[f"{column.label} (this book)"] = book_cells
    frame = pd.DataFrame(data, index=[row.label for row in table.rows])
    frame.index.name = table.caption
    return frame


def _book_cell(metric: str, column: Any, method: str | None, runs: list[RunRecord]) -> str:
    if method is None:
        return "not implemented in this book"
    # NOTE: PACS runs are matched on target_domain only; runs with other than 5 extra labels
    # per class would be mixed in, because the records have no agreed key for that count yet.
    matching = [
        r for r in runs
        if r.dataset == column.dataset and r.method == method and metric in r.metrics
        and (column.target_domain is None or r.config.get("target_domain") == column.target_domain)
    ]
    if not matching:
        # Every chapter notebook takes lists of methods and seeds (and of PACS target domains).
        overrides: dict[str, Any] = {"methods": [method], "seeds": [0]}
        output = f"runs/{column.dataset}/{method}/seed0"
        if column.target_domain is not None:
            overrides["target_domains"] = [column.target_domain]
            output = f"runs/{column.dataset}_{column.target_domain}/{method}/seed0"
        command = runner_command(column.notebook, column.params_file, overrides, output)
        return f"not run: {command}"
    values = [100.0 * float(r.metrics[metric]) for r in matching]
    settings = sorted({str(r.config.get("setting", "setting not recorded")) for r in matching})
    half_width = t_interval_half_width(values)
    if np.isnan(half_width):
        return f"{np.mean(values):.2f} (this book, 1 seed so no CI, {'; '.join(settings)})"
    return (
        f"{np.mean(values):.2f} ± {half_width:.2f} "
        f"(this book, {len(values)} seeds, 95% CI, {'; '.join(settings)})"
    )


def task_names(record: RunRecord, num_aux: int) -> list[str]:
    """Return ``config["aux_tasks"]`` if it names ``num_aux`` tasks, else "aux 0", "aux 1", ..."""
    names = record.config.get("aux_tasks")
    if isinstance(names, list) and len(names) == num_aux:
        return [str(name) for name in names]
    return [f"aux {index}" for index in range(num_aux)]


def table3_ranking(records: Iterable[RunRecord], k: int = 5) -> pd.DataFrame:
    """Put the paper's Table 3 beside the book's ARML weight ranking on CelebA.

    The book's ranking averages each auxiliary task's last recorded weight over the
    finished ARML runs whose ``config["main_task"]`` is the paper's main task; those runs
    need ``config["aux_tasks"]`` to name the tasks. Columns without such runs say "not run".
    """
    from arml_core.paper_results import (
        TABLE2,
        TABLE3_LEAST_RELATED,
        TABLE3_MAIN_TASK,
        TABLE3_MOST_RELATED,
    )

    runs = [
        r for r in records
        if r.experiment == "multilabel" and r.dataset == "celeba" and r.method == "arml"
        and r.status == "finished" and r.weights_history
        and r.config.get("main_task") == TABLE3_MAIN_TASK
    ]
    if runs:
        final = {}
        for record in runs:
            weights = record.weights_history[-1]["weights"]
            for name, alpha in zip(task_names(record, len(weights)), weights):
                final.setdefault(name, []).append(float(alpha))
        ranked = sorted(final, key=lambda name: -float(np.mean(final[name])))
        padding = [""] * max(0, k - len(ranked))
        most, least = ranked[:k] + padding, ranked[::-1][:k] + padding
        source = f"this book, {len(runs)} runs"
    else:
        column = TABLE2.columns[0]
        command = runner_command(column.notebook, column.params_file,
                                 {"method": "arml", "seed": 0}, "runs/celeba/arml/seed0")
        most = least = [f"not run: {command}"] * k
        source = "this book"
    return pd.DataFrame({
        "most related (paper)": list(TABLE3_MOST_RELATED[:k]),
        f"most related ({source})": most,
        "least related (paper)": list(TABLE3_LEAST_RELATED[:k]),
        f"least related ({source})": least,
    }, index=pd.RangeIndex(1, k + 1, name=f"rank, main task {TABLE3_MAIN_TASK}"))


def weights_at_step(weights_history: Sequence[dict[str, Any]], step: int | float) -> list[float]:
    """Return the last logged weights at or before ``step`` (the first entry if none is earlier).

    ``weights_history`` is a record's list of ``{"step": int, "weights": [float, ...]}``.
    """
    chosen = weights_history[0]["weights"] if weights_history else []
    for entry in weights_history:
        if entry["step"] <= step:
            chosen = entry["weights"]
    return list(chosen)


def weights_at_selection(record: RunRecord) -> list[float]:
    """Return the weights logged at or before the iteration that validation selected (``best_step``)."""
    return weights_at_step(record.weights_history, record.metrics.get("best_step", float("inf")))
