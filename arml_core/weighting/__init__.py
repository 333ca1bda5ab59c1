"""Task-weighting methods behind one interface, built by name with ``make_weighter``."""

from __future__ import annotations

from typing import Any

from arml_core.weighting.arml import ARML
from arml_core.weighting.base import StepInfo, Weighter
from arml_core.weighting.simplex import project_to_simplex, shift_then_clamp
from arml_core.weighting.uniform import FixedWeights, SupervisedOnly, Uniform

WEIGHTERS: dict[str, type[Weighter]] = {
    "supervised": SupervisedOnly,
    "uniform": Uniform,
    "fixed": FixedWeights,
    "arml": ARML,
}


def make_weighter(name: str, num_aux: int, **options: Any) -> Weighter:
    """Build the weighter registered under ``name`` (case-insensitive) with its options."""
    key = name.lower()
    if key not in WEIGHTERS:
        valid = ", ".join(sorted(WEIGHTERS))
        raise ValueError(f"unknown weighting method {name!r}; valid names are: {valid}")
    return WEIGHTERS[key](num_aux, **options)


__all__ = [
    "ARML", "FixedWeights", "StepInfo", "SupervisedOnly", "Uniform", "WEIGHTERS", "Weighter",
    "make_weighter", "project_to_simplex", "shift_then_clamp",
]
