"""Backbones and the multi-head wrapper, built by name with ``make_backbone``."""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from arml_core.models.multihead import MultiHead, linear_head
from arml_core.models.small_cnn import SmallCNN

# name -> (module, factory); modules are imported on first use so that optional models stay cheap.
BACKBONES: dict[str, tuple[str, str]] = {
    "small_cnn": ("arml_core.models.small_cnn", "SmallCNN"),
    "wrn28_2": ("arml_core.models.wrn", "wrn28_2"),
    "resnet18": ("arml_core.models.resnet", "resnet18_backbone"),
}


def make_backbone(name: str, **options: Any) -> nn.Module:
    """Build the backbone registered under ``name``; the result has an int ``feature_dim``."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; valid names are: {', '.join(sorted(BACKBONES))}")
    module_name, factory_name = BACKBONES[name]
    factory = getattr(importlib.import_module(module_name), factory_name)
    return factory(**options)


__all__ = ["BACKBONES", "MultiHead", "SmallCNN", "linear_head", "make_backbone"]
