"""Download and verify CelebA (aligned images and the five annotation files) into ROOT/celeba.

Uses torchvision's own download code (``CelebA(root, download=True)``), which fetches from
Google Drive through the ``gdown`` package. Google Drive often responds with an HTML
"quota exceeded" page; this script detects such a page saved under a data file's name,
moves it aside to ``<name>.html`` and prints manual placement steps. Exit status 0 when
every annotation file matches its MD5 and size and the image folder contains all images.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from torchvision.datasets import CelebA

from _verify import ExpectedFile, build_parser, check_files, describe, run_script
from arml_core.data.celeba import FOLDER, IMAGE_FOLDER

NAME = "CelebA"
SITE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
NUM_IMAGES = 202_599
# Sizes as printed by torchvision's CelebA download for the files with these MD5s.
SIZES = {
    "img_align_celeba.zip": 1_443_490_838,
    "list_attr_celeba.txt": 26_721_026,
    "identity_CelebA.txt": 3_424_458,
    "list_bbox_celeba.txt": 6_082_035,
    "list_landmarks_align_celeba.txt": 12_156_055,
    "list_eval_partition.txt": 2_836_386,
}


def downloaded_files() -> list[ExpectedFile]:
    """Return every file torchvision downloads, relative to ROOT, with MD5 and size."""
    return [ExpectedFile(f"{FOLDER}/{name}", md5=md5, size=SIZES.get(name)) for _, md5, name in CelebA.file_list]


def annotation_files() -> list[ExpectedFile]:
    """Return the annotation files the loader reads (the image archive may be deleted after extraction)."""
    return [item for item in downloaded_files() if item.path.endswith(".txt")]


def find_problems(root: Path) -> list[str]:
    """Return what is missing or wrong under ``root`` (empty when CelebA verifies)."""
    problems = check_files(root, annotation_files())
    images = root / FOLDER / IMAGE_FOLDER
    if not images.is_dir():
        return problems + [f"{images}: missing (extract img_align_celeba.zip here)"]
    count = sum(1 for entry in os.scandir(images) if entry.name.endswith(".jpg"))
    if count != NUM_IMAGES:
        problems.append(f"{images}: contains {count} .jpg images, expected {NUM_IMAGES}")
    return problems


def download(root: Path) -> None:
    """Download and extract CelebA with torchvision; raises when gdown is missing or a download fails."""
    if importlib.util.find_spec("gdown") is None:
        raise RuntimeError("torchvision downloads CelebA from Google Drive with gdown, which is not installed "
                           "(install it with `pip install gdown`)")
    CelebA(str(root), split="all", target_type="attr", download=True)


def manual_steps(root: Path) -> str:
    """Return the steps that place CelebA by hand."""
    folder = root / FOLDER
    listed = "\n".join(f"       {describe(item)}" for item in downloaded_files())
    return f"""
Manual steps for {NAME}:
  1. On a machine with internet access, open {SITE}
     and download from its "Align&Cropped Images" and annotation links (Google Drive or Baidu):
{listed}
  2. Copy the files, keeping their names, into {folder}/
  3. Extract the archive there so that {folder / IMAGE_FOLDER}/ contains {NUM_IMAGES} files
     000001.jpg ... 202599.jpg (for example: cd {folder} && unzip img_align_celeba.zip).
  4. Check them with: python data_scripts/download_celeba.py --root {root} --verify-only
  A file that starts with "<!DOCTYPE html" or "<html" is a Google Drive error or quota page,
  not data: delete it and download again later or from the other host."""


def main(argv: list[str] | None = None) -> int:
    """Run the script with command-line arguments ``argv``; return the exit status."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    return run_script(NAME, args.root, download, find_problems, manual_steps, args.verify_only, downloaded_files())


if __name__ == "__main__":
    sys.exit(main())
