"""Run folders: a finished run is returned at once, a killed run resumes to the same result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from arml_core.experiments.common import CHECKPOINT_FILE, config_key, load_history, resolve_repo_path, run_in_folder
from arml_core.experiments.ssl import SSLConfig, run
from arml_core.results import RECORD_FILE, RunRecord, weights_at_selection, weights_at_step

TINY = SSLConfig(
    num_iterations=30, eval_every=10, log_every=5, batch_size=16, unlabelled_batch_size=16,
    aux_tasks=("rotation", "random_label"), backbone_options={"width": 8, "feature_dim": 16},
    progress=False, num_threads=1, method="arml", method_options={"lr": 0.3},
)


def test_finished_run_is_returned_without_training(tmp_path):
    first = run_in_folder(run, TINY, tmp_path / "run")

    def must_not_train(config):
        raise AssertionError("a finished run was trained again")

    second = run_in_folder(must_not_train, TINY, tmp_path / "run")
    assert second == first
    assert not (tmp_path / "run" / CHECKPOINT_FILE).exists()
    assert load_history(tmp_path / "run")["step"][-1] == 29


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from arml_core.experiments.common import run_in_folder
    from arml_core.experiments.ssl import SSLConfig, run
    config = SSLConfig(
        num_iterations=400, eval_every=50, log_every=10, batch_size=16, unlabelled_batch_size=16,
        aux_tasks=("rotation", "random_label"), backbone_options={"width": 8, "feature_dim": 16},
        progress=False, num_threads=1, method="arml", method_options={"lr": 0.3},
        checkpoint_every=20,
    )
    run_in_folder(run, config, sys.argv[1])
    """
)


@pytest.mark.slow
def test_run_killed_midway_resumes_to_same_result(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(script), str(killed)])
    deadline = time.monotonic() + 120
    while not (killed / CHECKPOINT_FILE).exists():
        assert process.poll() is None, "the training process ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / RECORD_FILE).exists(), "the run finished before it could be killed"

    subprocess.run([sys.executable, str(script), str(killed)], check=True)
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run([sys.executable, str(script), str(uninterrupted)], check=True)

    resumed_record = (killed / RECORD_FILE).read_text()
    reference_record = (uninterrupted / RECORD_FILE).read_text()
    resumed, reference = json.loads(resumed_record), json.loads(reference_record)
    assert resumed["metrics"] == reference["metrics"]
    assert resumed["weights_history"] == reference["weights_history"]
    assert load_history(killed) == load_history(uninterrupted)


def test_weights_at_step():
    history = [{"step": 0, "weights": [1.0, 1.0]}, {"step": 10, "weights": [1.5, 0.5]}, {"step": 20, "weights": [2.0, 0.0]}]
    assert weights_at_step(history, 15) == [1.5, 0.5]
    assert weights_at_step(history, 20) == [2.0, 0.0]
    assert weights_at_step(history, -1) == [1.0, 1.0]


def test_weights_at_selection_uses_best_step():
    record = RunRecord(
        experiment="ssl", dataset="digits", method="arml", seed=0, metrics={"best_step": 10.0},
        weights_history=[{"step": 0, "weights": [1.0]}, {"step": 10, "weights": [0.5]}, {"step": 20, "weights": [0.1]}],
    )
    assert weights_at_selection(record) == [0.5]


def test_resolve_repo_path_from_notebooks_folder(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert resolve_repo_path("runs/x") == tmp_path / "runs/x"
    assert resolve_repo_path("/abs/runs") == Path("/abs/runs")
    monkeypatch.chdir(tmp_path)
    assert resolve_repo_path("runs/x") == Path("runs/x")


def test_folder_with_other_settings_is_rejected(tmp_path):
    run_in_folder(run, TINY, tmp_path / "run")
    with pytest.raises(ValueError, match="num_iterations=30 \\(requested 40\\)"):
        run_in_folder(run, replace(TINY, num_iterations=40), tmp_path / "run")


def test_config_key_ignores_bookkeeping_only():
    assert config_key(TINY) == config_key(replace(TINY, progress=True, checkpoint_every=7))
    assert config_key(TINY) != config_key(replace(TINY, num_iterations=31))
    assert config_key(TINY) != config_key(replace(TINY, method_options={"lr": 0.2}))


def test_last_iteration_is_logged():
    result = run(replace(TINY, num_iterations=12))
    assert result.history["step"] == [0, 5, 10, 11]
    assert result.weights_history[-1]["step"] == 11


def test_resolve_device_rejects_unknown_names():
    from arml_core.experiments.common import resolve_device

    with pytest.raises(ValueError, match="got 'gpu'"):
        resolve_device("gpu")
    assert resolve_device("cpu").type == "cpu"
