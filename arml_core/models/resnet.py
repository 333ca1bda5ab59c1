"""ResNet-18 backbone from torchvision, with ImageNet weights read only from a local file.

The multi-label (CelebA) and domain-generalisation (PACS) experiments use ResNet-18. This
module never downloads anything. Pretrained weights come from a file the user placed on
disk, in torchvision's state-dict format (keys such as ``conv1.weight``,
``layer1.0.bn1.running_mean`` and ``fc.weight``). One such file is the one that
``torchvision.models.resnet18(weights="DEFAULT")`` caches under
``~/.cache/torch/hub/checkpoints/`` on a machine with internet access.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

logger = logging.getLogger(__name__)

RESNET18_FEATURE_DIM = 512
_MAX_KEYS_LISTED = 5


def resnet18_backbone(weights_path: str | Path | None = None, in_channels: int = 3) -> nn.Module:
    """Build torchvision's ResNet-18 with ``fc`` replaced by identity: (B, C, H, W) -> (B, 512).

    The returned module is a ``torchvision.models.ResNet`` with an int attribute
    ``feature_dim`` = 512, so its state-dict keys stay torchvision's. With ``weights_path``,
    the weights are loaded from that file with ``torch.load(weights_only=True)``. The ``fc.*``
    entries are dropped, and every other key must match the model exactly (names and shapes).
    ``in_channels`` other than 3 replaces the first convolution, which then cannot take
    3-channel ImageNet weights.

    Raises:
        FileNotFoundError: ``weights_path`` does not exist.
        ValueError: the file is not a state dict of tensors, or its keys or shapes do not
            match ResNet-18 (a few offending keys are listed).
    """
    model = resnet18(weights=None)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Identity()
    model.feature_dim = RESNET18_FEATURE_DIM

    if weights_path is not None:
        state = _read_state_dict(Path(weights_path))
        _check_keys_and_shapes(model, state, Path(weights_path))
        model.load_state_dict(state, strict=True)
        logger.info("loaded ResNet-18 weights from %s (%d tensors)", weights_path, len(state))
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a torchvision-format state dict from ``path`` and drop the classifier (``fc.*``)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"ResNet-18 weights file not found: {path}. Nothing is downloaded at run time: copy "
            f"torchvision's resnet18 ImageNet state dict (resnet18-*.pth) to this path, or pass "
            f"weights_path=None to start from random weights."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{path} could not be loaded as a state dict with torch.load(weights_only=True): {error}. "
            f"Save the weights with torch.save(model.state_dict(), path), not the whole model."
        ) from error

    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = list(state)[:_MAX_KEYS_LISTED] if isinstance(state, dict) else []
        raise ValueError(
            f"{path} does not contain a flat state dict of tensors (type {type(state).__name__}, "
            f"first keys {keys}). If it is a training checkpoint, save its model state dict alone."
        )
    return {key: value for key, value in state.items() if not key.startswith("fc.")}


def _check_keys_and_shapes(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise ValueError naming a few missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    if not (missing or unexpected or mismatched):
        return

    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:_MAX_KEYS_LISTED]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:_MAX_KEYS_LISTED]}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches, e.g. {mismatched[:_MAX_KEYS_LISTED]}")
    hint = "Expected a torchvision resnet18 state dict (keys like 'conv1.weight', 'layer1.0.bn1.weight')."
    if unexpected and all(key.startswith("module.") for key in unexpected):
        hint += " The keys start with 'module.' (saved from DataParallel): strip that prefix."
    raise ValueError(f"weights in {path} do not match ResNet-18: {'; '.join(problems)}. {hint}")
