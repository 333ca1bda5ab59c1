"""Errors for dataset files that are missing or corrupted, and the file checks that raise them.

Every error names the dataset, the root folder and the command of the data script that
downloads and verifies the files, so the message alone shows what to run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from torchvision.datasets.utils import calculate_md5

# Google Drive and other hosts respond to a rejected download with an HTML page. Saved under
# the archive's name, it starts with one of these (after optional whitespace or a BOM).
_HTML_PREFIXES = (b"<!doctype html", b"<html")
_SNIFF_BYTES = 1024


def download_command(script: str, root: str | Path) -> str:
    """Return the shell command that runs a data script, e.g. ``python data_scripts/x.py --root R``."""
    return f"python data_scripts/{script} --root {root}"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder or file is missing under the root folder.

    Attributes:
        dataset: display name, e.g. ``"CIFAR-10"``.
        root: the root folder that was searched.
        missing: paths (relative to ``root``) that were not found.
        command: the data script command that downloads the dataset.
    """

    def __init__(self, dataset: str, root: str | Path, script: str, missing: Iterable[str]) -> None:
        self.dataset = dataset
        self.root = Path(root)
        self.missing = list(missing)
        self.command = download_command(script, root)
        listed = ", ".join(self.missing[:5]) + (" ..." if len(self.missing) > 5 else "")
        super().__init__(
            f"{dataset} not found under {self.root}: missing {listed}. "
            f"Download and verify it with `{self.command}`."
        )


class DatasetCorruptedError(RuntimeError):
    """A dataset file exists but is not the expected file (wrong checksum, HTML page, bad content).

    Attributes:
        dataset: display name.
        path: the offending file.
        command: the data script command that downloads the dataset again.
    """

    def __init__(self, dataset: str, path: str | Path, problem: str, script: str, root: str | Path) -> None:
        self.dataset = dataset
        self.path = Path(path)
        self.command = download_command(script, root)
        super().__init__(
            f"{dataset} file {self.path} is invalid: {problem}. Delete it and run `{self.command}` "
            "to download and verify it again."
        )


def looks_like_html(path: str | Path) -> bool:
    """Return True when the file starts with an HTML document (``<!DOCTYPE html`` or ``<html``).

    Only the first kilobyte is read, and leading whitespace and a UTF-8 BOM are skipped.
    """
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(_HTML_PREFIXES)


def require_paths(dataset: str, root: str | Path, relative_paths: Iterable[str], script: str) -> None:
    """Raise DatasetNotFoundError listing every path (relative to ``root``) that does not exist."""
    root = Path(root)
    missing = [rel for rel in relative_paths if not (root / rel).exists()]
    if missing:
        raise DatasetNotFoundError(dataset, root, script, missing)


def verify_md5s(dataset: str, root: str | Path, expected_md5: Mapping[str, str], script: str) -> None:
    """Raise DatasetCorruptedError for the first file whose MD5 differs from ``expected_md5``.

    ``expected_md5`` maps paths relative to ``root`` to hex digests. An HTML page saved
    under a data file's name is reported as such instead of as a checksum mismatch.
    Reads every listed file in full.
    """
    root = Path(root)
    for rel, expected in expected_md5.items():
        path = root / rel
        if looks_like_html(path):
            raise DatasetCorruptedError(
                dataset, path, "it is an HTML page (often a download quota message), not the data file", script, root
            )
        actual = calculate_md5(path)
        if actual != expected:
            raise DatasetCorruptedError(
                dataset, path, f"MD5 is {actual}, expected {expected}", script, root
            )
