"""Domain-generalisation experiment: methods, the source-only model step, FADA pairs, PACS with ResNet-18."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from torchvision.models import resnet18

from arml_core.experiments.dg_data import BatchTransform, load_dg_data
from arml_core.experiments.dg_weighting import SourcesOnly, make_dg_weighter
from arml_core.weighting import ARML
from arml_core.experiments.domain_generalization import (
    METHODS,
    DGConfig,
    DGObjective,
    build_model,
    frozen_batchnorm_statistics,
    run,
)
from arml_core.experiments.fada import FADA, G1, G2, G3, G4, pair_groups
from arml_core.run import validate_parameters
from data_fixtures import write_pacs

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 8, "feature_dim": 16}


def tiny_config(**changes) -> DGConfig:
    base = DGConfig(target_domain="rot45", labels_per_class=2, backbone_options=TINY, batch_size=8,
                    num_iterations=4, eval_every=2, log_every=1, fada_warmup=1, progress=False)
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_runs(method):
    result = run(tiny_config(method=method))
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    assert result.config["aux_tasks"] == ["rot0", "rot15", "rot30", "rot60", "rot75"]
    assert len(result.history["weights"][-1]) == 5
    assert result.to_record().experiment == "dg"


def test_run_is_deterministic():
    first = run(tiny_config(method="jt_arml"))
    again = run(tiny_config(method="jt_arml"))
    assert first.metrics == again.metrics
    assert first.history["weights"] == again.history["weights"]


def first_step(method: str, permute_labels: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Return the model gradients and the weights after one weighter step of ``method``."""
    config = tiny_config(method=method)
    data = load_dg_data("rotated_digits", "rot45", 2, 16, seed=0)
    if permute_labels:
        images, labels = data.labelled
        data.labelled = (images, (labels + 3) % 10)
    torch.manual_seed(0)
    model = build_model(config, 10, 1)
    weighter = make_dg_weighter(method, 5, {"lr": 0.5}, seed=0)
    objective = DGObjective(data, BatchTransform(False, None, False), 8, 64, torch.device("cpu"),
                            target_in_model_step=method != "baseline_arml")
    losses = objective.compute_losses(model, torch.Generator().manual_seed(0))
    weighter.backward(losses.main, losses.aux, model.shared_parameters())
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return grads, weighter.weights.clone()


def test_baseline_arml_step_ignores_target_labels():
    grads, weights = first_step("baseline_arml", permute_labels=False)
    grads_permuted, weights_permuted = first_step("baseline_arml", permute_labels=True)
    for name in grads:
        assert torch.allclose(grads[name], grads_permuted[name], atol=1e-7), name
    assert not torch.allclose(weights, weights_permuted, atol=1e-4)


def test_jt_arml_step_uses_target_labels():
    grads, _ = first_step("jt_arml", permute_labels=False)
    grads_permuted, _ = first_step("jt_arml", permute_labels=True)
    assert not torch.allclose(grads["heads.main.weight"], grads_permuted["heads.main.weight"], atol=1e-5)


def test_source_step_arml_model_gradient_is_weighted_sources():
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(3))
    main = (shared * torch.tensor([1.0, 0.0, 2.0])).sum() ** 2
    aux = [(shared ** 2).sum(), shared.sum()]
    weighter = ARML(2, lr=0.1, algorithm=2, main_coefficient=0.0)
    weighter.weights = torch.tensor([0.5, 1.5])
    weighter.backward(main, aux, [shared])
    expected = 0.5 * 2 * shared.detach() + 1.5 * torch.ones(3)
    assert torch.allclose(shared.grad, expected)
    assert not torch.allclose(weighter.weights, torch.tensor([0.5, 1.5]))
    assert torch.isclose(weighter.weights.sum(), torch.tensor(2.0))


def test_sources_only_drops_main_gradient():
    shared = torch.nn.Parameter(torch.ones(2))
    SourcesOnly(1).backward((shared * 5).sum(), [(shared * 2).sum()], [shared])
    assert torch.equal(shared.grad, torch.full((2,), 2.0))


def test_fada_groups_by_hand():
    groups = pair_groups(torch.tensor([0, 0, 1]), torch.tensor([0, 1]))
    assert groups[G1].tolist() == [[0, 1]]
    assert groups[G2].tolist() == [[0, 0], [1, 0], [2, 1]]
    assert groups[G3].tolist() == [[0, 2], [1, 2]]
    assert groups[G4].tolist() == [[0, 1], [1, 1], [2, 0]]


