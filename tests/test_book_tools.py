"""Tests of the book pipeline's helpers: toc filtering, HTML checks and nbval output capture.

`make book` and `make test` exercise the full pipeline (papermill or nbval, then
jupyter-book). These tests pin down the pieces that decide what goes into the book.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tools"))
sys.path.insert(0, str(REPO_ROOT))

import build_book  # noqa: E402
import check_book_html  # noqa: E402
from tests.nbval_capture import executed_notebook, to_nbformat_output  # noqa: E402

CONFIG = yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text())


def test_filter_toc_drops_missing_chapters_in_order() -> None:
    toc = {"format": "jb-book", "root": "book/intro",
           "chapters": [{"file": "notebooks/00_a"}, {"file": "notebooks/01_b"}, {"file": "book/notes"}]}
    present = {"book/intro", "notebooks/01_b", "book/notes"}
    filtered, missing = build_book.filter_toc(toc, present.__contains__)
    assert [c["file"] for c in filtered["chapters"]] == ["notebooks/01_b", "book/notes"]
    assert missing == ["notebooks/00_a"]
    assert filtered["root"] == "book/intro"
    assert len(toc["chapters"]) == 3


def test_filter_toc_missing_root_raises() -> None:
    with pytest.raises(FileNotFoundError, match="book/intro"):
        build_book.filter_toc({"root": "book/intro", "chapters": []}, lambda page: False)


def test_committed_toc_lists_chapters_in_order() -> None:
    toc = yaml.safe_load((REPO_ROOT / "book" / "_toc.yml").read_text())
    assert build_book.toc_pages(toc) == [
        "book/intro",
        "notebooks/00_quickstart",
        "notebooks/01_gaussian_prior_theory",
        "notebooks/02_langevin_sampling",
        "notebooks/03_semi_supervised",
        "notebooks/04_multilabel",
        "notebooks/05_domain_generalization",
        "notebooks/06_robustness",
        "notebooks/90_results",
        "book/reproduction",
        "book/references",
    ]


def test_every_book_page_in_toc_exists() -> None:
    toc = yaml.safe_load((REPO_ROOT / "book" / "_toc.yml").read_text())
    for page in build_book.toc_pages(toc):
        if page.startswith("book/"):
            assert (REPO_ROOT / f"{page}.md").is_file(), page


def make_book_dir(root: Path, chapters: list[str]) -> Path:
    book = root / "book"
    book.mkdir()
    (book / "_config.yml").write_text(yaml.safe_dump(CONFIG))
    toc = {"format": "jb-book", "root": "book/intro", "chapters": [{"file": page} for page in chapters]}
    (book / "_toc.yml").write_text(yaml.safe_dump(toc))
    (book / "intro.md").write_text("# Intro\n")
    return book


def write_notebook(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), str(path))


def test_prepare_source_mirrors_repository_layout(tmp_path: Path) -> None:
    book = make_book_dir(tmp_path, ["notebooks/00_quickstart", "notebooks/03_semi_supervised"])
    executed = tmp_path / "executed"
    write_notebook(executed / "00_quickstart.ipynb")
    source = tmp_path / "src"

    errors = build_book.prepare_source(book, executed, source)

    assert errors == []
    assert (source / "book" / "intro.md").is_file()
    assert (source / "notebooks" / "00_quickstart.ipynb").is_file()
    assert not (source / "book" / "_toc.yml").exists()
    toc = yaml.safe_load((source / "_toc.yml").read_text())
    assert build_book.toc_pages(toc) == ["book/intro", "notebooks/00_quickstart"]


def test_prepare_source_rejects_notebook_missing_from_toc(tmp_path: Path) -> None:
    book = make_book_dir(tmp_path, ["notebooks/00_quickstart"])
    executed = tmp_path / "executed"
    write_notebook(executed / "00_quickstart.ipynb")
    write_notebook(executed / "07_new_chapter.ipynb")

    errors = build_book.prepare_source(book, executed, tmp_path / "src")

    assert len(errors) == 1
    assert "07_new_chapter.ipynb" in errors[0]


def write_page(html_dir: Path, relative: str, body: str) -> None:
    page = html_dir / relative
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"<html><head>{body}</head></html>", encoding="utf-8")


def test_expected_colab_url_points_at_notebooks_folder() -> None:
    url = check_book_html.expected_colab_url(CONFIG, "00_quickstart")
    assert url == ("https://colab.research.google.com/github/arml-book/arml-book/blob/main/"
                   "notebooks/00_quickstart.ipynb")


def test_check_accepts_local_mathjax_and_right_colab_link(tmp_path: Path) -> None:
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    colab = check_book_html.expected_colab_url(CONFIG, "00_quickstart")
    write_page(tmp_path, "index.html", "")
    write_page(tmp_path, "book/intro.html", '<script defer src="../_static/mathjax/tex-chtml.js"></script>')
    write_page(tmp_path, "notebooks/00_quickstart.html", f'<a href="{colab}">Colab</a>')
    assert check_book_html.check_book_html(tmp_path, CONFIG) == []


@pytest.mark.parametrize(
    ("page", "body", "expected_error"),
    [
        ("book/intro.html", '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>',
         "loads MathJax from https://cdn.jsdelivr.net"),
        ("book/intro.html", '<script src="../_static/mathjax/missing.js"></script>', "not in the built book"),
        ("book/intro.html", '<script src="https://unpkg.com/require.js"></script>', "loads a script from"),
        ("notebooks/00_quickstart.html",
         '<a href="https://colab.research.google.com/github/arml-book/arml-book/blob/main/book/00_quickstart.ipynb">',
         "Colab link should be"),
        ("notebooks/00_quickstart.html", "", "found none"),
    ],
)
def test_check_reports_bad_html(tmp_path: Path, page: str, body: str, expected_error: str) -> None:
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    write_page(tmp_path, "index.html", '<script src="_static/mathjax/tex-chtml.js"></script>')
    write_page(tmp_path, page, body)
    errors = check_book_html.check_book_html(tmp_path, CONFIG)
    assert len(errors) == 1
    assert expected_error in errors[0]


def test_check_requires_some_page_with_mathjax(tmp_path: Path) -> None:
    write_page(tmp_path, "index.html", "")
    errors = check_book_html.check_book_html(tmp_path, CONFIG)
    assert errors == [f"no page under {tmp_path} loads MathJax, but the introduction has maths"]


def nbval_output(output_type: str, **fields: object) -> nbformat.NotebookNode:
    """Build an output the way nbval records it: a NotebookNode typed by the message type."""
    return nbformat.NotebookNode(output_type=output_type, **fields)


def test_executed_notebook_carries_recorded_outputs() -> None:
    source = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# title"),
        nbformat.v4.new_code_cell("print('a')"),
        nbformat.v4.new_code_cell("skipped()", outputs=[nbformat.v4.new_output("stream", text="old\n")]),
        nbformat.v4.new_code_cell("1 + 1"),
    ])
    recorded = {
        0: [nbval_output("stream", name="stdout", text="a\n")],
        1: None,
        2: [nbval_output("execute_result", data={"text/plain": "2"}, metadata={}, execution_count=7)],
    }

    result = executed_notebook(source, recorded)

    nbformat.validate(result)
    code = [cell for cell in result.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == [1, None, 2]
    assert code[0].outputs[0].text == "a\n"
    assert code[1].outputs == []
    assert code[2].outputs[0].execution_count == 2
    assert code[2].outputs[0].data == {"text/plain": "2"}
    assert source.cells[2].outputs[0].text == "old\n"
    assert result.metadata["kernelspec"]["name"] == "python3"
    assert result.metadata["language_info"]["pygments_lexer"] == "ipython3"


def test_to_nbformat_output_keeps_error_fields() -> None:
    output = to_nbformat_output(nbval_output("error", ename="ValueError", evalue="bad", traceback=["line"]))
    assert (output.output_type, output.ename, output.evalue, output.traceback) == ("error", "ValueError", "bad", ["line"])


def test_to_nbformat_output_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="clear_output"):
        to_nbformat_output(nbval_output("clear_output"))


def test_nbval_run_saves_executed_notebook(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 6 * 7\nprint(x)"),
        nbformat.v4.new_code_cell("raise ValueError('expected failure')"),
    ])
    notebook.metadata["kernelspec"] = {"name": "someones-venv", "display_name": "x", "language": "python"}
    nbformat.write(notebook, str(tmp_path / "00_probe.ipynb"))
    captured = tmp_path / "executed"

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.nbval_capture", "--nbval-capture-dir", str(captured),
         "--nbval-lax", "--nbval-kernel-name", "python3", "--nbval-cell-timeout", "60",
         "-p", "no:cacheprovider", "-q", str(tmp_path / "00_probe.ipynb")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )

    assert run.returncode == 1, run.stdout + run.stderr
    saved = nbformat.read(str(captured / "00_probe.ipynb"), as_version=4)
    first, second = saved.cells
    assert first.outputs[0].text == "42\n"
    assert second.outputs[0].output_type == "error"
    assert second.outputs[0].evalue == "expected failure"
