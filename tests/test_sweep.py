"""Tests for sweeps: expansion into runs, folder names, resumption and failure reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from arml_core.results import RunRecord, load_records, save_record
from arml_core.run import ParameterError
from arml_core.sweep import expand_sweep, is_finished, main, run_folder_name, run_sweep

TINY = Path(__file__).parent / "notebooks" / "tiny_params.ipynb"


def write_sweep(folder: Path, **content: object) -> Path:
    path = folder / "sweep.yml"
    path.write_text(yaml.safe_dump({"notebook": str(TINY), **content}))
    return path


def test_expand_grid_product(tmp_path: Path) -> None:
    params = tmp_path / "params.yml"
    params.write_text("lr: 0.5\nnum_epochs: 9\n")
    sweep = {"notebook": str(TINY), "parameters_file": str(params), "parameters": {"num_epochs": 4},
             "grid": {"method": ["uniform", "arml"], "seed": [0, 1, 2]}}
    specs = expand_sweep(sweep, tmp_path / "out")
    assert len(specs) == 6
    assert [Path(s.output_dir).name for s in specs[:3]] == [
        "method-uniform__seed-0", "method-uniform__seed-1", "method-uniform__seed-2"]
    assert specs[4].parameters == {"lr": 0.5, "num_epochs": 4, "method": "arml", "seed": 1}
    assert specs[4].grid_values == {"method": "arml", "seed": 1}
    assert all(Path(s.output_dir).parent == (tmp_path / "out").resolve() for s in specs)


def test_folder_name_sanitised() -> None:
    assert run_folder_name({"seeds": [0, 1], "name": "a b/c"}) == "seeds-0_1__name-a_b_c"
    assert run_folder_name({}) == "run"


def test_expand_rejects_bad_grid_key(tmp_path: Path) -> None:
    sweep = {"notebook": str(TINY), "grid": {"metod": ["arml"]}}
    with pytest.raises(ParameterError, match="did you mean 'method'"):
        expand_sweep(sweep, tmp_path)


def test_expand_rejects_scalar_grid(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="grid entry 'seed' must be a non-empty YAML list"):
        expand_sweep({"notebook": str(TINY), "grid": {"seed": 3}}, tmp_path)


def test_expand_rejects_unknown_sweep_key(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown sweep keys \\['grids'\\]"):
        expand_sweep({"notebook": str(TINY), "grids": {"seed": [0]}}, tmp_path)


def test_expand_checks_types_of_grid_values(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="'lr' expects a float"):
        expand_sweep({"notebook": str(TINY), "grid": {"lr": ["1e-3"]}}, tmp_path)


def test_is_finished_markers(tmp_path: Path) -> None:
    assert not is_finished(tmp_path / "missing")
    save_record(RunRecord("quickstart", "toy", "arml", 0, status="failed"), tmp_path / "failed")
    assert not is_finished(tmp_path / "failed")
    save_record(RunRecord("quickstart", "toy", "arml", 0), tmp_path / "finished")
    assert is_finished(tmp_path / "finished")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "DONE").write_text("{}")
    assert is_finished(tmp_path / "done")


def test_sweep_resumes_with_submitit_local(tmp_path: Path) -> None:
    sweep_file = write_sweep(tmp_path, parameters={"seed": 1},
                             grid={"method": ["uniform", "arml", "broken"]})
    output = tmp_path / "runs"
    # A run finished earlier: record.json with status "finished" and no DONE marker.
    previous = RunRecord("quickstart", "toy", "arml", 1, metrics={"test_error": 0.5})
    save_record(previous, output / "method-arml")

    report = run_sweep(sweep_file, output, executor="submitit-local")
    assert [Path(s.output_dir).name for s in report.skipped] == ["method-arml"]
    assert [Path(s.output_dir).name for s in report.finished] == ["method-uniform"]
    assert len(report.failed) == 1
    failed_spec, error = report.failed[0]
    assert Path(failed_spec.output_dir).name == "method-broken"
    assert "deliberate failure" in error
    assert "cell 4 " in error
    failed = json.loads((output / "method-broken" / "FAILED").read_text())
    assert failed["log"] == str(output.resolve() / "method-broken" / "run.log")
    assert "deliberate failure" in Path(failed["log"]).read_text()
    assert (output / "method-uniform" / "DONE").exists()
    assert (output / "method-uniform" / "tiny_params.ipynb").exists()
    assert sorted(r.method for r in load_records(output)) == ["arml", "uniform"]
    arml = [r for r in load_records(output) if r.method == "arml"][0]
    assert arml.metrics == {"test_error": 0.5}  # untouched: the run was skipped

    again = run_sweep(sweep_file, output, executor="submitit-local")
    assert sorted(Path(s.output_dir).name for s in again.skipped) == ["method-arml", "method-uniform"]
    assert again.finished == []
    assert [Path(s.output_dir).name for s, _ in again.failed] == ["method-broken"]


def test_cli_local_pool_runs_and_lists_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sweep_file = write_sweep(tmp_path, grid={"method": ["broken"]})
    code = main([str(sweep_file), "--output", str(tmp_path / "runs"), "--max-parallel", "1"])
    assert code == 1
    log_path = tmp_path.resolve() / "runs" / "method-broken" / "run.log"
    assert f"log: {log_path}" in caplog.text


def test_shipped_sweep_files_expand_and_validate(tmp_path):
    """Every sweep file under notebooks/params expands into runs whose parameters pass the checks."""
    repo = Path(__file__).resolve().parent.parent
    files = sorted((repo / "notebooks" / "params").glob("sweep_*.yml"))
    assert files
    for path in files:
        specs = expand_sweep(yaml.safe_load(path.read_text()), tmp_path / path.stem)
        assert len({spec.output_dir for spec in specs}) == len(specs) > 1