def test_fada_confusion_trains_dcd_not_through_it():
    fada = FADA(feature_dim=4, gamma=1.0, pairs_per_group=6)
    source = torch.randn(6, 4, requires_grad=True)
    target = torch.randn(3, 4, requires_grad=True)
    before = [p.detach().clone() for p in fada.dcd.parameters()]
    loss = fada.confusion_loss(source, torch.tensor([0, 0, 1, 1, 2, 2]), target, torch.tensor([0, 1, 2]),
                               torch.Generator().manual_seed(0))
    dcd_grads = [p.grad.clone() for p in fada.dcd.parameters()]
    loss.backward()
    assert any(not torch.equal(b, p) for b, p in zip(before, fada.dcd.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(dcd_grads, fada.dcd.parameters()))
    assert target.grad is not None and target.grad.abs().sum() > 0


def test_fada_warmup_gives_zero_loss():
    fada = FADA(feature_dim=4, gamma=1.0, warmup=1)
    target = torch.randn(2, 4, requires_grad=True)
    loss = fada.confusion_loss(torch.randn(4, 4), torch.tensor([0, 0, 1, 1]), target, torch.tensor([0, 1]),
                               torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    assert loss.requires_grad


def test_augment_flip_only_is_exact():
    images = torch.rand(6, 3, 8, 8)
    out = BatchTransform(False, None, True)(images, torch.Generator().manual_seed(1))
    flips = 0
    for original, result in zip(images, out):
        if torch.allclose(result, original.flip(-1), atol=1e-5):
            flips += 1
        else:
            assert torch.allclose(result, original, atol=1e-5)
    assert 0 < flips < 6


def test_augment_normalizes_uint8():
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = BatchTransform(True, None, False)(images)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]))


def test_augment_crop_changes_and_keeps_shape():
    images = torch.rand(4, 3, 8, 8)
    out = BatchTransform(False, (0.5, 0.6), False)(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert not torch.allclose(out, images)
    assert torch.equal(BatchTransform(False, (0.5, 0.6), False)(images), images)


def test_frozen_batchnorm_keeps_running_stats():
    layer = torch.nn.BatchNorm1d(3)
    with frozen_batchnorm_statistics(layer):
        layer(torch.randn(8, 3) + 5)
    assert torch.equal(layer.running_mean, torch.zeros(3))
    assert layer.momentum == 0.1
    layer(torch.randn(8, 3) + 5)
    assert layer.running_mean.abs().sum() > 0


def test_pacs_resnet18_runs_with_pretrained_weights(tmp_path):
    write_pacs(tmp_path, per_class=4)
    weights = tmp_path / "resnet18.pth"
    reference = resnet18(weights=None)
    torch.save(reference.state_dict(), weights)
    config = DGConfig(dataset="pacs", data_root=str(tmp_path), target_domain="sketch", labels_per_class=1,
                      backbone="resnet18", pretrained_weights_path=str(weights), image_size=32,
                      crop_scale=(0.8, 1.0), horizontal_flip=True, batch_size=4, num_iterations=2,
                      eval_every=2, lr=0.0, method="jt_arml", progress=False)
    model = build_model(config, 7, 3)
    assert torch.equal(model.backbone.conv1.weight, reference.conv1.weight)
    result = run(config)
    assert result.config["aux_tasks"] == ["photo", "art_painting", "cartoon"]
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0


@pytest.mark.parametrize("name", ["dg_pacs_photo", "dg_pacs_art_painting", "dg_pacs_cartoon", "dg_pacs_sketch"])
def test_params_files_validate(name):
    parameters = yaml.safe_load((REPO / "notebooks" / "params" / f"{name}.yml").read_text())
    checked = validate_parameters(REPO / "notebooks" / "05_domain_generalization.ipynb", parameters)
    assert checked["device"] == "cuda"
    assert checked["target_domains"] == [name.removeprefix("dg_pacs_")]


def test_fada_arml_resume_matches_straight_run(tmp_path):
    checkpoint = str(tmp_path / "checkpoint.pt")
    straight = run(tiny_config(method="fada_arml"))
    run(tiny_config(method="fada_arml", num_iterations=2, checkpoint_every=2, checkpoint_path=checkpoint))
    resumed = run(tiny_config(method="fada_arml", checkpoint_every=2, checkpoint_path=checkpoint))
    assert resumed.metrics["test_accuracy"] == straight.metrics["test_accuracy"]
    assert resumed.history["weights"] == straight.history["weights"]
    assert resumed.history["main_loss"] == straight.history["main_loss"]
