"""Store the outputs of a notebook's compared cells in its source, from an executed copy.

nbval (with --nbval-lax) compares only cells tagged ``nbval-check-output``, against the outputs
stored in the committed notebook. After a change to a chapter, run

    python tools/refresh_outputs.py notebooks/00_quickstart.ipynb

to execute it with papermill at its defaults (kernel python3) and copy the outputs and
execution counts of the tagged cells into the source. nbval treats a stored output without an
execution count as a cell that never ran, so the counts are kept. Every other cell is left
without outputs, to keep the repository small. ``--executed PATH`` reuses an executed copy.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

CHECK_TAG = "nbval-check-output"


def refresh(source: Path, executed: Path) -> int:
    """Copy the tagged cells' outputs from ``executed`` into ``source``; return how many cells."""
    notebook = nbformat.read(source, as_version=4)
    ran = nbformat.read(executed, as_version=4)
    ran_cells = {cell.get("id"): cell for cell in ran.cells}
    copied = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        match = ran_cells.get(cell.get("id"))
        if CHECK_TAG in tags:
            if match is None:
                raise SystemExit(f"{executed} has no cell with id {cell.get('id')}; execute {source} again")
            cell.outputs = match.outputs
            cell.execution_count = match.execution_count
            copied += 1
        else:
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
    notebook.metadata.pop("papermill", None)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path, help="source notebook to update in place")
    parser.add_argument("--executed", type=Path, help="an executed copy to read outputs from (default: execute now)")
    parser.add_argument("--cwd", type=Path, help="working folder for the execution (default: a temporary folder)")
    args = parser.parse_args(argv)

    executed = args.executed
    if executed is None:
        workdir = Path(tempfile.mkdtemp(prefix="refresh-"))
        executed = workdir / args.notebook.name
        papermill.execute_notebook(
            str(args.notebook), str(executed), kernel_name="python3", cwd=str(args.cwd or workdir)
        )
    copied = refresh(args.notebook, executed)
    print(f"{args.notebook}: stored the outputs of {copied} compared cells")
    return 0


if __name__ == "__main__":
    sys.exit(main())
