"""environment.yml and pyproject.toml must pin the same packages to the same versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent


def pyproject_pins(pyproject: dict) -> dict[str, SpecifierSet]:
    """Return name -> specifier for the dependencies and every extra, self-references expanded.

    `arml_core[book]` inside an extra stands for the requirements of that extra.
    """
    project = pyproject["project"]
    own_name = canonicalize_name(project["name"])
    extras = project.get("optional-dependencies", {})
    pins: dict[str, SpecifierSet] = {}

    def add(requirements: list[str]) -> None:
        for line in requirements:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == own_name:
                for extra in sorted(requirement.extras):
                    add(extras[extra])
                continue
            pins[canonicalize_name(requirement.name)] = requirement.specifier

    add(project["dependencies"])
    for extra in sorted(extras):
        add(extras[extra])
    return pins


def environment_pins(environment: dict) -> tuple[dict[str, str], dict[str, SpecifierSet], list[str]]:
    """Split environment.yml into conda specs (name -> version), pip pins, and pip option lines."""
    conda: dict[str, str] = {}
    pip: dict[str, SpecifierSet] = {}
    options: list[str] = []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            for line in entry["pip"]:
                if line.startswith("-"):
                    options.append(line)
                    continue
                requirement = Requirement(line)
                pip[canonicalize_name(requirement.name)] = requirement.specifier
            continue
        name, _, version = entry.partition("=")
        conda[canonicalize_name(name)] = version
    return conda, pip, options


def pin_differences(expected: dict[str, SpecifierSet], actual: dict[str, SpecifierSet]) -> list[str]:
    """Describe every package missing from one side or pinned differently; empty when they agree."""
    differences = []
    for name in sorted(expected.keys() | actual.keys()):
        if name not in actual:
            differences.append(f"{name}: in pyproject.toml ({expected[name]}) but not in environment.yml")
        elif name not in expected:
            differences.append(f"{name}: in environment.yml ({actual[name]}) but not in pyproject.toml")
        elif expected[name] != actual[name]:
            differences.append(f"{name}: pyproject.toml has {expected[name]}, environment.yml has {actual[name]}")
    return differences


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def test_pip_pins_match_pyproject(pyproject: dict, environment: dict) -> None:
    _, pip, _ = environment_pins(environment)
    assert pin_differences(pyproject_pins(pyproject), pip) == []


def test_conda_part_is_python_and_pip(pyproject: dict, environment: dict) -> None:
    conda, _, _ = environment_pins(environment)
    assert set(conda) == {"python", "pip"}
    python_version = conda["python"]
    assert python_version == "3.11"
    assert SpecifierSet(pyproject["project"]["requires-python"]).contains(f"{python_version}.0")


def test_environment_installs_the_package(environment: dict) -> None:
    _, _, options = environment_pins(environment)
    assert options == ["-e ."]


def test_pyproject_pins_expand_dev_extra(pyproject: dict) -> None:
    pins = pyproject_pins(pyproject)
    assert "arml-core" not in pins
    assert pins["jupyter-book"] == SpecifierSet("==1.0.4.post1")  # from the book extra, through dev
    assert pins["nbval"] == SpecifierSet("==0.11.0")
    assert pins["scikit-learn"] == SpecifierSet("==1.9.*")


def test_names_are_normalised() -> None:
    expected = {canonicalize_name("scikit_learn"): SpecifierSet("==1.9.*")}
    actual = {canonicalize_name("Scikit-Learn"): SpecifierSet("==1.9.*")}
    assert pin_differences(expected, actual) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"torch": "==2.13.0"}, "torch: pyproject.toml has ==2.14.1, environment.yml has ==2.13.0"),
        ({"numpy": None}, "numpy: in pyproject.toml (==2.4.*) but not in environment.yml"),
        ({"polars": "==1.0.0"}, "polars: in environment.yml (==1.0.0) but not in pyproject.toml"),
    ],
)
def test_one_sided_change_is_reported(pyproject: dict, environment: dict, change: dict, message: str) -> None:
    _, pip, _ = environment_pins(environment)
    for name, specifier in change.items():
        if specifier is None:
            del pip[name]
        else:
            pip[name] = SpecifierSet(specifier)
    assert pin_differences(pyproject_pins(pyproject), pip) == [message]
