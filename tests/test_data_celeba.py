"""CelebA loader on tiny annotation files and JPEGs in the real format."""

from __future__ import annotations

import pytest
import torch

from arml_core.data.celeba import load_celeba, main_attribute_index
from arml_core.data.errors import DatasetCorruptedError, DatasetNotFoundError
from data_fixtures import CELEBA_ATTRIBUTES, write_celeba


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    attrs = write_celeba(root, partition=(200, 20, 20))
    return root, attrs


def test_celeba_partitions_and_names(celeba_root):
    root, _ = celeba_root
    data = load_celeba(root, verify_checksums=False)
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (200, 20, 20)
    assert data.attr_names == CELEBA_ATTRIBUTES
    assert data.main_index == 0
    assert len(data.aux_indices) == 39


def test_celeba_targets_float_zero_one(celeba_root):
    root, attrs = celeba_root
    data = load_celeba(root, verify_checksums=False)
    image, target = data.val_set[3]
    assert target.dtype == torch.float32
    assert target.shape == (40,)
    assert target.tolist() == ((attrs[203] + 1) / 2).tolist()
    assert image.size == (6, 7)


def test_celeba_main_mask_fraction(celeba_root):
    root, _ = celeba_root
    data = load_celeba(root, main_attribute="Smiling", main_label_fraction=0.05, seed=2, verify_checksums=False)
    assert data.main_index == CELEBA_ATTRIBUTES.index("Smiling")
    assert data.train_label_mask.shape == (200, 40)
    assert int(data.train_main_mask.sum()) == 10
    aux = data.train_label_mask[:, data.aux_indices]
    assert bool(aux.all())


def test_celeba_one_percent_at_least_one(celeba_root):
    root, _ = celeba_root
    data = load_celeba(root, verify_checksums=False)
    assert int(data.train_main_mask.sum()) == 2  # round(0.01 * 200)


def test_celeba_mask_deterministic(celeba_root):
    root, _ = celeba_root
    first = load_celeba(root, main_label_fraction=0.1, seed=5, verify_checksums=False).train_main_mask
    again = load_celeba(root, main_label_fraction=0.1, seed=5, verify_checksums=False).train_main_mask
    other = load_celeba(root, main_label_fraction=0.1, seed=6, verify_checksums=False).train_main_mask
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_celeba_misspelled_attribute_lists_names():
    with pytest.raises(ValueError) as info:
        main_attribute_index(CELEBA_ATTRIBUTES, "5_O_Clock_Shadow")
    assert "Did you mean 5_o_Clock_Shadow" in str(info.value)
    assert "Wearing_Necktie" in str(info.value)


def test_celeba_header_without_trailing_space(tmp_path):
    write_celeba(tmp_path, partition=(10, 2, 2), header_trailing_space=False)
    assert load_celeba(tmp_path, verify_checksums=False).attr_names == CELEBA_ATTRIBUTES


def test_celeba_missing_images_folder(tmp_path):
    write_celeba(tmp_path, partition=(4, 1, 1))
    for image in (tmp_path / "celeba" / "img_align_celeba").iterdir():
        image.unlink()
    (tmp_path / "celeba" / "img_align_celeba").rmdir()
    with pytest.raises(DatasetNotFoundError) as info:
        load_celeba(tmp_path, verify_checksums=False)
    assert info.value.missing == ["celeba/img_align_celeba"]
    assert "download_celeba.py" in str(info.value)


def test_celeba_html_page_rejected(tmp_path):
    write_celeba(tmp_path, partition=(4, 1, 1))
    page = b"\n<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>"
    (tmp_path / "celeba" / "list_attr_celeba.txt").write_bytes(page)
    with pytest.raises(DatasetCorruptedError, match="HTML page"):
        load_celeba(tmp_path)


def test_celeba_checksum_mismatch_rejected(celeba_root):
    root, _ = celeba_root
    with pytest.raises(DatasetCorruptedError, match="MD5"):
        load_celeba(root)


def test_celeba_bad_attribute_value_rejected(tmp_path):
    write_celeba(tmp_path, partition=(4, 1, 1))
    path = tmp_path / "celeba" / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + "  3"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetCorruptedError, match="-1 or 1"):
        load_celeba(tmp_path, verify_checksums=False)
