"""PACS loader on tiny ImageFolder trees (JPEG, PNG for sketch)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from arml_core.data.errors import DatasetNotFoundError
from arml_core.data.pacs import CLASSES, DOMAINS, load_pacs
from data_fixtures import write_pacs


@pytest.fixture(scope="module")
def pacs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    write_pacs(root, per_class=10)
    return root


@pytest.mark.parametrize("target", DOMAINS)
def test_pacs_splits_per_target(pacs_root, target):
    data = load_pacs(pacs_root, target, num_target_labels_per_class=3)
    images = data.images
    assert data.source_domains == [d for d in DOMAINS if d != target]
    for domain in data.source_domains:
        assert data.train[domain].size == 63
        assert data.val[domain].size == 7
        assert (images.domains[data.train[domain]] == DOMAINS.index(domain)).all()
        assert np.intersect1d(data.train[domain], data.val[domain]).size == 0
    assert np.bincount(images.labels[data.target_labelled], minlength=7).tolist() == [3] * 7
    assert data.test.size == 70 - 21
    assert np.intersect1d(data.test, data.target_labelled).size == 0
    target_all = np.flatnonzero(images.domains == DOMAINS.index(target))
    assert np.union1d(data.test, data.target_labelled).tolist() == target_all.tolist()


def test_pacs_items_rgb_and_labels(pacs_root):
    data = load_pacs(pacs_root, "sketch", num_target_labels_per_class=1)
    subset = data.subset(data.test)
    image, label = subset[0]
    assert image.mode == "RGB"
    assert 0 <= label < len(CLASSES)
    assert subset.paths[0].suffix == ".png"
    assert label == int(data.images.labels[data.test[0]])


def test_pacs_deterministic(pacs_root):
    first = load_pacs(pacs_root, "photo", num_target_labels_per_class=2, seed=7)
    again = load_pacs(pacs_root, "photo", num_target_labels_per_class=2, seed=7)
    other = load_pacs(pacs_root, "photo", num_target_labels_per_class=2, seed=8)
    assert first.target_labelled.tolist() == again.target_labelled.tolist()
    assert first.val["sketch"].tolist() == again.val["sketch"].tolist()
    assert first.target_labelled.tolist() != other.target_labelled.tolist()


def test_pacs_unknown_domain():
    with pytest.raises(ValueError, match="art_painting"):
        load_pacs("unused", "art")


def test_pacs_missing_domain_folder(tmp_path):
    write_pacs(tmp_path, per_class=2, domains=("photo", "art_painting", "sketch"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_pacs(tmp_path, "photo")
    assert info.value.missing == ["pacs/cartoon/"]
    assert "download_pacs.py" in str(info.value)


def test_pacs_missing_class_folder(tmp_path):
    write_pacs(tmp_path, per_class=2)
    shutil.rmtree(tmp_path / "pacs" / "cartoon" / "giraffe")
    with pytest.raises(DatasetNotFoundError, match="pacs/cartoon/giraffe"):
        load_pacs(tmp_path, "photo")


def test_pacs_too_few_target_images(tmp_path):
    write_pacs(tmp_path, per_class=2)
    with pytest.raises(ValueError, match="fewer than num_per_class=5"):
        load_pacs(tmp_path, "photo", num_target_labels_per_class=5)
