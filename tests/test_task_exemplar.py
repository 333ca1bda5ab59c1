"""Tests for the Exemplar-MT auxiliary task: augmentation, loss, teacher and resume."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from arml_core.models.multihead import MultiHead
from arml_core.models.wrn import WideResNet
from arml_core.tasks.exemplar import ExemplarMTTask, exemplar_augment, sample_cutout_mask

NO_AUGMENTATION = {"flip_prob": 0.0, "noise_std": 0.0, "cutout_size": 0}


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


def _build(task: ExemplarMTTask, seed: int = 0) -> MultiHead:
    torch.manual_seed(seed)
    backbone = WideResNet(depth=10, widen_factor=1, in_channels=1, bn_momentum=0.1)
    model = MultiHead(backbone, {task.head_name: task.make_head(backbone.feature_dim)})
    model.train()
    return model


def _images(seed: int = 1, batch_size: int = 6) -> torch.Tensor:
    return torch.randn(batch_size, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _sgd_step(model: MultiHead, loss: torch.Tensor) -> None:
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for param in model.parameters():
            if param.grad is not None:
                param.sub_(0.1 * param.grad)


def test_loss_in_range_with_augmentation() -> None:
    task = ExemplarMTTask(cutout_size=4)
    model = _build(task)
    loss = task.loss(model, _images(), torch.Generator().manual_seed(0))
    assert loss.dim() == 0
    assert 0.0 <= loss.item() <= 2.0
    assert loss.item() > 1e-4  # augmentation makes student and teacher differ


def test_loss_zero_for_identical_teacher() -> None:
    task = ExemplarMTTask(**NO_AUGMENTATION)
    model = _build(task)
    loss = task.loss(model, _images(), torch.Generator().manual_seed(0))
    assert abs(loss.item()) < 1e-6


def test_loss_two_for_opposite_teacher() -> None:
    task = ExemplarMTTask(**NO_AUGMENTATION)
    model = _build(task)
    generator = torch.Generator().manual_seed(0)
    task.loss(model, _images(), generator)  # creates the teacher
    head = task.teacher[1]
    with torch.no_grad():
        head.weight.neg_()
        head.bias.neg_()
    loss = task.loss(model, _images(), generator)
    assert abs(loss.item() - 2.0) < 1e-5


def test_loss_matches_hand_computation() -> None:
    task = ExemplarMTTask(flip_prob=1.0, noise_std=0.0, cutout_size=0)
    model = _build(task)
    images = _images()
    loss = task.loss(model, images, torch.Generator().manual_seed(0))

    with torch.no_grad():
        student = model(images.flip(-1), task.head_name).numpy()
        teacher = model(images, task.head_name).numpy()
    cosines = (student * teacher).sum(1) / (np.linalg.norm(student, axis=1) * np.linalg.norm(teacher, axis=1))
    assert loss.item() == pytest.approx(float(np.mean(1.0 - cosines)), abs=1e-6)


def test_teacher_gets_no_gradient() -> None:
    task = ExemplarMTTask(cutout_size=4)
    model = _build(task)
    loss = task.loss(model, _images(), torch.Generator().manual_seed(0))
    loss.backward()

    teacher_params = list(task.teacher.parameters())
    assert teacher_params
    assert all(not p.requires_grad for p in teacher_params)
    assert all(p.grad is None for p in teacher_params)
    assert all(p.grad is not None for p in model.shared_parameters())
    assert model.heads[task.head_name].weight.grad is not None
    student_ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in student_ids for p in teacher_params)


def test_teacher_forward_keeps_buffers() -> None:
    task = ExemplarMTTask(cutout_size=4)
    model = _build(task)
    task.loss(model, _images(), torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    student_before = model.backbone.final_bn.running_mean.clone()

    task.loss(model, _images(seed=5), torch.Generator().manual_seed(1))

    for key, value in task.teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(model.backbone.final_bn.running_mean, student_before)


def test_teacher_eval_mode_option() -> None:
    task = ExemplarMTTask(teacher_batch_stats=False, **NO_AUGMENTATION)
    model = _build(task)
    images = _images()
    before_step = copy.deepcopy(model).eval()  # the student's forward below updates its running stats
    loss = task.loss(model, images, torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = before_step(images, task.head_name)
    assert not task.teacher.training
    torch.testing.assert_close(task.teacher(images), expected)
    assert loss.item() > 1e-4  # student uses batch statistics, teacher running ones


def test_ema_update_formula() -> None:
    decay = 0.9
    task = ExemplarMTTask(ema_decay=decay, cutout_size=4)
    model = _build(task)
    _sgd_step(model, task.loss(model, _images(), torch.Generator().manual_seed(0)))
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    student = {
        **{f"0.{k}": v for k, v in model.backbone.state_dict().items()},
        **{f"1.{k}": v for k, v in model.heads[task.head_name].state_dict().items()},
    }
    assert set(student) == set(teacher_before)

    task.after_step(model)

    moved = 0
    for key, new in task.teacher.state_dict().items():
        old, current = teacher_before[key], student[key]
        if key.endswith("num_batches_tracked"):
            assert torch.equal(new, current), key
            continue
        expected = decay * old + (1 - decay) * current
        torch.testing.assert_close(new, expected, rtol=1e-6, atol=1e-7, msg=key)
        moved += int(not torch.equal(old, current))
    assert moved > 10  # the step changed parameters and batch-norm statistics
    assert task.num_updates == 1


def test_ema_decay_one_freezes_teacher() -> None:
    task = ExemplarMTTask(ema_decay=1.0, cutout_size=4)
    model = _build(task)
    _sgd_step(model, task.loss(model, _images(), torch.Generator().manual_seed(0)))
    weight_before = task.teacher[1].weight.clone()
    task.after_step(model)
    assert torch.equal(task.teacher[1].weight, weight_before)


def test_loss_deterministic_from_seed() -> None:
    losses = []
    for _ in range(2):
        task = ExemplarMTTask(cutout_size=4)
        model = _build(task, seed=3)
        losses.append(task.loss(model, _images(), torch.Generator().manual_seed(11)).item())
    other_task = ExemplarMTTask(cutout_size=4)
    other = other_task.loss(_build(other_task, seed=3), _images(), torch.Generator().manual_seed(12)).item()
    assert losses[0] == losses[1]
    assert other != losses[0]


def test_augment_deterministic_and_pure() -> None:
    images = _images()
    original = images.clone()
    first = exemplar_augment(images, torch.Generator().manual_seed(4), cutout_size=3)
    second = exemplar_augment(images, torch.Generator().manual_seed(4), cutout_size=3)
    third = exemplar_augment(images, torch.Generator().manual_seed(5), cutout_size=3)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)
    assert torch.equal(images, original)


def test_augment_flip_probability() -> None:
    images = _images()
    flipped = exemplar_augment(images, torch.Generator().manual_seed(0), flip_prob=1.0, noise_std=0.0, cutout_size=0)
    unflipped = exemplar_augment(images, torch.Generator().manual_seed(0), **NO_AUGMENTATION)
    assert torch.equal(flipped, images.flip(-1))
    assert torch.equal(unflipped, images)

    many = torch.arange(8.0).view(1, 1, 1, 8).repeat(2000, 1, 1, 1)
    half = exemplar_augment(many, torch.Generator().manual_seed(0), flip_prob=0.5, noise_std=0.0, cutout_size=0)
    fraction = (half[:, 0, 0, 0] == 7.0).float().mean().item()
    assert 0.45 < fraction < 0.55


def test_augment_noise_std() -> None:
    zeros = torch.zeros(64, 3, 16, 16)
    noisy = exemplar_augment(zeros, torch.Generator().manual_seed(0), flip_prob=0.0, noise_std=0.5, cutout_size=0)
    assert noisy.mean().abs().item() < 0.01
    assert noisy.std().item() == pytest.approx(0.5, rel=0.02)


def test_cutout_zeroes_square_of_size() -> None:
    size, height, width = 4, 12, 10
    mask = sample_cutout_mask(300, height, width, size, torch.Generator().manual_seed(0))
    assert mask.shape == (300, 1, height, width)
    full_squares = 0
    for sample in mask[:, 0]:
        rows = torch.nonzero(sample.any(dim=1)).flatten()
        cols = torch.nonzero(sample.any(dim=0)).flatten()
        assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1))  # contiguous
        assert torch.equal(cols, torch.arange(cols[0], cols[-1] + 1))
        assert sample.sum().item() == len(rows) * len(cols)  # a filled rectangle
        if 0 < rows[0] and rows[-1] < height - 1:
            assert len(rows) == size
        if 0 < cols[0] and cols[-1] < width - 1:
            assert len(cols) == size
        assert len(rows) <= size
        assert len(cols) <= size
        full_squares += int(len(rows) == size and len(cols) == size)
    assert full_squares > 50
    assert mask[:, 0, 0, 0].any()  # the centre is uniform, so corners get covered too
    assert mask[:, 0, -1, -1].any()


def test_cutout_applied_to_all_channels() -> None:
    ones = torch.ones(5, 3, 9, 9)
    out = exemplar_augment(ones, torch.Generator().manual_seed(2), flip_prob=0.0, noise_std=0.0, cutout_size=3)
    mask = sample_cutout_mask(5, 9, 9, 3, _advance_past_flip(torch.Generator().manual_seed(2), 5))
    assert torch.equal(out == 0, mask.expand_as(out))


def _advance_past_flip(generator: torch.Generator, batch_size: int) -> torch.Generator:
    torch.rand(batch_size, generator=generator)  # the flip draw that exemplar_augment makes first
    return generator


def test_cutout_size_zero_and_negative() -> None:
    assert not sample_cutout_mask(3, 5, 5, 0, torch.Generator().manual_seed(0)).any()
    with pytest.raises(ValueError, match="cutout size"):
        sample_cutout_mask(3, 5, 5, -1, torch.Generator().manual_seed(0))


def test_state_dict_round_trip() -> None:
    task = ExemplarMTTask(ema_decay=0.5, cutout_size=4)
    model = _build(task)
    for step in range(2):
        _sgd_step(model, task.loss(model, _images(seed=step), torch.Generator().manual_seed(step)))
        task.after_step(model)

    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "task": task.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    resumed_task = ExemplarMTTask(ema_decay=0.5, cutout_size=4)
    resumed_model = _build(resumed_task, seed=99)
    resumed_model.load_state_dict(checkpoint["model"])
    resumed_task.load_state_dict(checkpoint["task"])  # before the teacher exists

    assert resumed_task.num_updates == 2
    expected = task.loss(model, _images(seed=9), torch.Generator().manual_seed(9))
    resumed = resumed_task.loss(resumed_model, _images(seed=9), torch.Generator().manual_seed(9))
    assert resumed.item() == expected.item()
    for key, value in task.teacher.state_dict().items():
        assert torch.equal(resumed_task.teacher.state_dict()[key], value), key


def test_state_dict_into_existing_teacher() -> None:
    task = ExemplarMTTask(ema_decay=0.5, cutout_size=4)
    model = _build(task)
    _sgd_step(model, task.loss(model, _images(), torch.Generator().manual_seed(0)))
    task.after_step(model)
    state = task.state_dict()

    other = ExemplarMTTask(ema_decay=0.5, cutout_size=4)
    other_model = _build(other, seed=5)
    other.after_step(other_model)  # creates a different teacher first
    other.load_state_dict(state)
    for key, value in task.teacher.state_dict().items():
        assert torch.equal(other.teacher.state_dict()[key], value), key


def test_state_dict_before_first_use() -> None:
    state = ExemplarMTTask().state_dict()
    assert state == {"teacher": {}, "num_updates": 0}
    task = ExemplarMTTask()
    task.load_state_dict(state)
    assert task.teacher is None


def test_missing_head_error() -> None:
    task = ExemplarMTTask(name="exemplar")
    torch.manual_seed(0)
    backbone = WideResNet(depth=10, widen_factor=1, in_channels=1)
    model = MultiHead(backbone, {"rotation": torch.nn.Linear(64, 4)})
    with pytest.raises(KeyError, match="exemplar"):
        task.loss(model, _images(), torch.Generator().manual_seed(0))


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="ema_decay"):
        ExemplarMTTask(ema_decay=1.5)
    with pytest.raises(ValueError, match="flip_prob"):
        ExemplarMTTask(flip_prob=-0.1)
    with pytest.raises(ValueError, match="noise_std"):
        ExemplarMTTask(noise_std=-1.0)
