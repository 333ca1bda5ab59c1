"""SVHN loader on tiny .mat files in the real format (digit 0 stored as 10)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat

import arml_core.data.svhn as svhn
from arml_core.data.errors import DatasetCorruptedError, DatasetNotFoundError
from data_fixtures import write_svhn


@pytest.fixture(scope="module")
def svhn_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("svhn")
    train_digits, test_digits = write_svhn(root, num_train=100, num_test=30)
    return root, train_digits, test_digits


def test_svhn_fixture_stores_zero_as_ten(svhn_root):
    root, train_digits, _ = svhn_root
    stored = loadmat(root / "svhn" / "train_32x32.mat")["y"].ravel()
    assert 10 in stored
    assert 0 not in stored
    assert (stored[train_digits == 0] == 10).all()


def test_svhn_labels_mapped_to_0_9(svhn_root):
    root, train_digits, test_digits = svhn_root
    data = svhn.load_svhn(root, num_val=10, num_labels=20, verify_checksums=False)
    assert data.targets.tolist() == train_digits.tolist()
    assert data.targets.min() == 0
    assert data.targets.max() == 9
    assert np.asarray(data.test_set.labels).tolist() == test_digits.tolist()


def test_svhn_split_sizes_and_balance(svhn_root):
    root, _, _ = svhn_root
    data = svhn.load_svhn(root, num_val=10, num_labels=20, verify_checksums=False)
    assert data.split.train.size == 90
    assert data.split.val.size == 10
    assert np.bincount(data.targets[data.split.labelled], minlength=10).tolist() == [2] * 10
    assert np.isin(data.split.labelled, data.split.train).all()


def test_svhn_image_layout(svhn_root):
    root, _, _ = svhn_root
    raw = loadmat(root / "svhn" / "train_32x32.mat")["X"]
    data = svhn.load_svhn(root, num_val=10, num_labels=20, verify_checksums=False)
    image, _ = data.train_set[7]
    assert np.asarray(image).tolist() == raw[:, :, :, 7].tolist()


def test_svhn_split_deterministic(svhn_root):
    root, _, _ = svhn_root
    first = svhn.load_svhn(root, num_val=10, num_labels=20, seed=1, verify_checksums=False).split
    again = svhn.load_svhn(root, num_val=10, num_labels=20, seed=1, verify_checksums=False).split
    assert first.val.tolist() == again.val.tolist()
    assert first.labelled.tolist() == again.labelled.tolist()


def test_svhn_paper_defaults_sizes():
    labels = np.resize(np.arange(10), 73_257)
    from arml_core.data.splits import semi_supervised_split

    split = semi_supervised_split(labels, 7325, 1000, 10, seed=0)
    assert split.train.size == 65_932
    assert split.labelled.size == 1000


def test_svhn_missing_file_names_script(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        svhn.load_svhn(tmp_path)
    assert "svhn/train_32x32.mat" in info.value.missing
    assert "download_svhn.py" in str(info.value)


def test_svhn_checksum_mismatch_rejected(svhn_root):
    root, _, _ = svhn_root
    with pytest.raises(DatasetCorruptedError, match="e26dedcc434d2e4c54c9b2d4a06d8373"):
        svhn.load_svhn(root)


def test_svhn_unreadable_mat_rejected(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / "svhn" / "test_32x32.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(DatasetCorruptedError, match="test_32x32.mat"):
        svhn.load_svhn(tmp_path, num_val=10, num_labels=20, verify_checksums=False)


def test_svhn_missing_scipy_reported(monkeypatch, tmp_path):
    real_find_spec = svhn.importlib.util.find_spec
    monkeypatch.setattr(svhn.importlib.util, "find_spec", lambda name: None if name == "scipy" else real_find_spec(name))
    with pytest.raises(ImportError, match="pip install scipy"):
        svhn.load_svhn(tmp_path)
