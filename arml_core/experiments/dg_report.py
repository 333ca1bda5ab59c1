"""Run grids of domain-generalisation runs in folders and turn their records into tables.

Each run lives in ``runs_dir/<dataset>_<target>/nm<Nm>/<method>/seed<seed>-<key>``, where the key
is a hash of every setting that changes the result, so a changed knob never reuses an old run.
A folder with a finished record is loaded instead of trained (``run_in_folder``). Tables show accuracies in
percent, rounded to one decimal, with Table 4 of Shi et al. (NeurIPS 2020) (PACS, ResNet-18, 5 labels per class)
beside the book's numbers and each column labelled with its source and setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from arml_core.experiments.common import config_key as common_config_key
from arml_core.experiments.common import resolve_repo_path, run_in_folder
from arml_core.experiments.domain_generalization import DGConfig, run
from arml_core.paper_results import TABLE4
from arml_core.results import RunRecord, aggregate



# Paper rows that paper_results marks as not implemented but that this experiment runs.
PAPER_ONLY_ROWS = {"FADA": "fada", "FADA + ARML": "fada_arml"}
IGNORED_FIELDS = frozenset({"progress", "checkpoint_every", "checkpoint_path", "data_root", "device", "setting"})


def config_key(config: DGConfig) -> str:
    """Return 8 hex digits of a hash of the settings that change a run's result."""
    return common_config_key(config, ignore=IGNORED_FIELDS)


def run_folder(runs_dir: str | Path, config: DGConfig) -> Path:
    """Return the folder of the run described by ``config`` (``runs_dir`` as in ``resolve_repo_path``)."""
    labels = "all" if config.labels_per_class < 0 else str(config.labels_per_class)
    return (resolve_repo_path(runs_dir) / f"{config.dataset}_{config.target_domain}" / f"nm{labels}" / config.method
            / f"seed{config.seed}-{config_key(config)}")


def run_all(configs: Sequence[DGConfig], runs_dir: str | Path, progress: bool = True) -> list[RunRecord]:
    """Run (or load) every config in its folder and return the records in the same order."""
    return [run_in_folder(run, config, run_folder(runs_dir, config))
            for config in tqdm(configs, desc="runs", disable=not progress)]


def accuracy_summary(records: Sequence[RunRecord], by: Sequence[str] = ("target_domain", "method")) -> pd.DataFrame:
    """Return mean test accuracy and 95% CI half-width in percent (1 decimal) per group, with n seeds."""
    table = aggregate(records, "test_accuracy", by=tuple(by))
    table["accuracy (%)"] = (100 * table["mean"]).round(1)
    table["ci95 (%)"] = (100 * table["ci95"]).round(1)
    return table[[*by, "accuracy (%)", "ci95 (%)", "n"]]


def _cell(mean: float, half_width: float) -> str:
    return f"{mean:.1f}" if math.isnan(half_width) else f"{mean:.1f} ± {half_width:.1f}"


def table4_beside_paper(records: Sequence[RunRecord], methods: Sequence[str]) -> pd.DataFrame:
    """Put Table 4 of Shi et al., NeurIPS 2020 (PACS) beside this book's accuracies, one row per method.

    Paper columns are labelled "paper: PACS <target>, 5 labels/class, ResNet-18"; book columns
    "this book: <setting>, n seeds" with mean ± 95% CI half-width. A method without a paper
    value (or a book run) shows "-".
    """
    summary = accuracy_summary(records)
    settings = {(r.config["target_domain"], r.method): r.config.get("setting", "") for r in records}
    rows = {row.method or PAPER_ONLY_ROWS.get(row.label): row for row in TABLE4.rows}
    data: dict[str, list[str]] = {}
    for index, column in enumerate(TABLE4.columns):
        label = f"paper: PACS {column.label}, 5 labels/class, ResNet-18"
        data[label] = [f"{rows[m].values[index][0]:.2f}" if m in rows else "-" for m in methods]
    for target in dict.fromkeys(summary["target_domain"]):
        part = summary[summary["target_domain"] == target].set_index("method")
        setting = next((settings[(target, m)] for m in methods if (target, m) in settings), target)
        seeds = int(part["n"].max()) if len(part) else 0
        label = f"this book: {setting}, {seeds} seeds"
        data[label] = [_cell(part.loc[m, "accuracy (%)"], part.loc[m, "ci95 (%)"]) if m in part.index else "-"
                       for m in methods]
    return pd.DataFrame(data, index=pd.Index(list(methods), name="method (accuracy %)"))


def weights_table(records: Sequence[RunRecord], row_keys: Sequence[str], selected: bool = False) -> pd.DataFrame:
    """Return the source weights of each run, one row per run, rounded to 2 decimals.

    Rows are labelled by the record fields or config keys in ``row_keys``. The weights are the
    last logged ones, or with ``selected`` the last logged at or before the step that model
    selection picked (``metrics["best_step"]``).
    """
    rows = {}
    for record in records:
        history = record.weights_history
        if selected:
            best = record.metrics.get("best_step", float("inf"))
            history = [entry for entry in history if entry["step"] <= best] or history[:1]
        names = record.config.get("aux_tasks") or [f"aux {k}" for k in range(len(history[-1]["weights"]))]
        label = ", ".join(str(getattr(record, key, None) or record.config.get(key)) for key in row_keys)
        rows[label] = dict(zip(names, history[-1]["weights"]))
    return pd.DataFrame.from_dict(rows, orient="index").round(2)
