"""CIFAR-10 loader on tiny pickle batches in the real format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from arml_core.data.cifar10 import load_cifar10
from arml_core.data.errors import DatasetCorruptedError, DatasetNotFoundError
from data_fixtures import write_cifar10


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    train_labels, test_labels = write_cifar10(root, per_batch=20, num_test=20)
    return root, train_labels, test_labels


def test_cifar10_split_sizes(cifar_root):
    root, train_labels, _ = cifar_root
    data = load_cifar10(root, num_val=10, num_labels=20, verify_checksums=False)
    split = data.split
    assert split.train.size == 90
    assert split.val.size == 10
    assert split.labelled.size == 20
    assert split.unlabelled.size == 70
    assert np.intersect1d(split.train, split.val).size == 0
    assert np.isin(split.labelled, split.train).all()
    assert np.union1d(split.labelled, split.unlabelled).tolist() == split.train.tolist()


def test_cifar10_stratified_and_balanced(cifar_root):
    root, _, _ = cifar_root
    data = load_cifar10(root, num_val=10, num_labels=20, verify_checksums=False)
    assert np.bincount(data.targets[data.split.val], minlength=10).tolist() == [1] * 10
    assert np.bincount(data.targets[data.split.labelled], minlength=10).tolist() == [2] * 10


def test_cifar10_labels_and_pixels_match_files(cifar_root):
    root, train_labels, test_labels = cifar_root
    data = load_cifar10(root, num_val=10, num_labels=20, verify_checksums=False)
    assert data.targets.tolist() == train_labels.tolist()
    assert data.test_set.targets == test_labels.tolist()
    assert data.classes[0] == "airplane"
    with open(root / "cifar-10-batches-py" / "data_batch_2", "rb") as handle:
        raw = pickle.load(handle)["data"][3]
    image, label = data.train_set[20 + 3]
    pixels = np.asarray(image)
    assert pixels.shape == (32, 32, 3)
    assert pixels[0, 0].tolist() == [raw[0], raw[1024], raw[2048]]
    assert label == train_labels[23]


def test_cifar10_split_deterministic(cifar_root):
    root, _, _ = cifar_root
    first = load_cifar10(root, num_val=10, num_labels=20, seed=3, verify_checksums=False).split
    again = load_cifar10(root, num_val=10, num_labels=20, seed=3, verify_checksums=False).split
    other = load_cifar10(root, num_val=10, num_labels=20, seed=4, verify_checksums=False).split
    assert first.val.tolist() == again.val.tolist()
    assert first.labelled.tolist() == again.labelled.tolist()
    assert first.labelled.tolist() != other.labelled.tolist()


def test_cifar10_missing_folder_names_script(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path)
    assert f"python data_scripts/download_cifar10.py --root {tmp_path}" in str(info.value)
    assert "cifar-10-batches-py/data_batch_1" in str(info.value)


def test_cifar10_missing_batch_named(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar10(tmp_path, verify_checksums=False)
    assert info.value.missing == ["cifar-10-batches-py/data_batch_4"]


def test_cifar10_checksum_mismatch_rejected(cifar_root):
    root, _, _ = cifar_root
    with pytest.raises(DatasetCorruptedError) as info:
        load_cifar10(root, num_val=10, num_labels=20)
    assert "c99cafc152244af753f735de768cd75f" in str(info.value)  # torchvision's MD5 of data_batch_1
    assert "download_cifar10.py" in str(info.value)


def test_cifar10_truncated_batch_rejected(tmp_path):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(DatasetCorruptedError):
        load_cifar10(tmp_path, num_val=10, num_labels=20, verify_checksums=False)


def test_cifar10_unbalanced_label_count_rejected(cifar_root):
    root, _, _ = cifar_root
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        load_cifar10(root, num_val=10, num_labels=25, verify_checksums=False)
