"""Auxiliary tasks, each turning a batch of images into a loss on its own head."""

from __future__ import annotations

import importlib
from typing import Any

from arml_core.tasks.base import AuxTask
from arml_core.tasks.random_label import RandomLabelTask
from arml_core.tasks.rotation import RotationTask

# name -> (module, class); imported on first use.
AUX_TASKS: dict[str, tuple[str, str]] = {
    "rotation": ("arml_core.tasks.rotation", "RotationTask"),
    "random_label": ("arml_core.tasks.random_label", "RandomLabelTask"),
    "exemplar": ("arml_core.tasks.exemplar", "ExemplarMTTask"),
}


def make_aux_task(name: str, **options: Any) -> AuxTask:
    """Build the auxiliary task registered under ``name``."""
    if name not in AUX_TASKS:
        raise ValueError(f"unknown auxiliary task {name!r}; valid names are: {', '.join(sorted(AUX_TASKS))}")
    module_name, class_name = AUX_TASKS[name]
    return getattr(importlib.import_module(module_name), class_name)(**options)


__all__ = ["AUX_TASKS", "AuxTask", "RandomLabelTask", "RotationTask", "make_aux_task"]
