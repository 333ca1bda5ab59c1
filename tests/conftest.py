"""Shared pytest fixtures: every test starts from the same seeds on one CPU thread."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

# CPU results change with the number of threads, and CI runs on two shared cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fixed_seeds() -> None:
    """Seed Python's, NumPy's and torch's global generators with 0 before each test."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder (the one holding pyproject.toml)."""
    return Path(__file__).resolve().parent.parent
