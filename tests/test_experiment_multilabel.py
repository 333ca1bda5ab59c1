"""Multi-label experiment: masked main loss, batches, every method on digits, CelebA and ResNet-18, params."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml

from arml_core.experiments import multilabel as mlc
from arml_core.plots_multilabel import arml_weight_ranking, table2, weights_at_selected_step
from arml_core.run import validate_parameters
from data_fixtures import write_celeba

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "04_multilabel.ipynb"
PARAMS = REPO / "notebooks" / "params" / "mlc_celeba.yml"
METHODS = ("uniform", "adaloss", "gradnorm", "cosine", "ol_aux", "arml")
TINY = mlc.MultilabelConfig(
    num_iterations=4, batch_size=32, eval_every=2, log_every=1, progress=False,
    backbone_options={"width": 4, "feature_dim": 8}, main_label_fraction=0.05,
)


def test_masked_main_loss_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 1.0])
    mask = torch.tensor([True, False, True])
    loss = mlc.masked_main_loss(logits, targets, mask)
    expected = (math.log(2.0) + math.log(1.0 + math.e)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # d BCE / d logit = sigmoid(logit) - target, divided by the 2 labelled images.
    assert logits.grad[0].item() == pytest.approx((0.5 - 1.0) / 2, rel=1e-6)
    assert logits.grad[1].item() == 0.0
    assert logits.grad[2].item() == pytest.approx((torch.sigmoid(torch.tensor(-1.0)).item() - 1.0) / 2, rel=1e-6)


def test_masked_main_loss_no_labels():
    logits = torch.randn(4, requires_grad=True)
    loss = mlc.masked_main_loss(logits, torch.ones(4), torch.zeros(4, dtype=torch.bool))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4))


class _FixedSource:
    """A source with one fixed batch, for checking the objective's losses by hand."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> None:
        self.images, self.targets, self.mask = images, targets, mask
        self.attr_names = ["a", "main", "b"]
        self.main_index = 1
        self.num_train = len(images)
        self.setting = "fixed batch"
        self.train_attributes = targets

    def train_batches(self, indices):
        for _ in indices:
            yield self.images, self.targets, self.mask


def _tiny_model() -> mlc.MultiHead:
    config = dataclasses.replace(TINY, backbone_options={"width": 2, "feature_dim": 3})
    return mlc.build_model(config, num_attributes=3).eval()


def test_objective_main_loss_ignores_unlabelled_images():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 8, 8)
    targets = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mask = torch.tensor([True, False, False, True])
    model = _tiny_model()
    losses = mlc.MultilabelObjective(_FixedSource(images, targets, mask), 4, 0, torch.device("cpu")).compute_losses(
        model, torch.Generator())

    logits = model.head(mlc.HEAD, model.features(images)).detach()
    by_hand = (F.binary_cross_entropy_with_logits(logits[0, 1], targets[0, 1])
               + F.binary_cross_entropy_with_logits(logits[3, 1], targets[3, 1])) / 2
    assert losses.main.item() == pytest.approx(float(by_hand), rel=1e-6)
    assert losses.aux[0].item() == pytest.approx(float(F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])), rel=1e-6)
    assert losses.aux[1].item() == pytest.approx(float(F.binary_cross_entropy_with_logits(logits[:, 2], targets[:, 2])), rel=1e-6)

    flipped = targets.clone()
    flipped[1:3, 1] = 1.0 - flipped[1:3, 1]  # change only the hidden main labels
    again = mlc.MultilabelObjective(_FixedSource(images, flipped, mask), 4, 0, torch.device("cpu")).compute_losses(
        model, torch.Generator())
    assert again.main.item() == losses.main.item()


def test_epoch_batches_cover_epoch_without_repeats():
    batches = [mlc.epoch_batch_indices(10, 3, seed=5, iteration=t) for t in range(3)]
    seen = torch.cat(batches)
    assert len(seen) == 9
    assert len(torch.unique(seen)) == 9
    assert torch.equal(mlc.epoch_batch_indices(10, 3, seed=5, iteration=1), batches[1])
    assert not torch.equal(mlc.epoch_batch_indices(10, 3, seed=5, iteration=3), batches[0])


def test_objective_resume_draws_same_batches():
    source = mlc.DigitAttributeSource(TINY)
    model = mlc.build_model(TINY, len(source.attr_names))
    straight = mlc.MultilabelObjective(source, 16, 0, torch.device("cpu"))
    for _ in range(3):
        straight.compute_losses(model, torch.Generator())
    resumed = mlc.MultilabelObjective(source, 16, 0, torch.device("cpu"))
    resumed.load_state_dict(straight.state_dict())
    with torch.no_grad():
        assert float(resumed.compute_losses(model, torch.Generator()).main) == float(
            straight.compute_losses(model, torch.Generator()).main)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_short_digits_run(method):
    options = {"lr": 10.0} if method == "arml" else {}
    result = mlc.run(dataclasses.replace(TINY, method=method, method_options=options))
    assert 0.0 <= result.metrics["test_error"] <= 1.0
    assert result.metrics["test_error"] == pytest.approx(1.0 - result.metrics["test_accuracy"])
    assert len(result.config["aux_tasks"]) == 18
    assert result.config["main_task"] == "closed_loop"
    assert all(len(w) == 18 for w in result.history["weights"])
    assert all(np.isfinite(w).all() for w in result.history["weights"])


