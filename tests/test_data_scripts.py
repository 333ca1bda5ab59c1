"""Download scripts: verification, HTML detection and manual steps, all on local files (no network)."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from data_fixtures import import_script, write_cifar10, write_celeba, write_pacs, write_svhn

verify = import_script("_verify")
cifar_script = import_script("download_cifar10")
svhn_script = import_script("download_svhn")
celeba_script = import_script("download_celeba")
pacs_script = import_script("download_pacs")

QUOTA_PAGE = b"  <!DOCTYPE html>\n<html><title>Google Drive - Quota exceeded</title></html>"


def fail_download(root):
    raise RuntimeError("simulated network failure")


@pytest.mark.parametrize("head", [b"<!DOCTYPE html>", b"<html lang='en'>", b"\xef\xbb\xbf\n <!doctype HTML>", b"\r\n<HTML>"])
def test_html_detected(tmp_path, head):
    path = tmp_path / "archive.zip"
    path.write_bytes(head + b"<body>quota exceeded</body>")
    assert verify.check_file(tmp_path, verify.ExpectedFile("archive.zip")).endswith("saved under its name)")


@pytest.mark.parametrize("head", [b"PK\x03\x04<html>", b"\x1f\x8b\x08", b"000001.jpg -1 1", b"text mentioning <html> later"])
def test_non_html_accepted(tmp_path, head):
    (tmp_path / "f").write_bytes(head)
    assert verify.check_file(tmp_path, verify.ExpectedFile("f")) is None


def test_check_file_digests_and_size(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    md5_abc = "900150983cd24fb0d6963f7d28e17f72"
    sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    good = verify.ExpectedFile("abc", md5=md5_abc, sha256=sha_abc, size=3)
    assert verify.check_file(tmp_path, good) is None
    assert "size is 3 bytes, expected 4" in verify.check_file(tmp_path, verify.ExpectedFile("abc", size=4))
    assert "MD5 is " + md5_abc in verify.check_file(tmp_path, verify.ExpectedFile("abc", md5="0" * 32))
    assert "SHA-256 is " + sha_abc in verify.check_file(tmp_path, verify.ExpectedFile("abc", sha256="0" * 64))
    assert verify.check_file(tmp_path, verify.ExpectedFile("absent")).endswith("missing")


@pytest.mark.parametrize("script", [cifar_script, svhn_script, celeba_script, pacs_script])
def test_script_help(script, capsys):
    with pytest.raises(SystemExit) as info:
        script.main(["--help"])
    assert info.value.code == 0
    assert "--root" in capsys.readouterr().out


def test_cifar_failed_download_prints_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cifar_script, "download", fail_download)
    assert cifar_script.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "simulated network failure" in err
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in err
    assert str(tmp_path / "cifar-10-python.tar.gz") in err
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_5") in err
    assert "170498071 bytes, MD5 c58f30108f718f92721af3b95e74349a" in err


def test_cifar_html_archive_set_aside(tmp_path, monkeypatch, capsys):
    def save_quota_page(root):
        (root / "cifar-10-python.tar.gz").write_bytes(QUOTA_PAGE)
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(cifar_script, "download", save_quota_page)
    assert cifar_script.main(["--root", str(tmp_path)]) == 1
    assert "was an HTML page" in capsys.readouterr().err
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()
    assert (tmp_path / "cifar-10-python.tar.gz.html").read_bytes() == QUOTA_PAGE


def test_cifar_verify_only(tmp_path, monkeypatch, capsys):
    write_cifar10(tmp_path)
    monkeypatch.setattr(cifar_script, "download", pytest.fail)
    assert cifar_script.main(["--root", str(tmp_path), "--verify-only"]) == 1
    assert "MD5 is" in capsys.readouterr().err

    folder = tmp_path / "cifar-10-batches-py"
    local = [verify.ExpectedFile(f"cifar-10-batches-py/{p.name}", md5=hashlib.md5(p.read_bytes()).hexdigest())
             for p in folder.iterdir()]
    monkeypatch.setattr(cifar_script, "final_files", lambda: local)
    assert cifar_script.main(["--root", str(tmp_path), "--verify-only"]) == 0


def test_svhn_missing_scipy_before_download(tmp_path, monkeypatch, capsys):
    def no_scipy():
        raise ImportError("SciPy is not installed")

    monkeypatch.setattr(svhn_script, "require_scipy", no_scipy)
    monkeypatch.setattr(svhn_script, "download", pytest.fail)
    assert svhn_script.main(["--root", str(tmp_path)]) == 1
    assert "SciPy is not installed" in capsys.readouterr().err


def test_svhn_failed_download_prints_steps(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(svhn_script, "download", fail_download)
    assert svhn_script.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "http://ufldl.stanford.edu/housenumbers/train_32x32.mat" in err
    assert "svhn/train_32x32.mat (182040794 bytes, MD5 e26dedcc434d2e4c54c9b2d4a06d8373)" in err
    assert str(tmp_path / "svhn") in err


def test_svhn_verify_only_reports_size(tmp_path, capsys):
    write_svhn(tmp_path)
    assert svhn_script.main(["--root", str(tmp_path), "--verify-only"]) == 1
    assert "expected 182040794" in capsys.readouterr().err


def test_celeba_quota_page_detected(tmp_path, monkeypatch, capsys):
    def save_quota_page(root):
        folder = root / "celeba"
        folder.mkdir(parents=True)
        (folder / "img_align_celeba.zip").write_bytes(QUOTA_PAGE)
        raise RuntimeError("File not found or corrupted.")

    monkeypatch.setattr(celeba_script, "download", save_quota_page)
    assert celeba_script.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "celeba/img_align_celeba.zip was an HTML page" in err
    assert (tmp_path / "celeba" / "img_align_celeba.zip.html").exists()
    assert "list_eval_partition.txt (2836386 bytes, MD5 d32c9cbf5e040fd4025c592c306e6668)" in err
    assert "mmlab.ie.cuhk.edu.hk" in err


def test_celeba_without_gdown(tmp_path, monkeypatch, capsys):
    real_find_spec = celeba_script.importlib.util.find_spec
    monkeypatch.setattr(celeba_script.importlib.util, "find_spec",
                        lambda name: None if name == "gdown" else real_find_spec(name))
    assert celeba_script.main(["--root", str(tmp_path)]) == 1
    assert "pip install gdown" in capsys.readouterr().err


def test_celeba_verify_only_finds_html_and_count(tmp_path, capsys):
    write_celeba(tmp_path, partition=(3, 1, 1))
    (tmp_path / "celeba" / "identity_CelebA.txt").write_bytes(QUOTA_PAGE)
    assert celeba_script.main(["--root", str(tmp_path), "--verify-only"]) == 1
    err = capsys.readouterr().err
    assert "identity_CelebA.txt: is an HTML page" in err
    assert "contains 5 .jpg images, expected 202599" in err


def make_pacs_zip(tmp_path, inner: str):
    source = tmp_path / "source"
    write_pacs(source, per_class=2)
    archive = tmp_path / "root" / "PACS.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((source / "pacs").rglob("*")):
            handle.write(path, f"{inner}/{path.relative_to(source / 'pacs')}")
    return archive


@pytest.mark.parametrize("inner", ["kfold", "pacs/images"])
def test_pacs_archive_installed(tmp_path, monkeypatch, inner):
    archive = make_pacs_zip(tmp_path, inner)
    root = archive.parent
    monkeypatch.setattr(pacs_script, "DOMAIN_IMAGE_COUNTS", dict.fromkeys(pacs_script.DOMAIN_IMAGE_COUNTS, 14))
    assert pacs_script.main(["--root", str(root)]) == 0
    assert len(list((root / "pacs" / "sketch" / "horse").glob("*.png"))) == 2
    assert not (root / "_pacs_download").exists()


def test_pacs_all_mirrors_fail(tmp_path, monkeypatch, capsys):
    def refuse(mirror, root):
        raise RuntimeError(f"{mirror.file_id} refused")

    monkeypatch.setattr(pacs_script, "fetch_mirror", refuse)
    assert pacs_script.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "every mirror failed" in err
    for mirror in pacs_script.MIRRORS:
        assert mirror.url in err
    assert str(tmp_path / "pacs") + "/<domain>/<class>/" in err


def test_pacs_html_archive_rejected(tmp_path, monkeypatch, capsys):
    (tmp_path / "PACS.zip").write_bytes(QUOTA_PAGE)
    monkeypatch.setattr(pacs_script, "MIRRORS", pacs_script.MIRRORS[:1])
    assert pacs_script.main(["--root", str(tmp_path)]) == 1
    assert "is an HTML page" in capsys.readouterr().err
    assert (tmp_path / "PACS.zip.html").exists()


def test_pacs_verify_only_counts(tmp_path, capsys):
    write_pacs(tmp_path, per_class=1)
    assert pacs_script.main(["--root", str(tmp_path), "--verify-only"]) == 1
    assert "contains 7 images, expected 3929" in capsys.readouterr().err
