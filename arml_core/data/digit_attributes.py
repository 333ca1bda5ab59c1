"""Binary attributes of scikit-learn's digits: a small, offline stand-in for CelebA's 40 attributes.

Every attribute is a 0/1 label of each 8x8 digit image. Three kinds exist:

- class attributes, defined from the digit class alone (for example ``closed_loop`` is 1 for
  the digits 0, 4, 6, 8 and 9, the digits whose usual printed shape encloses a region);
- pixel attributes, defined from the image (for example ``top_heavy``: more ink in the top
  four rows than in the bottom four);
- random attributes, fair coins drawn once per image from a fixed seed. They carry no
  information about the image, so they are deliberately unrelated auxiliary tasks.

Because every attribute is defined, the relatedness of an auxiliary attribute to the main one
can be measured from the labels (mutual information), which makes the ranking of ARML's
weights (Table 3 of Shi et al., NeurIPS 2020) checkable against a known answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import mutual_info_score
from sklearn.model_selection import train_test_split

from arml_core.data.digits import load_digit_arrays

logger = logging.getLogger(__name__)

DEFAULT_MAIN_ATTRIBUTE = "closed_loop"
RANDOM_ATTRIBUTE_SEED = 20201206


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute: its kind ("class", "pixel" or "random"), definition and, for class ones, digits."""

    name: str
    kind: str
    definition: str
    digits: frozenset[int] | None = None


def _class_attribute(name: str, digits: set[int], definition: str) -> AttributeSpec:
    return AttributeSpec(name, "class", definition, frozenset(digits))


ATTRIBUTES: tuple[AttributeSpec, ...] = (
    _class_attribute("closed_loop", {0, 4, 6, 8, 9}, "the printed digit encloses a region"),
    _class_attribute("two_loops", {8}, "the printed digit encloses two regions"),
    _class_attribute("even", {0, 2, 4, 6, 8}, "the digit is even"),
    _class_attribute("greater_than_4", {5, 6, 7, 8, 9}, "the digit is greater than 4"),
    _class_attribute("prime", {2, 3, 5, 7}, "the digit is a prime number"),
    _class_attribute("multiple_of_3", {0, 3, 6, 9}, "the digit is a multiple of 3 (0 included)"),
    _class_attribute("square", {0, 1, 4, 9}, "the digit is a perfect square"),
    _class_attribute("power_of_two", {1, 2, 4, 8}, "the digit is a power of two"),
    _class_attribute("fibonacci", {0, 1, 2, 3, 5, 8}, "the digit is a Fibonacci number"),
    _class_attribute("has_curve", {0, 2, 3, 5, 6, 8, 9}, "the printed digit has a curved stroke"),
    _class_attribute("horizontal_stroke", {2, 4, 5, 7},
                     "a straight horizontal stroke: base of 2, bar of 4, top of 5 and 7"),
    _class_attribute("vertical_stroke", {1, 4, 9}, "a straight vertical stem: 1, 4 and 9"),
    _class_attribute("top_bottom_symmetric", {0, 1, 3, 8},
                     "the printed digit is symmetric about its horizontal axis"),
    _class_attribute("left_right_symmetric", {0, 8},
                     "the printed digit is symmetric about its vertical axis"),
    AttributeSpec("heavy_ink", "pixel", "total ink above the median total ink of all 1,797 images"),
    AttributeSpec("top_heavy", "pixel", "more ink in the top 4 rows than in the bottom 4 rows"),
    AttributeSpec("left_heavy", "pixel", "more ink in the left 4 columns than in the right 4 columns"),
    AttributeSpec("coin_a", "random", f"fair coin per image (seed {RANDOM_ATTRIBUTE_SEED}), unrelated"),
    AttributeSpec("coin_b", "random", f"fair coin per image (seed {RANDOM_ATTRIBUTE_SEED}), unrelated"),
)
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(spec.name for spec in ATTRIBUTES)


def attribute_matrix(images: np.ndarray, labels: np.ndarray, image_ids: np.ndarray) -> np.ndarray:
    """Return the 0/1 attributes of digit images, float32 of shape (N, len(ATTRIBUTES)).

    Args:
        images: float array (N, 1, 8, 8) or (N, 8, 8) of pixel values in [0, 1].
        labels: int array (N,) of digit classes 0..9.
        image_ids: int array (N,) of each image's index among all 1,797 digits. The random
            attributes are a function of this index, so an image keeps its coins in every split.
    """
    images = np.asarray(images, dtype=np.float64).reshape(len(labels), 8, 8)
    labels = np.asarray(labels)
    all_images, _ = load_digit_arrays()
    coins = np.random.default_rng(RANDOM_ATTRIBUTE_SEED).integers(0, 2, size=(len(all_images), 2))
    ink = images.sum(axis=(1, 2))
    ink_threshold = float(np.median(all_images.astype(np.float64).sum(axis=(1, 2, 3))))

    columns = []
    for spec in ATTRIBUTES:
        if spec.kind == "class":
            column = np.isin(labels, sorted(spec.digits))
        elif spec.name == "heavy_ink":
            column = ink > ink_threshold
        elif spec.name == "top_heavy":
            column = images[:, :4, :].sum(axis=(1, 2)) > images[:, 4:, :].sum(axis=(1, 2))
        elif spec.name == "left_heavy":
            column = images[:, :, :4].sum(axis=(1, 2)) > images[:, :, 4:].sum(axis=(1, 2))
        else:
            column = coins[np.asarray(image_ids), 0 if spec.name == "coin_a" else 1] == 1
        columns.append(column)
    return np.stack(columns, axis=1).astype(np.float32)