def test_arml_uses_feature_gradients_and_moves():
    result = mlc.run(dataclasses.replace(TINY, method="arml", method_options={"lr": 10.0}, num_iterations=6))
    logged = [d for d in result.history["diagnostics"] if "b_0" in d]
    assert logged, "ARML logged no b diagnostics"
    weights = np.array(result.history["weights"])
    assert weights[-1].sum() == pytest.approx(18.0, rel=1e-5)
    assert not np.allclose(weights[-1], 1.0)


def test_digits_run_is_deterministic():
    first = mlc.run(dataclasses.replace(TINY, method="uniform"))
    second = mlc.run(dataclasses.replace(TINY, method="uniform"))
    assert first.metrics == second.metrics
    assert first.history["main_loss"] == second.history["main_loss"]


def test_celeba_resnet18_few_iterations(tmp_path):
    write_celeba(tmp_path, partition=(40, 10, 10))
    config = mlc.MultilabelConfig(
        dataset="celeba", main_attribute="5_o_Clock_Shadow", main_label_fraction=0.1, backbone="resnet18",
        method="arml", method_options={"lr": 10.0}, num_iterations=3, batch_size=8, image_size=32,
        eval_every=3, log_every=1, data_root=str(tmp_path), num_workers=0, verify_checksums=False,
        optimizer="sgd", lr=0.1, progress=False,
    )
    result = mlc.run(config)
    assert result.dataset == "celeba"
    assert len(result.config["aux_tasks"]) == 39
    assert "5_o_Clock_Shadow" not in result.config["aux_tasks"]
    assert 0.0 <= result.metrics["test_error"] <= 1.0
    relatedness = mlc.attribute_relatedness(mlc.build_source(config))
    assert len(relatedness) == 39


def test_unknown_dataset_rejected():
    with pytest.raises(ValueError, match="digit_attributes"):
        mlc.build_source(dataclasses.replace(TINY, dataset="mnist"))


def test_run_grid_tables_and_ranking(tmp_path):
    base = dataclasses.replace(TINY, num_iterations=2, eval_every=1)
    records = mlc.run_grid(base, ["uniform", "arml"], [0, 1], tmp_path, {"arml": {"lr": 10.0}})
    assert (tmp_path / "arml" / "seed1" / "record.json").exists()
    again = mlc.run_grid(base, ["uniform", "arml"], [0, 1], tmp_path, {"arml": {"lr": 10.0}})
    assert [r.created for r in again] == [r.created for r in records]

    frame = table2(records, ["uniform", "arml", "gradnorm"])
    assert frame.loc["ARML", "paper: CelebA, 1% main labels, ResNet-18"] == "5.97 ± 0.18"
    assert frame.loc["GradNorm"].iloc[1] == "not run"

    arml = [r for r in records if r.method == "arml"]
    relatedness = pd.Series(mlc.attribute_relatedness(mlc.build_source(base)))
    ranking, rho, _ = arml_weight_ranking(records, relatedness)
    assert len(ranking) == 18
    assert -1.0 <= rho <= 1.0
    expected = np.mean([weights_at_selected_step(r) for r in arml], axis=0)
    assert ranking["alpha (selected)"].iloc[0] == pytest.approx(expected.max())


def test_weights_at_selected_step():
    from arml_core.results import RunRecord

    record = RunRecord("multilabel", "digit_attributes", "arml", 0, metrics={"best_step": 10.0},
                       weights_history=[{"step": 0, "weights": [1.0]}, {"step": 10, "weights": [2.0]},
                                        {"step": 15, "weights": [3.0]}])
    assert weights_at_selected_step(record).tolist() == [2.0]


def test_params_file_validates_against_notebook():
    parameters = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    checked = validate_parameters(NOTEBOOK, parameters)
    assert checked["dataset"] == "celeba"
    assert checked["device"] == "cuda"
    assert isinstance(checked["lr"], float)


def test_params_paper_schedule_in_iterations():
    parameters = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    per_epoch = 162_770 // parameters["batch_size"]
    assert parameters["num_iterations"] == 90 * per_epoch
    assert parameters["lr_milestones"] == [[30 * per_epoch, 0.01], [60 * per_epoch, 0.001]]
    assert parameters["lr"] == 0.1
    assert parameters["main_label_fraction"] == 0.01


def test_resumed_run_matches_uninterrupted(tmp_path, caplog):
    config = dataclasses.replace(TINY, method="arml", method_options={"lr": 10.0}, num_iterations=6, eval_every=3)
    straight = mlc.run(config)
    checkpoint = str(tmp_path / "checkpoint.pt")
    mlc.run(dataclasses.replace(config, num_iterations=3, checkpoint_every=3, checkpoint_path=checkpoint))
    with caplog.at_level(logging.INFO, logger="arml_core.training"):
        resumed = mlc.run(dataclasses.replace(config, checkpoint_every=3, checkpoint_path=checkpoint))
    assert "at iteration 3" in caplog.text
    assert resumed.metrics == straight.metrics
    assert resumed.history["weights"] == straight.history["weights"]
    assert resumed.history["main_loss"] == straight.history["main_loss"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the stop on a machine without a GPU")
def test_cuda_without_gpu_names_colab_fix():
    with pytest.raises(RuntimeError, match="Change runtime type"):
        mlc.run(dataclasses.replace(TINY, device="cuda"))
