"""Datasets: scikit-learn digits (offline) and the paper's datasets read from disk.

The on-disk loaders (CIFAR-10, SVHN, CelebA, PACS) import torchvision's dataset classes;
they are imported here as well, which costs little once torchvision is loaded.
"""

from arml_core.data.celeba import CelebAData, load_celeba
from arml_core.data.cifar10 import CIFAR10Data, load_cifar10
from arml_core.data.digits import DigitsSplits, load_digit_arrays, load_digits_splits
from arml_core.data.errors import DatasetCorruptedError, DatasetNotFoundError
from arml_core.data.pacs import CLASSES as PACS_CLASSES
from arml_core.data.pacs import DOMAINS as PACS_DOMAINS
from arml_core.data.pacs import PACSData, load_pacs
from arml_core.data.splits import SemiSupervisedSplit, TransformSubset, balanced_subset, stratified_split
from arml_core.data.svhn import SVHNData, load_svhn

__all__ = [
    "CIFAR10Data", "CelebAData", "DatasetCorruptedError", "DatasetNotFoundError", "DigitsSplits",
    "PACSData", "PACS_CLASSES", "PACS_DOMAINS", "SVHNData", "SemiSupervisedSplit", "TransformSubset",
    "balanced_subset", "load_celeba", "load_cifar10", "load_digit_arrays", "load_digits_splits",
    "load_pacs", "load_svhn", "stratified_split",
]
