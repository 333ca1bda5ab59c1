"""Check a built HTML book: scripts (MathJax included) come from the book itself and Colab links are right.

Run after the jupyter-book build (tools/build_book.py calls check_book_html), or alone:
`python tools/check_book_html.py _build/book_src/_build/html book/_config.yml`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

SCRIPT_SRC = re.compile(r"<script\b[^>]*\bsrc=[\"']([^\"']+)[\"']", re.IGNORECASE)
COLAB_HREF = re.compile(r"href=[\"'](https://colab\.research\.google\.com/[^\"']+)[\"']")


def is_remote(url: str) -> bool:
    """Return True for a URL that a browser fetches from another host (http, https or //host)."""
    return url.startswith(("http://", "https://", "//"))


def check_scripts(html_dir: Path) -> list[str]:
    """Return errors unless every script the pages load, MathJax included, is a file of the book.

    At least one page must load MathJax, because the introduction contains maths.
    """
    errors, mathjax_pages = [], 0
    for page in sorted(html_dir.rglob("*.html")):
        relative = page.relative_to(html_dir)
        for src in SCRIPT_SRC.findall(page.read_text(encoding="utf-8")):
            is_mathjax = "mathjax" in src.lower()
            if is_remote(src):
                kind = "MathJax" if is_mathjax else "a script"
                errors.append(f"{relative} loads {kind} from {src}, but the book must work offline: serve it from _static")
                continue
            if not is_mathjax:
                continue
            if not (page.parent / src.split("?")[0]).is_file():
                errors.append(f"{relative} loads MathJax from {src}, which is not in the built book")
            else:
                mathjax_pages += 1
    if mathjax_pages == 0 and not errors:
        errors.append(f"no page under {html_dir} loads MathJax, but the introduction has maths")
    return errors


def expected_colab_url(config: dict[str, Any], notebook: str) -> str:
    """Return the Colab URL that opens notebooks/<notebook>.ipynb of the configured repository."""
    repository = urlparse(config["repository"]["url"]).path.strip("/")
    colab = config["launch_buttons"]["colab_url"].rstrip("/")
    branch = config["repository"]["branch"]
    return f"{colab}/github/{repository}/blob/{branch}/notebooks/{notebook}.ipynb"


def check_colab_links(html_dir: Path, config: dict[str, Any]) -> list[str]:
    """Return errors unless each notebook page has exactly the Colab link for its notebook.

    Notebook pages are the HTML files under html_dir/notebooks/.
    """
    errors = []
    for page in sorted((html_dir / "notebooks").glob("*.html")):
        expected = expected_colab_url(config, page.stem)
        links = set(COLAB_HREF.findall(page.read_text(encoding="utf-8")))
        if links != {expected}:
            found = ", ".join(sorted(links)) or "none"
            errors.append(f"notebooks/{page.name}: Colab link should be {expected}, found {found}")
    return errors


def check_book_html(html_dir: Path, config: dict[str, Any]) -> list[str]:
    """Run every check on a built book; return the list of errors (empty when all pass)."""
    if not (html_dir / "index.html").is_file():
        return [f"{html_dir / 'index.html'} not found: the book was not built"]
    return check_scripts(html_dir) + check_colab_links(html_dir, config)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: check_book_html.py HTML_DIR CONFIG_YML", file=sys.stderr)
        return 2
    config = yaml.safe_load(Path(argv[1]).read_text())
    errors = check_book_html(Path(argv[0]), config)
    for error in errors:
        print(f"check_book_html: FAILED: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
