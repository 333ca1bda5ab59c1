"""Validated headless execution of a notebook with papermill.

papermill alone injects a misspelled parameter with only a warning, passes a value of the
wrong type silently, and ignores every injected value when no cell is tagged ``parameters``.
This runner reads the tagged cell first (with ``ast``: assignments of literals, whose values
give the expected types), rejects bad parameters before any kernel starts, then executes on
the ``python3`` kernel whatever the notebook's metadata names.

Command line::

    python -m arml_core.run NOTEBOOK -f PARAMS.yml --output DIR [-p NAME VALUE ...] [--timeout S]

``-p`` values are read as YAML, so ``-p seeds "[0, 1]"`` gives a list. A notebook that
declares a parameter named ``output_dir`` receives the output folder unless it is set.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
import yaml

from arml_core.results import write_text_atomic

logger = logging.getLogger(__name__)

KERNEL_NAME = "python3"
PARAMETERS_FILE = "parameters.yml"
OUTPUT_DIR_PARAMETER = "output_dir"
TIMEOUT_GRACE_S = 15.0


class ParameterError(ValueError):
    """A parameter that the notebook does not declare, or a value of the wrong type."""


class NotebookExecutionError(RuntimeError):
    """A notebook cell raised, or the run exceeded its timeout."""


def read_parameter_defaults(notebook: str | Path) -> dict[str, Any]:
    """Return ``{name: default}`` from the notebook's cell tagged ``parameters``.

    Only assignments of literals (``name = <literal>``, optionally annotated) count.
    Raises ParameterError when no cell is tagged ``parameters``.
    """
    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ParameterError(
            f"{notebook} has no cell tagged 'parameters', so papermill would ignore every "
            "injected value; add the tag 'parameters' to the cell that sets the defaults"
        )
    defaults: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        try:
            defaults[target.id] = ast.literal_eval(value)
        except ValueError:
            logger.warning("parameter %r in %s is not a literal; it cannot be set", target.id, notebook)
    return defaults


def _type_name(value: Any) -> str:
    return type(value).__name__


def _with_article(type_name: str) -> str:
    return f"an {type_name}" if type_name[0] in "aeiou" else f"a {type_name}"


def _looks_like_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_value(name: str, value: Any, default: Any) -> Any:
    """Convert ``value`` to the type of ``default``, or raise ParameterError.

    An int is accepted (and converted) where a float is expected, and a list where a tuple
    is expected. A bool is never accepted as a number. A default of None accepts any value.
    """
    if default is None or type(value) is type(default):
        return value
    expected = _with_article(_type_name(default))
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple) and isinstance(value, list):
        return value
    if isinstance(value, str) and isinstance(default, float) and _looks_like_float(value):
        raise ParameterError(
            f"parameter {name!r} expects a float but got the string {value!r}; YAML reads "
            f"exponents without a dot as strings, so write {float(value):.1e}"
        )
    if isinstance(value, str) and isinstance(default, (list, tuple, dict)):
        raise ParameterError(
            f"parameter {name!r} expects {expected} but got the string {value!r}; write it as "
            f"YAML ({_type_name(default)}) in the parameter file (for example {default!r}), and on the "
            f"command line quote it: -p {name} '{default!r}'"
        )
    if isinstance(value, bool) and isinstance(default, (int, float)):
        raise ParameterError(
            f"parameter {name!r} expects {expected} but got the bool {value!r}; write a number"
        )
    raise ParameterError(
        f"parameter {name!r} expects {expected} (default {default!r}) but got "
        f"{_type_name(value)} {value!r}"
    )


def validate_parameters(notebook: str | Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's tagged cell and return the converted values.

    Raises ParameterError naming the first unknown parameter (with the closest valid name)
    or the first value of the wrong type.
    """
    defaults = read_parameter_defaults(notebook)
    checked: dict[str, Any] = {}
    for name, value in parameters.items():
        if name not in defaults:
            close = difflib.get_close_matches(name, list(defaults), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(sorted(defaults))
            raise ParameterError(
                f"unknown parameter {name!r} for {notebook}{hint}. Valid names: {valid}. A parameter "
                "file must belong to this notebook (see the comment at the top of the file)"
            )
        checked[name] = check_value(name, value, defaults[name])
    return checked


def load_parameter_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of parameter names to values; an empty file gives {}."""
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"parameter file {path} not found; the paper-scale files are in notebooks/params/"
        )
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(f"{path} must contain a YAML mapping of name: value, got {_type_name(data)}")
    return data


def describe_failed_cell(executed: str | Path) -> str | None:
    """Return a short message for the first cell with an error output, or None if none failed.

    The cell number counts from 1 over all cells of the input notebook (markdown included),
    so the cell papermill injects with the parameters is not counted.
    """
    nb = nbformat.read(str(executed), as_version=4)
    number = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or cell.get("id") == "papermill-error-cell":
            continue
        if "papermill-error-cell-tag" in tags:
            continue
        number += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return (
                    f"cell {number} (execution count {cell.get('execution_count')}) failed with "
                    f"{output.get('ename')}: {output.get('evalue')}; the executed notebook with "
                    f"the traceback is {executed}"
                )
    return None


def _execute(notebook: Path, executed: Path, parameters: dict[str, Any], log_output: bool) -> None:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(notebook), str(executed), parameters=parameters, kernel_name=KERNEL_NAME,
            progress_bar=True, log_output=log_output, cwd=str(notebook.parent),
        )
    except PapermillExecutionError as error:
        message = describe_failed_cell(executed) or f"a cell failed with {error.ename}: {error.evalue}"
        raise NotebookExecutionError(f"{notebook}: {message}") from None


def _execute_with_timeout(
    notebook: Path, output_dir: Path, timeout_s: float, log_output: bool
) -> None:
    """Run the command-line runner in a child process and stop it after ``timeout_s`` seconds.

    The child gets SIGTERM, then SIGKILL after a grace period. Its kernel runs in its own
    session, so no signal reaches it; ipykernel shuts itself down once it sees its parent exit.
    """
    command = [sys.executable, "-m", "arml_core.run", str(notebook), "-f",
               str(output_dir / PARAMETERS_FILE), "--output", str(output_dir)]
    if not log_output:
        command.append("--no-log-output")
    child = subprocess.Popen(command)
    try:
        code = child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=TIMEOUT_GRACE_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise NotebookExecutionError(
            f"{notebook} timed out after {timeout_s:g} s and was stopped; raise the timeout "
            "or choose smaller parameters"
        ) from None
    if code != 0:
        executed = output_dir / notebook.name
        message = describe_failed_cell(executed) if executed.exists() else None
        raise NotebookExecutionError(f"{notebook}: {message or f'runner exited with code {code}'}")


def run_notebook(
    notebook: str | Path,
    parameters: Mapping[str, Any],
    output_dir: str | Path,
    timeout_s: float | None = None,
    log_output: bool = True,
) -> Path:
    """Validate ``parameters``, execute ``notebook`` and return the executed notebook's path.

    Writes ``output_dir/<notebook name>`` (the executed copy) and ``output_dir/parameters.yml``
    (the validated values). Raises ParameterError before any kernel starts, and
    NotebookExecutionError when a cell fails (naming the cell) or ``timeout_s`` passes.
    """
    notebook = Path(notebook).resolve()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} not found; paths are relative to {Path.cwd()}")
    output_dir = Path(output_dir).resolve()
    values = validate_parameters(notebook, parameters)
    defaults = read_parameter_defaults(notebook)
    if OUTPUT_DIR_PARAMETER in defaults and OUTPUT_DIR_PARAMETER not in values:
        values[OUTPUT_DIR_PARAMETER] = str(output_dir)

    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / PARAMETERS_FILE, yaml.safe_dump(values, sort_keys=True))
    logger.info("executing %s into %s with %s", notebook, output_dir, values)
    if timeout_s is not None:
        _execute_with_timeout(notebook, output_dir, timeout_s, log_output)
    else:
        _execute(notebook, output_dir / notebook.name, values, log_output)
    return output_dir / notebook.name


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="arml-run", description="Execute a notebook headlessly with validated parameters."
    )
    parser.add_argument("notebook", type=Path, help="notebook to execute")
    parser.add_argument("-f", "--parameters-file", type=Path, help="YAML file of parameter values")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="set one parameter; VALUE is read as YAML")
    parser.add_argument("--output", type=Path, required=True,
                        help="folder for the executed notebook and parameters.yml")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop the whole run after this many seconds (default: no limit)")
    parser.add_argument("--no-log-output", action="store_true",
                        help="do not stream cell outputs to the log")
    return parser.parse_args(argv)


def parse_cli_value(name: str, text: str) -> Any:
    """Read the value of ``-p NAME VALUE`` as YAML; raise ParameterError naming it when invalid."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ParameterError(
            f"parameter {name!r}: {text!r} is not valid YAML ({error.problem or error}); quote lists "
            f"on the command line, for example -p {name} \"[0, 1]\""
        ) from error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``arml-run``; returns 0 on success, 1 on a failed cell, 2 on bad input."""
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        parameters = load_parameter_file(args.parameters_file) if args.parameters_file else {}
        for name, text in args.parameter:
            parameters[name] = parse_cli_value(name, text)
        run_notebook(args.notebook, parameters, args.output, timeout_s=args.timeout,
                     log_output=not args.no_log_output)
    except (ParameterError, FileNotFoundError) as error:
        logger.error("%s", error)
        return 2
    except NotebookExecutionError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
