"""Rotated digits: rotation angles, domain partition, split sizes, disjointness, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arml_core.data.digits import load_digit_arrays
from arml_core.data.rotated_digits import (
    ALL_LABELLED,
    ANGLES,
    build_rotated_digits,
    domain_angle,
    domain_name,
    partition_by_domain,
    rotate_images,
    upsample,
)


def central_disk(size: int, radius_fraction: float = 0.35) -> torch.Tensor:
    centre = (size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return (xs - centre) ** 2 + (ys - centre) ** 2 <= (radius_fraction * size) ** 2


def test_rotate_90_matches_rot90():
    images = torch.rand(3, 1, 16, 16)
    rotated = rotate_images(images, 90)
    assert torch.allclose(rotated, torch.rot90(images, 1, dims=(-2, -1)), atol=1e-5)


def test_rotate_back_recovers_digit():
    images = upsample(torch.from_numpy(load_digit_arrays()[0][:20]), 16)
    disk = central_disk(16)
    for angle in ANGLES[1:]:
        back = rotate_images(rotate_images(images, angle), -angle)
        wrong_way = rotate_images(rotate_images(images, angle), angle)
        error = (back - images).abs()[..., disk].mean()
        assert error < 0.06, f"angle {angle}: mean error {error:.3f} after rotating back"
        assert error < 0.5 * (wrong_way - images).abs()[..., disk].mean()


def test_rotation_counter_clockwise():
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, 7:9, 12:15] = 1.0  # a bar right of the centre
    rotated = rotate_images(image, 45)
    ys, xs = torch.nonzero(rotated[0, 0] > 0.2, as_tuple=True)
    # Counter-clockwise by 45 degrees moves it up and to the right (row index decreases).
    assert ys.float().mean() < 7.5
    assert xs.float().mean() > 7.5


def test_upsample_shape_and_range():
    images = torch.from_numpy(load_digit_arrays()[0][:4])
    bigger = upsample(images, 16)
    assert bigger.shape == (4, 1, 16, 16)
    assert bigger.min() >= 0
    assert bigger.max() <= 1


def test_domain_names_round_trip():
    assert [domain_angle(domain_name(a)) for a in ANGLES] == list(ANGLES)
    with pytest.raises(ValueError, match="rot<angle>"):
        domain_angle("75")


def test_partition_disjoint_and_stratified():
    labels = load_digit_arrays()[1]
    groups = partition_by_domain(labels, 6, seed=3)
    joined = np.concatenate(groups)
    assert len(np.unique(joined)) == len(joined) == len(labels)
    for group in groups:
        counts = np.bincount(labels[group], minlength=10)
        full = np.bincount(labels, minlength=10)
        assert np.all(np.abs(counts - full / 6) <= 1)


@pytest.fixture(scope="module")
def splits():
    return build_rotated_digits("rot75", labels_per_class=3, seed=1)


def test_split_sizes(splits):
    assert splits.source_domains == ["rot0", "rot15", "rot30", "rot45", "rot60"]
    total = 0
    for name in splits.source_domains:
        num_train, num_val = len(splits.train[name][1]), len(splits.val[name][1])
        assert num_val == round(0.1 * (num_train + num_val))
        total += num_train + num_val
    labelled_images, labelled_labels = splits.labelled
    assert labelled_images.shape == (30, 1, 16, 16)
    assert torch.equal(torch.bincount(labelled_labels, minlength=10), torch.full((10,), 3))
    total += len(labelled_labels) + len(splits.test[1])
    assert total == 1797


def test_target_test_excludes_labelled(splits):
    test_images = splits.test[0].flatten(1)
    for image in splits.labelled[0].flatten(1):
        assert not (test_images == image).all(dim=1).any()


def test_target_domain_is_rotated(splits):
    # The target images rotated back by 75 degrees look like upright digits: their centre
    # of mass in x is not shifted the way a 75-degree rotation shifts it.
    labelled = splits.labelled[0]
    back = rotate_images(labelled, -75)
    source = splits.train["rot0"][0]
    upright_profile = source.mean(dim=(0, 1, 3))
    assert torch.corrcoef(torch.stack([back.mean(dim=(0, 1, 3)), upright_profile]))[0, 1] > \
        torch.corrcoef(torch.stack([labelled.mean(dim=(0, 1, 3)), upright_profile]))[0, 1]


def test_deterministic_from_seed():
    first = build_rotated_digits("rot0", labels_per_class=2, seed=5)
    again = build_rotated_digits("rot0", labels_per_class=2, seed=5)
    other = build_rotated_digits("rot0", labels_per_class=2, seed=6)
    assert torch.equal(first.labelled[0], again.labelled[0])
    assert torch.equal(first.train["rot45"][0], again.train["rot45"][0])
    assert not torch.equal(first.labelled[0], other.labelled[0])


def test_all_labelled_leaves_empty_test():
    splits = build_rotated_digits("rot30", labels_per_class=ALL_LABELLED)
    assert len(splits.test[1]) == 0
    assert len(splits.labelled[1]) in range(295, 305)


def test_invalid_target_and_label_count():
    with pytest.raises(ValueError, match="unknown target domain 'rot90'"):
        build_rotated_digits("rot90", labels_per_class=1)
    with pytest.raises(ValueError, match="fewer than num_per_class"):
        build_rotated_digits("rot0", labels_per_class=40)
