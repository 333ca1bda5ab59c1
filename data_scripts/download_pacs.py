"""Download, extract and verify PACS into ROOT/pacs/<domain>/<class>/.

PACS's original links are dead, so this script tries known Google Drive mirrors in turn
(through torchvision's ``download_file_from_google_drive``, which needs the ``gdown``
package), extracts the archive, finds the folder that contains the four domain folders and
moves it to ROOT/pacs. Exit status 0 when every domain and class folder exists with the
expected number of images, 1 otherwise (with manual placement steps on stderr).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from torchvision.datasets.utils import download_file_from_google_drive, extract_archive

from _verify import ExpectedFile, build_parser, check_file, describe, run_script
from arml_core.data.pacs import CLASSES, DOMAINS, FOLDER, IMAGE_SUFFIXES

NAME = "PACS"
# Images per domain, as listed by Li et al. (ICCV 2017) and in Dassl.pytorch's PACS loader.
DOMAIN_IMAGE_COUNTS = {"photo": 1670, "art_painting": 2048, "cartoon": 2344, "sketch": 3929}
_EXTRACT_DIR = "_pacs_download"


@dataclass(frozen=True)
class Mirror:
    """One known copy of PACS on Google Drive, with the archive's expected facts."""

    name: str
    file_id: str
    archive: ExpectedFile

    @property
    def url(self) -> str:
        """Browser URL of the file."""
        return f"https://drive.google.com/uc?id={self.file_id}"


# NOTE: no checksum or size of either archive could be verified (no machine here reaches
# the internet), so md5, sha256 and size are None. The final check counts the images per
# domain instead. Fill in the digests after one trusted download.
MIRRORS = (
    Mirror("DomainBed (images under kfold/)", "1JFr8f805nMUelQWWmfnJR3y4_SYoN5Pd", ExpectedFile("PACS.zip")),
    Mirror("Dassl.pytorch (images under pacs/images/)", "1wN5jJiG3makr8D2iDX5CI7oFXGua8nYB", ExpectedFile("pacs.zip")),
)


def count_images(folder: Path) -> int:
    """Return the number of .jpg/.jpeg/.png files directly in ``folder``."""
    return sum(1 for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)


def find_problems(root: Path) -> list[str]:
    """Return missing domain or class folders and wrong image counts under ROOT/pacs."""
    problems = []
    for domain in DOMAINS:
        domain_dir = root / FOLDER / domain
        if not domain_dir.is_dir():
            problems.append(f"{domain_dir}: missing")
            continue
        total = 0
        for name in CLASSES:
            class_dir = domain_dir / name
            if not class_dir.is_dir():
                problems.append(f"{class_dir}: missing")
                continue
            total += count_images(class_dir)
        if total != DOMAIN_IMAGE_COUNTS[domain]:
            problems.append(f"{domain_dir}: contains {total} images, expected {DOMAIN_IMAGE_COUNTS[domain]}")
    return problems


def find_domain_parent(folder: Path, max_depth: int = 3) -> Path | None:
    """Return the first folder at most ``max_depth`` levels below ``folder`` that contains all four domain folders."""
    candidates = [folder]
    for _ in range(max_depth + 1):
        for candidate in candidates:
            if all((candidate / domain).is_dir() for domain in DOMAINS):
                return candidate
        candidates = sorted(child for parent in candidates for child in parent.iterdir() if child.is_dir())
    return None


def fetch_mirror(mirror: Mirror, root: Path) -> Path:
    """Return the mirror's archive in ``root``, downloading it first unless it is already there."""
    if (root / mirror.archive.path).is_file():
        return root / mirror.archive.path
    if importlib.util.find_spec("gdown") is None:
        raise RuntimeError("the PACS mirrors are on Google Drive, which torchvision reads with gdown, "
                           "and gdown is not installed (install it with `pip install gdown`)")
    download_file_from_google_drive(mirror.file_id, str(root), mirror.archive.path, mirror.archive.md5)
    return root / mirror.archive.path


def install_archive(archive: Path, root: Path) -> None:
    """Extract ``archive`` and move the folder containing the domain folders to ROOT/pacs.

    Raises:
        RuntimeError: the archive is an HTML page or contains no folder with all four domains.
    """
    problem = check_file(root, ExpectedFile(archive.name))
    if problem is not None:
        raise RuntimeError(problem)
    workdir = root / _EXTRACT_DIR
    shutil.rmtree(workdir, ignore_errors=True)
    extract_archive(str(archive), str(workdir))
    source = find_domain_parent(workdir)
    if source is None:
        raise RuntimeError(f"{archive} contains no folder with all of {', '.join(DOMAINS)}")
    target = root / FOLDER
    if target.exists():
        raise RuntimeError(f"{target} already exists; move it away before installing {archive}")
    shutil.move(str(source), str(target))
    shutil.rmtree(workdir, ignore_errors=True)


def download(root: Path) -> None:
    """Try each mirror until one installs; raises RuntimeError listing every mirror's failure."""
    root.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in MIRRORS:
        try:
            install_archive(fetch_mirror(mirror, root), root)
            return
        except Exception as error:  # noqa: BLE001 (try the next mirror, report all at the end)
            failures.append(f"{mirror.name}: {error}")
    raise RuntimeError("every mirror failed: " + "; ".join(failures))


def manual_steps(root: Path) -> str:
    """Return the steps that place PACS by hand."""
    mirrors = "\n".join(f"       {m.url}  ({m.name}; saved as {describe(m.archive)})" for m in MIRRORS)
    counts = ", ".join(f"{d} {n}" for d, n in DOMAIN_IMAGE_COUNTS.items())
    return f"""
Manual steps for {NAME}:
  1. On a machine with internet access, download one of
{mirrors}
  2. Extract it and copy the folder that contains art_painting/, cartoon/, photo/ and sketch/
     to {root / FOLDER}/ so that images lie in {root / FOLDER}/<domain>/<class>/,
     with classes {', '.join(CLASSES)}.
     Or copy the archive, keeping its name, into {root}/ and run this script again.
  3. Expected images per domain: {counts}.
  4. Check them with: python data_scripts/download_pacs.py --root {root} --verify-only"""


def main(argv: list[str] | None = None) -> int:
    """Run the script with command-line arguments ``argv``; return the exit status."""
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    archives = [m.archive for m in MIRRORS]
    return run_script(NAME, args.root, download, find_problems, manual_steps, args.verify_only, archives)


if __name__ == "__main__":
    sys.exit(main())