def mutual_information(main: np.ndarray, aux: np.ndarray) -> np.ndarray:
    """Return the mutual information (nats) between a 0/1 main column and each auxiliary column.

    ``main`` has shape (N,); ``aux`` has shape (N, K). Returns shape (K,), computed from the
    empirical joint distribution (``sklearn.metrics.mutual_info_score``).
    """
    main = np.asarray(main).astype(np.int64)
    aux = np.asarray(aux).astype(np.int64)
    return np.array([mutual_info_score(main, aux[:, k]) for k in range(aux.shape[1])])


@dataclass(frozen=True)
class DigitAttributeData:
    """Digit attribute splits with one main attribute whose training labels are mostly hidden.

    Images are float32 (N, 1, 8, 8) in [0, 1]. Attributes are float32 (N, A) with 0/1 values in
    the order of ``attr_names``. ``train_main_mask`` is bool (N_train,) and True where the main
    label may be used. Auxiliary labels are all usable, and validation and test keep every label.
    """

    train_images: torch.Tensor
    train_attributes: torch.Tensor
    train_main_mask: torch.Tensor
    val_images: torch.Tensor
    val_attributes: torch.Tensor
    test_images: torch.Tensor
    test_attributes: torch.Tensor
    attr_names: list[str]
    main_index: int

    @property
    def aux_indices(self) -> list[int]:
        """Columns of the auxiliary attributes, in ``attr_names`` order."""
        return [i for i in range(len(self.attr_names)) if i != self.main_index]


def main_attribute_index(main_attribute: str) -> int:
    """Return the column of ``main_attribute``; raise ValueError listing the valid names otherwise."""
    if main_attribute not in ATTRIBUTE_NAMES:
        raise ValueError(
            f"unknown digit attribute {main_attribute!r}; valid names are: {', '.join(ATTRIBUTE_NAMES)}"
        )
    return ATTRIBUTE_NAMES.index(main_attribute)


def load_digit_attributes(
    main_attribute: str = DEFAULT_MAIN_ATTRIBUTE,
    main_label_fraction: float = 0.03,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.3,
) -> DigitAttributeData:
    """Split the digits like ``load_digits_splits`` and keep a fraction of the main labels.

    The train/validation/test split is stratified by digit class and is the same split that
    ``load_digits_splits`` makes with the same fractions and seed.

    The kept main labels are ``round(main_label_fraction * N_train)`` (at least 1) training
    images drawn without replacement from ``numpy.random.default_rng(seed)``.

    Raises:
        ValueError: unknown ``main_attribute``, a fraction outside (0, 1], or kept labels that
            contain only one value of the main attribute (raise the fraction or change the seed).
    """
    main_index = main_attribute_index(main_attribute)
    if not 0 < main_label_fraction <= 1:
        raise ValueError(f"main_label_fraction must be in (0, 1], got {main_label_fraction}")
    images, labels = load_digit_arrays()
    all_attributes = attribute_matrix(images, labels, np.arange(len(labels)))
    train_ids, val_ids, test_ids = digit_split_ids(labels, val_fraction, test_fraction, seed)

    num_train = len(train_ids)
    num_kept = max(1, round(main_label_fraction * num_train))
    kept = np.random.default_rng(seed).choice(num_train, size=num_kept, replace=False)
    mask = torch.zeros(num_train, dtype=torch.bool)
    mask[torch.from_numpy(kept)] = True
    kept_values = np.unique(all_attributes[train_ids[kept], main_index])
    if len(kept_values) < 2:
        raise ValueError(
            f"the {num_kept} kept labels of {main_attribute!r} all have the value {kept_values.tolist()}; "
            "raise main_label_fraction or change the seed"
        )
    logger.info("digit attributes: main %s, %d of %d training main labels kept", main_attribute, num_kept, num_train)

    def tensors(part_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(images[part_ids]), torch.from_numpy(all_attributes[part_ids])

    train, val, test = tensors(train_ids), tensors(val_ids), tensors(test_ids)
    return DigitAttributeData(*train, mask, *val, *test, attr_names=list(ATTRIBUTE_NAMES), main_index=main_index)


def digit_split_ids(
    labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the image indices of the train, validation and test splits of ``load_digits_splits``."""
    if not 0 < val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, got "
            f"{val_fraction} and {test_fraction}"
        )
    rest_ids, test_ids = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels, random_state=seed
    )
    train_ids, val_ids = train_test_split(
        rest_ids, test_size=val_fraction / (1 - test_fraction), stratify=labels[rest_ids], random_state=seed
    )
    return train_ids, val_ids, test_ids
