"""pytest plugin: save the notebooks that nbval executed, with the outputs it produced.

Load it with `-p tests.nbval_capture --nbval-capture-dir DIR` next to `--nbval-lax`. After
each notebook's last cell has run, the plugin writes DIR/<notebook name> with, for every
code cell, the outputs of this run (nbval keeps them in IPyNbCell.test_outputs) and an
execution count. A cell that did not run (skipped with nbval-skip) is saved with no
output and no execution count. The book is then built from DIR, so the test run and the
book show the same execution and each notebook runs once.

At session start the plugin deletes the *.ipynb files already in DIR, so a notebook that
did not run in this session cannot slip into the book from an earlier run.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.ipkernel import IPythonKernel
from nbval.plugin import IPyNbCell, IPyNbFile

# The kernel that runs the notebooks: nbval is always started with --nbval-kernel-name
# python3, which is ipykernel on this interpreter. Its language_info tells the book to
# highlight code as IPython, so cells with `!pip` or `%magic` lines render without warnings.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

# Output fields that nbformat v4 allows for each output type; nbval may add others.
OUTPUT_FIELDS = {
    "stream": ("name", "text"),
    "display_data": ("data", "metadata"),
    "execute_result": ("data", "metadata", "execution_count"),
    "error": ("ename", "evalue", "traceback"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("nbval").addoption(
        "--nbval-capture-dir",
        default=None,
        help="folder where each notebook executed by nbval is saved with this run's outputs",
    )


def to_nbformat_output(output: dict[str, Any]) -> nbformat.NotebookNode:
    """Convert one output recorded by nbval into a valid nbformat v4 output node."""
    output_type = output["output_type"]
    if output_type not in OUTPUT_FIELDS:
        raise ValueError(f"invalid output type {output_type!r} recorded by nbval: expected one of {sorted(OUTPUT_FIELDS)}")
    fields = {key: copy.deepcopy(output[key]) for key in OUTPUT_FIELDS[output_type] if key in output}
    return nbformat.v4.new_output(output_type, **fields)


def executed_notebook(notebook: nbformat.NotebookNode, cell_outputs: dict[int, list | None]) -> nbformat.NotebookNode:
    """Return a copy of notebook whose code cells carry the recorded outputs.

    The copy's kernelspec and language_info metadata name the python3 kernel that ran it.

    Args:
        notebook: the notebook as nbval read it (not mutated).
        cell_outputs: nbval's cell number (index among code cells) to the outputs recorded
            for it, or None when the cell did not run. Missing numbers count as not run.
    """
    result = copy.deepcopy(notebook)
    result.metadata["kernelspec"] = dict(KERNELSPEC)
    result.metadata["language_info"] = copy.deepcopy(IPythonKernel.language_info)
    code_cells = [cell for cell in result.cells if cell.cell_type == "code"]
    count = 0
    for number, cell in enumerate(code_cells):
        outputs = cell_outputs.get(number)
        if outputs is None:
            cell.outputs, cell.execution_count = [], None
            continue
        count += 1
        cell.execution_count = count
        cell.outputs = [to_nbformat_output(output) for output in outputs]
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
    return result


def write_notebook(notebook: nbformat.NotebookNode, path: Path) -> None:
    """Validate notebook and write it to path through a temporary file, so a reader never sees half a file."""
    nbformat.validate(notebook)
    temporary = path.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, str(temporary))
    os.replace(temporary, path)


class NotebookRecorder:
    """Collects the outputs of the cells of each nbval notebook and writes the notebook when it ends."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.outputs: dict[IPyNbFile, dict[int, list | None]] = {}

    def record(self, cell: IPyNbCell) -> None:
        """Store the outputs nbval recorded for cell (None if the cell did not run)."""
        self.outputs.setdefault(cell.parent, {})[cell.cell_num] = cell.test_outputs

    def write(self, notebook_item: IPyNbFile) -> Path:
        """Write the executed copy of a notebook to the output folder and forget its outputs."""
        path = self.output_dir / Path(str(notebook_item.fspath)).name
        write_notebook(executed_notebook(notebook_item.nb, self.outputs.pop(notebook_item, {})), path)
        return path


RECORDER_KEY = pytest.StashKey[NotebookRecorder]()


def pytest_configure(config: pytest.Config) -> None:
    capture_dir = config.getoption("nbval_capture_dir")
    if capture_dir is None:
        return
    output_dir = Path(capture_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob("*.ipynb"):
        stale.unlink()
    config.stash[RECORDER_KEY] = NotebookRecorder(output_dir)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    recorder = item.config.stash.get(RECORDER_KEY, None)
    if recorder is None or not isinstance(item, IPyNbCell):
        return
    recorder.record(item)
    if nextitem is None or nextitem.parent is not item.parent:
        recorder.write(item.parent)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the notebooks left unfinished, for example after an interrupt or --maxfail."""
    recorder = session.config.stash.get(RECORDER_KEY, None)
    if recorder is None:
        return
    for notebook_item in list(recorder.outputs):
        recorder.write(notebook_item)
