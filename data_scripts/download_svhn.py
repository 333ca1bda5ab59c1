"""Download and verify SVHN's train and test .mat files into ROOT/svhn.

Uses torchvision's own download code (``SVHN(root, split, download=True)``). SVHN is
stored as MATLAB files that only SciPy reads, so SciPy's absence is reported before any
download. Exit status 0 when both files match their MD5 and size, 1 otherwise (with
manual placement steps on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from torchvision.datasets import SVHN

from _verify import ExpectedFile, build_parser, check_files, describe, run_script
from arml_core.data.svhn import FOLDER, require_scipy

NAME = "SVHN"
SPLITS = ("train", "test")
# Sizes from the host's Content-Length for these URLs (the MD5s are torchvision's).
SIZES = {"train": 182_040_794, "test": 64_275_384}


def final_files() -> list[ExpectedFile]:
    """Return the .mat files the loader reads, with torchvision's MD5s and their sizes."""
    return [
        ExpectedFile(f"{FOLDER}/{SVHN.split_list[s][1]}", md5=SVHN.split_list[s][2], size=SIZES[s]) for s in SPLITS
    ]


def find_problems(root: Path) -> list[str]:
    """Return what is missing or wrong under ``root`` (empty when SVHN verifies)."""
    return check_files(root, final_files())


def download(root: Path) -> None:
    """Download both splits with torchvision; raises on any network or checksum failure."""
    for split in SPLITS:
        SVHN(str(root / FOLDER), split=split, download=True)


def manual_steps(root: Path) -> str:
    """Return the steps that place SVHN by hand."""
    lines = [f"\nManual steps for {NAME}:", "  1. On a machine with internet access, download"]
    for split, item in zip(SPLITS, final_files()):
        lines.append(f"       {SVHN.split_list[split][0]}")
        lines.append(f"     expected: {describe(item)}")
    lines.append(f"  2. Copy them, keeping their names, into {root / FOLDER}/")
    lines.append(f"  3. Check them with: python data_scripts/download_svhn.py --root {root} --verify-only")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the script with command-line arguments ``argv``; return the exit status."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    try:
        require_scipy()
    except ImportError as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        return 1
    return run_script(NAME, args.root, download, find_problems, manual_steps, args.verify_only, final_files())


if __name__ == "__main__":
    sys.exit(main())
