"""Download, verify and extract CIFAR-10 into ROOT/cifar-10-batches-py.

Uses torchvision's own download code (``CIFAR10(root, download=True)``), which skips the
download when ROOT/cifar-10-python.tar.gz is already present with the right MD5. Exit
status 0 when every extracted file matches torchvision's MD5s, 1 otherwise (with manual
placement steps on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from torchvision.datasets import CIFAR10

from _verify import ExpectedFile, build_parser, check_files, describe, run_script
from arml_core.data.cifar10 import expected_md5s

NAME = "CIFAR-10"
# Size from the host's Content-Length for this URL (the MD5 is torchvision's).
ARCHIVE = ExpectedFile(CIFAR10.filename, md5=CIFAR10.tgz_md5, size=170_498_071)


def final_files() -> list[ExpectedFile]:
    """Return the extracted files the loader reads, with torchvision's MD5s."""
    return [ExpectedFile(path, md5=md5) for path, md5 in expected_md5s().items()]


def find_problems(root: Path) -> list[str]:
    """Return what is missing or wrong under ``root`` (empty when CIFAR-10 verifies)."""
    return check_files(root, final_files())


def download(root: Path) -> None:
    """Download and extract the archive with torchvision; raises on any network or checksum failure."""
    CIFAR10(str(root), train=True, download=True)


def manual_steps(root: Path) -> str:
    """Return the steps that place CIFAR-10 by hand."""
    extracted = "\n".join(f"       {root / item.path}" for item in final_files())
    return f"""
Manual steps for {NAME}:
  1. On a machine with internet access, download
       {CIFAR10.url}
     expected: {describe(ARCHIVE)}
  2. Copy it, keeping its name, to {root / ARCHIVE.path}
  3. Run again: python data_scripts/download_cifar10.py --root {root}
     It finds the archive, checks its MD5 and extracts it without downloading.
  Or extract the archive yourself so that these files exist:
{extracted}
  and check them with: python data_scripts/download_cifar10.py --root {root} --verify-only"""


def main(argv: list[str] | None = None) -> int:
    """Run the script with command-line arguments ``argv``; return the exit status."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    return run_script(NAME, args.root, download, find_problems, manual_steps, args.verify_only, [ARCHIVE])


if __name__ == "__main__":
    sys.exit(main())
