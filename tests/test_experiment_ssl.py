"""The semi-supervised experiment: on-disk WRN path, every method, grid-search selection, params files."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from data_fixtures import write_cifar10, write_svhn
from arml_core.experiments.ssl import SSLConfig, run
from arml_core.experiments.ssl_data import channel_stats, load_ssl_data, translate_and_flip
from arml_core.experiments.ssl_report import diagnostics_summary, paired_difference, table1
from arml_core.experiments.ssl_runs import (
    GRID_METHOD, METHODS, config_key, run_folder, run_methods, run_one, select_grid_point,
)
from arml_core.results import RunRecord, load_records
from arml_core.run import load_parameter_file, read_parameter_defaults, validate_parameters

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_semi_supervised.ipynb"
PARAMS = Path(__file__).resolve().parents[1] / "notebooks" / "params"

TINY_DIGITS = SSLConfig(
    num_iterations=4, eval_every=2, log_every=1, batch_size=8, unlabelled_batch_size=4,
    backbone_options={"width": 4, "feature_dim": 8}, progress=False, num_threads=1,
)


def _tiny_disk_config(dataset: str, root: Path, method: str) -> SSLConfig:
    return SSLConfig(
        dataset=dataset, data_root=str(root), num_val=20, labels_per_class=2, verify_checksums=False,
        backbone="wrn28_2", backbone_options={"bn_momentum": 0.1}, augment_labelled=True,
        num_iterations=2, eval_every=2, log_every=1, batch_size=4, unlabelled_batch_size=2,
        method=method, method_options={"lr": 0.05} if method == "arml" else {},
        progress=False, num_threads=1,
    )


def test_cifar10_wrn_run_end_to_end(tmp_path):
    write_cifar10(tmp_path, per_batch=20, num_test=20)
    result = run(_tiny_disk_config("cifar10", tmp_path, "arml"))

    assert result.dataset == "cifar10"
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert math.isclose(result.metrics["test_error"], 1.0 - result.metrics["test_accuracy"])
    assert result.history["step"] == [0, 1]
    assert "main_grad_sq" in result.history["diagnostics"][0]
    assert abs(sum(result.history["weights"][-1]) - 2.0) < 1e-5
    assert result.config["setting"].startswith("cifar10, 2 labels/class, wrn28_2")


def test_svhn_wrn_run_end_to_end(tmp_path):
    write_svhn(tmp_path, num_train=100, num_test=30)
    result = run(_tiny_disk_config("svhn", tmp_path, "uniform"))

    assert result.history["step"] == [0, 1]
    correct = round(result.metrics["test_accuracy"] * 30)
    assert math.isclose(correct / 30, result.metrics["test_accuracy"])


def test_disk_data_uint8_and_standardised(tmp_path):
    write_cifar10(tmp_path, per_batch=20, num_test=20)
    data = load_ssl_data("cifar10", 2, seed=0, data_root=tmp_path, num_val=20, verify_checksums=False)

    assert data.unlabelled_images.dtype == torch.uint8
    assert tuple(data.unlabelled_images.shape) == (80, 3, 32, 32)
    assert tuple(data.labelled_images.shape) == (20, 3, 32, 32)
    assert tuple(data.val_images.shape) == (20, 3, 32, 32)
    assert tuple(data.test_images.shape) == (20, 3, 32, 32)
    prepared = data.prepare(data.unlabelled_images, torch.device("cpu"))
    assert prepared.dtype == torch.float32
    torch.testing.assert_close(prepared.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(prepared.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_cifar10_channels_follow_file_layout(tmp_path):
    write_cifar10(tmp_path, per_batch=20, num_test=20)
    data = load_ssl_data("cifar10", 2, seed=0, data_root=tmp_path, num_val=20, verify_checksums=False)
    from arml_core.data.cifar10 import load_cifar10

    raw = load_cifar10(tmp_path, num_val=20, num_labels=20, seed=0, verify_checksums=False)
    first = int(raw.split.labelled[0])
    # torchvision's CIFAR-10 array is (N, H, W, C); the loaded tensors are (N, C, H, W).
    torch.testing.assert_close(data.labelled_images[0, 0, 0, 1], torch.tensor(raw.train_set.data[first, 0, 1, 0]))
    torch.testing.assert_close(data.labelled_images[0, 2, 5, 7], torch.tensor(raw.train_set.data[first, 5, 7, 2]))


def test_channel_stats_closed_form():
    images = torch.randint(0, 256, (50, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(images, chunk=7)
    array = images.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(mean.numpy(), array.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), array.std(axis=(0, 2, 3)), rtol=1e-5)


def test_translate_is_a_zero_filled_shift():
    images = torch.arange(1, 1 + 6 * 2 * 5 * 5, dtype=torch.float32).view(6, 2, 5, 5)
    out = translate_and_flip(images, torch.Generator().manual_seed(3), max_shift=1, flip=False)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    seen = set()
    for i in range(6):
        matches = [(dy, dx) for dy in range(3) for dx in range(3)
                   if torch.equal(out[i], padded[i, :, dy:dy + 5, dx:dx + 5])]
        assert len(matches) == 1, f"image {i} is not a shift of its input"
        seen.add(matches[0])
    assert len(seen) > 1
    assert torch.equal(translate_and_flip(images, torch.Generator(), 0, False), images)


def test_flip_mirrors_some_images():
    images = torch.randn(64, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    out = translate_and_flip(images, torch.Generator().manual_seed(1), max_shift=0, flip=True)
    mirrored = [torch.equal(out[i], images[i].flip(-1)) for i in range(64)]
    unchanged = [torch.equal(out[i], images[i]) for i in range(64)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert 10 < sum(mirrored) < 54


@pytest.mark.parametrize("method", [m for m in METHODS if m != GRID_METHOD])
def test_every_method_runs_on_digits(method, tmp_path):
    record = run_one(TINY_DIGITS, method, seed=0, runs_dir=tmp_path)
    assert record.method == method
    assert record.status == "finished"
    assert 0.0 <= record.metrics["test_error"] <= 1.0
    assert len(record.weights_history) == 4
    assert all(math.isfinite(w) for entry in record.weights_history for w in entry["weights"])


def test_grid_search_runs_and_relabels(tmp_path):
    records, grid = run_methods(TINY_DIGITS, ["uniform", GRID_METHOD], [0, 1], tmp_path, grid_step=1.0)

    assert set(grid.points) == {(2.0, 0.0), (1.0, 1.0), (0.0, 2.0)}
    chosen = [r for r in records if r.method == GRID_METHOD]
    assert [r.seed for r in chosen] == [0, 1]
    assert all(r.config["grid_weights"] == list(grid.best_weights) for r in chosen)
    saved = load_records(tmp_path)
    assert sorted(r.seed for r in saved if r.method == GRID_METHOD) == [0, 1]
    means = {w: np.mean([r.metrics["val_accuracy"] for r in rs]) for w, rs in grid.points.items()}
    assert means[grid.best_weights] == max(means.values())
    # The all-ones point is the Uniform run, not a second training run.
    uniform = {r.seed: r.metrics for r in records if r.method == "uniform"}
    assert [r.metrics for r in grid.points[(1.0, 1.0)]] == [uniform[0], uniform[1]]


def _record(seed: int, val: float, test: float) -> RunRecord:
    return RunRecord(experiment="ssl", dataset="digits", method="fixed", seed=seed,
                     metrics={"val_accuracy": val, "test_accuracy": test, "test_error": 1 - test})


def test_grid_selection_ignores_test_set():
    points = {
        (2.0, 0.0): [_record(0, 0.90, 0.60), _record(1, 0.88, 0.62)],  # best validation
        (1.0, 1.0): [_record(0, 0.80, 0.95), _record(1, 0.82, 0.97)],  # best test
        (0.0, 2.0): [_record(0, 0.85, 0.70), _record(1, 0.70, 0.71)],
    }
    assert select_grid_point(points) == (2.0, 0.0)
    with pytest.raises(ValueError, match="validation metric"):
        select_grid_point(points, metric="test_accuracy")


def test_run_folder_key_tracks_settings(tmp_path):
    other_method = dataclasses.replace(TINY_DIGITS, method="uniform", seed=3, progress=True)
    assert config_key(other_method) == config_key(TINY_DIGITS)
    assert config_key(dataclasses.replace(TINY_DIGITS, num_iterations=5)) != config_key(TINY_DIGITS)
    assert run_folder(tmp_path, other_method).parts[-2:] == ("uniform", "seed3")


def test_paired_difference_hand_computed():
    records = [
        RunRecord("ssl", "digits", "arml", 0, metrics={"test_error": 0.10}),
        RunRecord("ssl", "digits", "arml", 1, metrics={"test_error": 0.20}),
        RunRecord("ssl", "digits", "uniform", 0, metrics={"test_error": 0.15}),
        RunRecord("ssl", "digits", "uniform", 1, metrics={"test_error": 0.20}),
        RunRecord("ssl", "digits", "uniform", 2, metrics={"test_error": 0.50}),
    ]
    result = paired_difference(records, "arml", "uniform")
    # Differences -5 and 0 points: mean -2.5, standard error 2.5, half-width t(0.975, df=1) * 2.5.
    assert result["n"] == 2
    assert math.isclose(result["mean"], -2.5)
    assert math.isclose(result["ci95"], 12.7062047 * 2.5, rel_tol=1e-6)


def test_table1_puts_book_beside_paper():
    records = [RunRecord("ssl", "digits", "arml", s, metrics={"test_error": e}) for s, e in ((0, 0.10), (1, 0.20))]
    frame = table1(records, "digits")
    assert frame.loc["S4L + ARML (ours)", "paper: CIFAR-10, 4000 labels, WRN-28-2"] == "13.68 ± 0.35"
    assert frame.loc["S4L + ARML (ours)", "paper: SVHN, 1000 labels, WRN-28-2"] == "5.89 ± 0.22"
    assert frame.loc["S4L + ARML (ours)", "this book: digits"] == "15.0 ± 63.5 (2 seeds)"
    assert frame.loc["S4L (Uniform)", "this book: digits"] == "not run"
    assert "Mean Teacher" not in frame.index


def test_diagnostics_summary_means():
    diagnostics = [{"main_grad_sq": float(i), "aux_grad_sq_0": 1.0, "b_0": 2.0, "cos_0": 0.5} for i in range(10)]
    history = {"step": list(range(10)), "diagnostics": [{"langevin": 0.0}] + diagnostics}
    frame = diagnostics_summary({0: history}, ["rotation"], fraction=0.2)
    assert list(frame["phase"]) == ["first 20%", "last 20%"]
    assert list(frame["|g_m|^2"]) == ["0.5", "8.5"]
    assert list(frame["b_rotation"]) == ["2", "2"]


@pytest.mark.parametrize("name", ["ssl_cifar10.yml", "ssl_svhn.yml"])
def test_params_file_validates(name):
    values = validate_parameters(NOTEBOOK, load_parameter_file(PARAMS / name))
    defaults = read_parameter_defaults(NOTEBOOK)
    assert values["num_iterations"] == 200000
    assert values["batch_size"] == 256
    assert values["lr"] == 5.0e-3 and isinstance(values["lr"], float)
    assert values["lr_milestones"] == [[160000, 1.0e-3]]
    assert values["device"] == "cuda"
    assert values["backbone"] == "wrn28_2"
    assert isinstance(defaults["data_root"], str)
    # 4,000 labels on CIFAR-10 and 1,000 on SVHN, over 10 classes.
    assert values["labels_per_class"] == {"ssl_cifar10.yml": 400, "ssl_svhn.yml": 100}[name]


def test_notebook_defaults_are_cpu_digits():
    defaults = read_parameter_defaults(NOTEBOOK)
    assert defaults["dataset"] == "digits"
    assert defaults["device"] == "cpu"
    assert set(defaults["methods"]) == set(METHODS)
