"""Shared steps of the download scripts: verify files, reject HTML pages, print manual steps.

Every script follows one flow (``run_script``): if the dataset files already verify, stop;
otherwise download (unless ``--verify-only``), then verify. Any failure prints what went
wrong and the manual placement steps to stderr, and the script exits with status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from arml_core.data.errors import looks_like_html

logger = logging.getLogger("data_scripts")

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExpectedFile:
    """A file the dataset needs, relative to ROOT, with whatever of its digest and size is known.

    ``md5``, ``sha256`` or ``size`` (bytes) set to None are not checked.
    """

    path: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


def file_digest(path: Path, algorithm: str) -> str:
    """Return the hex digest of the file with ``hashlib.new(algorithm)``, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(root: Path, expected: ExpectedFile) -> str | None:
    """Return a one-line problem with the file, or None when it exists and matches.

    Checks, in order: existence, HTML page, size, MD5, SHA-256, so the cheapest failing
    check names the problem.
    """
    path = root / expected.path
    if not path.is_file():
        return f"{path}: missing"
    if looks_like_html(path):
        return f"{path}: is an HTML page, not the data file (a host's error or quota page saved under its name)"
    size = path.stat().st_size
    if expected.size is not None and size != expected.size:
        return f"{path}: size is {size} bytes, expected {expected.size}"
    if expected.md5 is not None and (actual := file_digest(path, "md5")) != expected.md5:
        return f"{path}: MD5 is {actual}, expected {expected.md5}"
    if expected.sha256 is not None and (actual := file_digest(path, "sha256")) != expected.sha256:
        return f"{path}: SHA-256 is {actual}, expected {expected.sha256}"
    return None


def check_files(root: Path, expected: Sequence[ExpectedFile]) -> list[str]:
    """Return the problems of every file in ``expected`` (an empty list when all verify)."""
    return [problem for item in expected if (problem := check_file(root, item)) is not None]


def set_aside_html(path: Path) -> Path | None:
    """Rename ``path`` to ``<path>.html`` when it is an HTML page, so a rerun downloads it again.

    Returns the new path, or None when the file is absent or not HTML.
    """
    if not path.is_file() or not looks_like_html(path):
        return None
    target = path.with_name(path.name + ".html")
    path.replace(target)
    return target


def describe(expected: ExpectedFile) -> str:
    """Return ``path (N bytes, MD5 x)`` with the known facts of one file."""
    facts = [f"{expected.size} bytes" if expected.size is not None else None,
             f"MD5 {expected.md5}" if expected.md5 else None,
             f"SHA-256 {expected.sha256}" if expected.sha256 else None]
    known = ", ".join(f for f in facts if f)
    return f"{expected.path} ({known})" if known else expected.path


def build_parser(description: str) -> argparse.ArgumentParser:
    """Return the argument parser every script shares: ``--root`` and ``--verify-only``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", type=Path, required=True,
                        help="data folder that receives the dataset (the same ROOT the arml_core loaders read)")
    parser.add_argument("--verify-only", action="store_true",
                        help="do not download; only check files already placed under ROOT")
    return parser


def run_script(
    name: str,
    root: Path,
    download: Callable[[Path], None],
    find_problems: Callable[[Path], list[str]],
    manual_steps: Callable[[Path], str],
    verify_only: bool,
    archives: Sequence[ExpectedFile] = (),
) -> int:
    """Download (unless ``verify_only``) and verify one dataset; return the exit status (0 or 1).

    ``find_problems(root)`` lists what is wrong with the files the loader reads (empty when
    they verify). ``archives`` are downloaded files that are checked for HTML pages after a
    failed download.
    """
    root = root.expanduser().resolve()
    if not find_problems(root):
        print(f"{name}: all files under {root} verified.")
        return 0
    if not verify_only:
        print(f"{name}: downloading into {root} ...")
        try:
            download(root)
        except Exception as error:  # noqa: BLE001 (every failure ends in the manual steps)
            logger.debug("download failed", exc_info=True)
            print(f"{name}: download failed: {error}", file=sys.stderr)
            for archive in archives:
                aside = set_aside_html(root / archive.path)
                if aside is not None:
                    print(f"{name}: {archive.path} was an HTML page, not the archive; moved it to {aside}",
                          file=sys.stderr)
            print(manual_steps(root), file=sys.stderr)
            return 1

    problems = find_problems(root)
    if problems:
        print(f"{name}: verification failed:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(manual_steps(root), file=sys.stderr)
        return 1
    print(f"{name}: all files under {root} verified.")
    return 0
