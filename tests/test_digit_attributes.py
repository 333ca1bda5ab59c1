"""Digit attributes: definitions against the digit classes, splits, masks and mutual information."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from arml_core.data.digit_attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    attribute_matrix,
    load_digit_attributes,
    mutual_information,
)
from arml_core.data.digits import load_digit_arrays, load_digits_splits

# Hand-written truth table: the digits for which each class attribute is 1.
EXPECTED_DIGITS = {
    "closed_loop": {0, 4, 6, 8, 9},
    "two_loops": {8},
    "even": {0, 2, 4, 6, 8},
    "greater_than_4": {5, 6, 7, 8, 9},
    "prime": {2, 3, 5, 7},
    "multiple_of_3": {0, 3, 6, 9},
    "square": {0, 1, 4, 9},
    "power_of_two": {1, 2, 4, 8},
    "fibonacci": {0, 1, 2, 3, 5, 8},
    "has_curve": {0, 2, 3, 5, 6, 8, 9},
    "horizontal_stroke": {2, 4, 5, 7},
    "vertical_stroke": {1, 4, 9},
    "top_bottom_symmetric": {0, 1, 3, 8},
    "left_right_symmetric": {0, 8},
}


@pytest.fixture(scope="module")
def all_attributes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels = load_digit_arrays()
    return images, labels, attribute_matrix(images, labels, np.arange(len(labels)))


def test_at_least_twelve_class_attributes():
    class_names = [spec.name for spec in ATTRIBUTES if spec.kind == "class"]
    assert len(class_names) >= 12
    assert set(class_names) == set(EXPECTED_DIGITS)


@pytest.mark.parametrize("name", sorted(EXPECTED_DIGITS))
def test_class_attribute_matches_digits(all_attributes, name):
    _, labels, attributes = all_attributes
    column = attributes[:, ATTRIBUTE_NAMES.index(name)]
    for digit in range(10):
        values = np.unique(column[labels == digit])
        expected = 1.0 if digit in EXPECTED_DIGITS[name] else 0.0
        assert values.tolist() == [expected], f"{name} of digit {digit}"


def test_pixel_attributes_by_hand():
    images = np.zeros((3, 1, 8, 8), dtype=np.float32)
    images[0, 0, :4, :4] = 1.0  # ink only top-left
    images[1, 0, 4:, 4:] = 1.0  # ink only bottom-right
    images[2] = 1.0  # full ink
    attributes = attribute_matrix(images, np.array([1, 1, 1]), np.array([0, 1, 2]))
    top = attributes[:, ATTRIBUTE_NAMES.index("top_heavy")]
    left = attributes[:, ATTRIBUTE_NAMES.index("left_heavy")]
    heavy = attributes[:, ATTRIBUTE_NAMES.index("heavy_ink")]
    assert top.tolist() == [1.0, 0.0, 0.0]
    assert left.tolist() == [1.0, 0.0, 0.0]
    assert heavy.tolist() == [0.0, 0.0, 1.0]


def test_random_attributes_fair_and_unrelated(all_attributes):
    _, labels, attributes = all_attributes
    for name in ("coin_a", "coin_b"):
        column = attributes[:, ATTRIBUTE_NAMES.index(name)]
        assert abs(column.mean() - 0.5) < 0.05
        assert mutual_information(labels, column[:, None])[0] < 0.02


def test_mutual_information_closed_form():
    # Each digit once, so probabilities are counts over 10; closed forms in nats.
    digits = np.arange(10)
    images = np.zeros((10, 1, 8, 8), dtype=np.float32)
    attributes = attribute_matrix(images, digits, digits)
    column = {name: attributes[:, ATTRIBUTE_NAMES.index(name)] for name in EXPECTED_DIGITS}
    mi = mutual_information(column["greater_than_4"], np.stack([column["prime"], column["two_loops"]], 1))
    # prime: P(prime)=0.4 and P(prime | > 4)=0.4, so independent.
    assert mi[0] == pytest.approx(0.0, abs=1e-12)
    # two_loops = {8}: I = H(two_loops) - H(two_loops | main) = h(0.1) - 0.5 h(0.2).
    def entropy(p: float) -> float:
        return -p * np.log(p) - (1 - p) * np.log(1 - p)
    assert mi[1] == pytest.approx(entropy(0.1) - 0.5 * entropy(0.2), rel=1e-9)
    complement = mutual_information(column["even"], (1 - column["even"])[:, None])[0]
    assert complement == pytest.approx(np.log(2.0), rel=1e-9)


def test_splits_match_digits_splits():
    data = load_digit_attributes(seed=3)
    splits = load_digits_splits(labels_per_class=1, seed=3)
    assert torch.equal(data.train_images, splits.train_images)
    assert torch.equal(data.val_images, splits.val_images)
    assert torch.equal(data.test_images, splits.test_images)
    loop = data.train_attributes[:, ATTRIBUTE_NAMES.index("closed_loop")]
    assert torch.equal(loop, torch.isin(splits.train_labels, torch.tensor([0, 4, 6, 8, 9])).float())


def test_main_mask_count_and_determinism():
    data = load_digit_attributes(main_attribute="even", main_label_fraction=0.05, seed=1)
    expected = round(0.05 * len(data.train_images))
    assert int(data.train_main_mask.sum()) == expected
    again = load_digit_attributes(main_attribute="even", main_label_fraction=0.05, seed=1)
    assert torch.equal(data.train_main_mask, again.train_main_mask)
    other = load_digit_attributes(main_attribute="even", main_label_fraction=0.05, seed=2)
    assert not torch.equal(data.train_main_mask, other.train_main_mask)
    assert data.main_index == ATTRIBUTE_NAMES.index("even")
    assert data.main_index not in data.aux_indices
    assert len(data.aux_indices) == len(ATTRIBUTE_NAMES) - 1


def test_invalid_main_attribute_lists_names():
    with pytest.raises(ValueError, match="closed_loop"):
        load_digit_attributes(main_attribute="closed_loops")


def test_invalid_fraction_rejected():
    with pytest.raises(ValueError, match="main_label_fraction"):
        load_digit_attributes(main_label_fraction=0.0)


def test_one_kept_label_rejected():
    with pytest.raises(ValueError, match="raise main_label_fraction"):
        load_digit_attributes(main_label_fraction=1e-4)
