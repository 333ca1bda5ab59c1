"""Task-weighting methods behind one interface, built by name with ``make_weighter``."""

from __future__ import annotations

import difflib

from typing import Any

from arml_core.weighting.adaloss import AdaLoss
from arml_core.weighting.arml import ARML
from arml_core.weighting.base import StepInfo, Weighter
from arml_core.weighting.cosine import CosineSim
from arml_core.weighting.gradnorm import GradNorm
from arml_core.weighting.ol_aux import OLAux
from arml_core.weighting.simplex import project_to_simplex, shift_then_clamp
from arml_core.weighting.uncertainty import UncertaintyWeighting
from arml_core.weighting.uniform import FixedWeights, SupervisedOnly, Uniform

WEIGHTERS: dict[str, type[Weighter]] = {
    "supervised": SupervisedOnly,
    "uniform": Uniform,
    "fixed": FixedWeights,
    "arml": ARML,
    "adaloss": AdaLoss,
    "uncertainty": UncertaintyWeighting,
    "gradnorm": GradNorm,
    "cosine": CosineSim,
    "ol_aux": OLAux,
}


def make_weighter(name: str, num_aux: int, **options: Any) -> Weighter:
    """Build the weighter registered under ``name`` (case-insensitive) with its options."""
    key = name.lower()
    if key not in WEIGHTERS:
        valid = ", ".join(sorted(WEIGHTERS))
        close = difflib.get_close_matches(key, list(WEIGHTERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown weighting method {name!r}{hint}; valid names are: {valid}")
    return WEIGHTERS[key](num_aux, **options)


__all__ = [
    "ARML", "AdaLoss", "CosineSim", "FixedWeights", "GradNorm", "OLAux", "StepInfo",
    "SupervisedOnly", "UncertaintyWeighting", "Uniform", "WEIGHTERS", "Weighter",
    "make_weighter", "project_to_simplex", "shift_then_clamp",
]
