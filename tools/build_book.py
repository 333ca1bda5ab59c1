"""Build the HTML book from already executed notebooks.

Used by both `make book` (notebooks executed by papermill) and `make test` (notebooks
executed by nbval and saved by tests/nbval_capture.py). Steps:

1. Lay out a build source folder like the repository root: book/<page>.md copied from
   book/, notebooks/<name>.ipynb copied from the executed folder, and _config.yml plus a
   filtered _toc.yml at its top. Page names are then paths from the repository root, so
   the Colab and source buttons link to the right files.
2. Drop from the table of contents every chapter whose file does not exist, with a
   printed notice, and fail if an executed notebook is missing from the table of contents.
3. Run jupyter-book 1 with `-W -n --keep-going` and execution off.
4. Check the HTML with check_book_html.py: MathJax served locally, Colab links right.

Exit status: 0 when every step passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from check_book_html import check_book_html

REPO_ROOT = Path(__file__).resolve().parent.parent


def toc_pages(toc: dict[str, Any]) -> list[str]:
    """Return the page names of a flat jb-book toc: the root, then each chapter in order."""
    return [toc["root"]] + [chapter["file"] for chapter in toc.get("chapters", [])]


def page_source(page: str, book_dir: Path, executed_dir: Path) -> Path:
    """Map a toc page name (a path from the repository root, no suffix) to its source file.

    notebooks/<name> comes from the executed folder; any other page is a Markdown file
    in the repository (book/<page> -> book/<page>.md).
    """
    folder, _, name = page.rpartition("/")
    if folder == "notebooks":
        return executed_dir / f"{name}.ipynb"
    return book_dir.parent / f"{page}.md"


def filter_toc(toc: dict[str, Any], exists: Any) -> tuple[dict[str, Any], list[str]]:
    """Return a copy of a flat jb-book toc without the chapters for which exists(page) is false.

    Args:
        toc: the parsed _toc.yml, with `root` and a flat `chapters` list.
        exists: callable taking a page name and returning whether its source file exists.

    Returns:
        The filtered toc and the list of pages left out. The root page is never left out:
        a missing root raises FileNotFoundError.
    """
    if "parts" in toc or any("sections" in c for c in toc.get("chapters", [])):
        raise ValueError("book/_toc.yml must be a flat list of chapters; parts and sections are not supported")
    if not exists(toc["root"]):
        raise FileNotFoundError(f"the root page {toc['root']!r} of book/_toc.yml does not exist")

    present, missing = [], []
    for chapter in toc.get("chapters", []):
        if exists(chapter["file"]):
            present.append(chapter)
        else:
            missing.append(chapter)
    filtered = {key: value for key, value in toc.items() if key != "chapters"}
    if present:
        filtered["chapters"] = present
    return filtered, [chapter["file"] for chapter in missing]


def prepare_source(book_dir: Path, executed_dir: Path, source_dir: Path) -> list[str]:
    """Fill source_dir with the pages and a filtered toc; return a list of errors (empty if none).

    source_dir is deleted first. Markdown and other page assets come from book_dir, the
    notebooks from executed_dir.
    """
    if source_dir.exists():
        shutil.rmtree(source_dir)
    source_dir.mkdir(parents=True)

    toc = yaml.safe_load((book_dir / "_toc.yml").read_text())
    filtered, missing = filter_toc(toc, lambda page: page_source(page, book_dir, executed_dir).is_file())
    for page in missing:
        print(f"build_book: leaving {page} out of the book: {page_source(page, book_dir, executed_dir)} not found")

    errors = []
    listed = {page.removeprefix("notebooks/") for page in toc_pages(toc)}
    for notebook in sorted(executed_dir.glob("*.ipynb")):
        if notebook.stem not in listed:
            errors.append(f"{notebook.name} was executed but is not in book/_toc.yml: add `- file: notebooks/{notebook.stem}`")

    shutil.copytree(book_dir, source_dir / "book", ignore=shutil.ignore_patterns("_config.yml", "_toc.yml", "_build"))
    (source_dir / "notebooks").mkdir()
    for page in toc_pages(filtered):
        if page.startswith("notebooks/"):
            shutil.copy2(page_source(page, book_dir, executed_dir), source_dir / f"{page}.ipynb")

    shutil.copy2(book_dir / "_config.yml", source_dir / "_config.yml")
    (source_dir / "_toc.yml").write_text(yaml.safe_dump(filtered, sort_keys=False))
    return errors


def run_jupyter_book(source_dir: Path) -> int:
    """Build source_dir to source_dir/_build/html, failing on any warning; return the exit code."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(source_dir), "--builder", "html", "-W", "-n", "--keep-going"]
    print("build_book: " + " ".join(command), flush=True)
    return subprocess.run(command, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executed", type=Path, default=REPO_ROOT / "_build" / "executed",
                        help="folder of executed notebooks (default: _build/executed)")
    parser.add_argument("--book", type=Path, default=REPO_ROOT / "book",
                        help="folder with _config.yml, _toc.yml and the Markdown pages (default: book)")
    parser.add_argument("--source", type=Path, default=REPO_ROOT / "_build" / "book_src",
                        help="build source folder, deleted and rebuilt (default: _build/book_src)")
    args = parser.parse_args(argv)

    if not args.executed.is_dir():
        print(f"build_book: executed-notebook folder {args.executed} not found: run the notebooks first "
              "(make book or make test)", file=sys.stderr)
        return 1

    errors = prepare_source(args.book, args.executed, args.source)
    if run_jupyter_book(args.source) != 0:
        errors.append("jupyter-book build failed (see its warnings above)")

    html_dir = args.source / "_build" / "html"
    if (html_dir / "index.html").is_file():
        errors.extend(check_book_html(html_dir, yaml.safe_load((args.book / "_config.yml").read_text())))

    for error in errors:
        print(f"build_book: FAILED: {error}", file=sys.stderr)
    if errors:
        return 1
    print(f"build_book: the book is at {(html_dir / 'index.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
