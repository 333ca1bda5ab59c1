"""Execute every chapter notebook with papermill at its default parameters.

Each notebooks/[0-9]*.ipynb runs on the `python3` kernel (never the kernel name stored in
the notebook, which may name someone's virtual environment), with the notebook's folder
as working directory, as Jupyter and nbval run it. The executed copy goes to the output
folder under the same name, also when the notebook fails, so that its error shows in the
book. Every notebook runs even if an earlier one failed. The failures are listed at the
end, and the exit status is 1 if any notebook failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import papermill

REPO_ROOT = Path(__file__).resolve().parent.parent


def find_notebooks(notebook_dir: Path) -> list[Path]:
    """Return the chapter notebooks of notebook_dir (names starting with a digit), sorted by name."""
    return sorted(notebook_dir.glob("[0-9]*.ipynb"))


def execute_notebook(notebook: Path, output_dir: Path, cell_timeout: float) -> str | None:
    """Execute one notebook into output_dir; return None on success, else a one-line reason."""
    output = output_dir / notebook.name
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            kernel_name="python3",
            cwd=str(notebook.parent),
            execution_timeout=cell_timeout,
            progress_bar=False,
        )
    except papermill.PapermillExecutionError as error:
        return f"cell {error.exec_count} raised {error.ename}: {error.evalue}"
    except Exception as error:  # a dead kernel or a cell timeout surfaces as other errors
        return f"{type(error).__name__}: {error}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=REPO_ROOT / "notebooks",
                        help="folder of the chapter notebooks (default: notebooks)")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "_build" / "executed",
                        help="folder for the executed copies, emptied of notebooks first (default: _build/executed)")
    parser.add_argument("--cell-timeout", type=float, default=1200.0,
                        help="seconds one cell may run before it fails (default: 1200)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    notebooks = find_notebooks(args.notebooks)
    if not notebooks:
        print(f"execute_notebooks: no notebook matches {args.notebooks}/[0-9]*.ipynb", file=sys.stderr)
        return 1

    args.output.mkdir(parents=True, exist_ok=True)
    for stale in args.output.glob("*.ipynb"):
        stale.unlink()

    failures = {}
    for notebook in notebooks:
        print(f"execute_notebooks: running {notebook.name}", flush=True)
        start = time.perf_counter()
        reason = execute_notebook(notebook, args.output, args.cell_timeout)
        status = "ok" if reason is None else f"FAILED: {reason}"
        print(f"execute_notebooks: {notebook.name} {status} ({time.perf_counter() - start:.0f} s)", flush=True)
        if reason is not None:
            failures[notebook.name] = reason

    print(f"execute_notebooks: {len(notebooks) - len(failures)} of {len(notebooks)} notebooks ran without error")
    for name, reason in failures.items():
        print(f"execute_notebooks: FAILED {name}: {reason}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
