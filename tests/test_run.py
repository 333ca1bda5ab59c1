"""Tests for the validated papermill runner: parameter checks, execution, failures, timeout."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from arml_core.run import (
    NotebookExecutionError,
    ParameterError,
    main,
    read_parameter_defaults,
    run_notebook,
    validate_parameters,
)

NOTEBOOKS = Path(__file__).parent / "notebooks"
TINY = NOTEBOOKS / "tiny_params.ipynb"
NO_PARAMETERS = NOTEBOOKS / "tiny_no_parameters.ipynb"


def test_defaults_read_from_tagged_cell() -> None:
    defaults = read_parameter_defaults(TINY)
    assert defaults["lr"] == 0.01
    assert defaults["num_epochs"] == 3
    assert defaults["seeds"] == [0, 1]
    assert defaults["use_noise"] is True
    assert defaults["options"] == {"a": 1}


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(TINY, {"num_epoch": 5})
    message = str(info.value)
    assert "'num_epoch'" in message
    assert "did you mean 'num_epochs'" in message


def test_list_given_as_string_rejected() -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(TINY, {"seeds": "[0, 1, 2]"})
    message = str(info.value)
    assert "'seeds'" in message
    assert "expects a list" in message


def test_exponent_string_says_write_dot() -> None:
    value = yaml.safe_load("lr: 1e-3")["lr"]
    assert value == "1e-3"  # PyYAML's YAML 1.1 resolver: no dot means a string
    with pytest.raises(ParameterError) as info:
        validate_parameters(TINY, {"lr": value})
    message = str(info.value)
    assert "'lr'" in message
    assert "1.0e-03" in message


def test_missing_parameters_cell_rejected() -> None:
    with pytest.raises(ParameterError, match="no cell tagged 'parameters'"):
        validate_parameters(NO_PARAMETERS, {"lr": 0.1})


@pytest.mark.parametrize("name", ["num_epochs", "lr"])
def test_bool_for_number_rejected(name: str) -> None:
    with pytest.raises(ParameterError) as info:
        validate_parameters(TINY, {name: True})
    assert repr(name) in str(info.value)
    assert "bool" in str(info.value)


def test_float_for_int_rejected() -> None:
    with pytest.raises(ParameterError, match="'num_epochs' expects an int"):
        validate_parameters(TINY, {"num_epochs": 2.5})


def test_int_accepted_for_float() -> None:
    checked = validate_parameters(TINY, {"lr": 1, "num_epochs": 7, "use_noise": False})
    assert checked["lr"] == 1.0
    assert isinstance(checked["lr"], float)
    assert checked["num_epochs"] == 7
    assert checked["use_noise"] is False


def test_rejection_happens_before_kernel(tmp_path: Path) -> None:
    with pytest.raises(ParameterError):
        run_notebook(TINY, {"lrr": 0.1}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_exit_code_two_on_bad_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yml"
    params.write_text("lr: 1e-3\n")
    code = main([str(TINY), "-f", str(params), "--output", str(tmp_path / "out")])
    assert code == 2


def test_run_executes_and_writes_outputs(tmp_path: Path) -> None:
    output = tmp_path / "out"
    executed = run_notebook(TINY, {"lr": 0.5, "method": "arml", "seed": 2}, output, log_output=False)
    assert executed == output / TINY.name
    # The input names a kernel that does not exist here; the run succeeds on python3.
    assert nbformat.read(TINY, as_version=4).metadata["kernelspec"]["name"] == "someones-venv"
    nb = nbformat.read(executed, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "lr=0.5 num_epochs=3 method=arml" in printed
    saved = yaml.safe_load((output / "parameters.yml").read_text())
    assert saved["output_dir"] == str(output.resolve())
    assert saved["lr"] == 0.5
    record = json.loads((output / "record.json").read_text())
    assert record["metrics"]["test_error"] == pytest.approx(0.3)


def test_failing_cell_named_in_exit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    params = tmp_path / "params.yml"
    params.write_text("fail: true\n")
    code = main([str(TINY), "-f", str(params), "-p", "seeds", "[3, 4]",
                 "--output", str(tmp_path / "out"), "--no-log-output"])
    assert code == 1
    message = caplog.text
    assert "cell 4 " in message
    assert "ValueError: deliberate failure" in message
    saved = yaml.safe_load((tmp_path / "out" / "parameters.yml").read_text())
    assert saved["seeds"] == [3, 4]


def test_outer_timeout_stops_run(tmp_path: Path) -> None:
    with pytest.raises(NotebookExecutionError, match="timed out after 6 s"):
        run_notebook(TINY, {"sleep_s": 60.0}, tmp_path / "out", timeout_s=6, log_output=False)


def test_invalid_yaml_on_command_line_names_parameter():
    from arml_core.run import ParameterError, parse_cli_value

    with pytest.raises(ParameterError, match="parameter 'seeds': '\\[0' is not valid YAML"):
        parse_cli_value("seeds", "[0")
    assert parse_cli_value("seeds", "[0, 1]") == [0, 1]


def test_missing_parameter_file_says_where_files_are(tmp_path):
    from arml_core.run import load_parameter_file

    with pytest.raises(FileNotFoundError, match="notebooks/params/"):
        load_parameter_file(tmp_path / "nope.yml")
