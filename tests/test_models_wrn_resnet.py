"""Tests for the WRN-28-2 and ResNet-18 backbones."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

from arml_core.models.resnet import resnet18_backbone
from arml_core.models.wrn import WideBasicBlock, WideResNet, wrn28_2


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


def _bn_params(channels: int) -> int:
    return 2 * channels  # scale and shift


def _conv_params(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel  # no bias


def _expected_wrn_params(depth: int, widen_factor: int, in_channels: int) -> int:
    """Count WRN parameters layer by layer, as in the module docstring's architecture."""
    blocks = (depth - 4) // 6
    widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    total = _conv_params(in_channels, 16, 3)
    for group in range(3):
        in_width, out_width = widths[group], widths[group + 1]
        for block in range(blocks):
            block_in = in_width if block == 0 else out_width
            total += _bn_params(block_in) + _conv_params(block_in, out_width, 3)
            total += _bn_params(out_width) + _conv_params(out_width, out_width, 3)
            if block_in != out_width:
                total += _conv_params(block_in, out_width, 1)
    return total + _bn_params(widths[3])


def test_wrn28_2_output_shape() -> None:
    model = wrn28_2()
    features = model(torch.randn(2, 3, 16, 16))
    assert model.feature_dim == 128
    assert features.shape == (2, 128)


def test_wrn28_2_parameter_count() -> None:
    model = wrn28_2()
    counted = sum(p.numel() for p in model.parameters())
    # By hand: stem 432; group 1: 14,432 + 3 x 18,560; group 2: 57,536 + 3 x 73,984;
    # group 3: 229,760 + 3 x 295,424; final batch norm 256.
    by_hand = 432 + (14_432 + 3 * 18_560) + (57_536 + 3 * 73_984) + (229_760 + 3 * 295_424) + 256
    assert by_hand == 1_466_320
    assert _expected_wrn_params(28, 2, 3) == by_hand
    assert counted == by_hand
    # With the 10-class linear classifier of the reference model: about 1.47M.
    assert counted + 128 * 10 + 10 == 1_467_610


def test_wrn_general_parameter_count() -> None:
    model = WideResNet(depth=16, widen_factor=4, in_channels=1)
    assert sum(p.numel() for p in model.parameters()) == _expected_wrn_params(16, 4, 1)
    assert model.feature_dim == 256


@pytest.mark.parametrize(("slope", "momentum"), [(0.1, 0.001), (0.2, 0.05)])
def test_wrn_slope_and_momentum_everywhere(slope: float, momentum: float) -> None:
    model = wrn28_2(bn_momentum=momentum, leaky_slope=slope)
    activations = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 2 * 12 + 1
    assert len(activations) == 2 * 12 + 1
    assert not any(isinstance(m, (nn.ReLU, nn.ReLU6)) for m in model.modules())
    for activation in activations:
        assert activation.negative_slope == slope
    for norm in norms:
        assert norm.momentum == momentum
        assert norm.eps == 1e-3
        assert norm.affine


def test_wrn_default_matches_reference_decay() -> None:
    # TensorFlow decay 0.999 -> PyTorch momentum 1 - 0.999.
    norms = [m for m in wrn28_2().modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(math.isclose(norm.momentum, 1 - 0.999) for norm in norms)


def test_wrn_running_mean_uses_momentum() -> None:
    model = wrn28_2(bn_momentum=0.25)
    images = torch.randn(4, 3, 8, 8)
    stem_output = model.stem(images).detach()
    model.train()
    model(images)
    first_norm = model.groups[0][0].bn1
    expected = 0.25 * stem_output.mean(dim=(0, 2, 3))
    torch.testing.assert_close(first_norm.running_mean, expected)


def test_wrn_rejects_bad_depth() -> None:
    for depth in (27, 30, 4, 0):
        with pytest.raises(ValueError, match=f"depth={depth}"):
            WideResNet(depth=depth, widen_factor=2)


def test_wrn_rejects_bad_width() -> None:
    with pytest.raises(ValueError, match="widen_factor"):
        WideResNet(depth=28, widen_factor=0)


def test_wrn_convs_have_no_bias_and_he_init() -> None:
    model = wrn28_2()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 2 * 12 + 3
    assert all(conv.bias is None for conv in convs)
    last_conv = model.groups[2][3].conv2
    expected_std = math.sqrt(2.0 / (3 * 3 * 128))
    assert abs(last_conv.weight.std().item() / expected_std - 1) < 0.02


def test_wrn_downsampling_and_shortcuts() -> None:
    model = WideResNet(depth=10, widen_factor=1, in_channels=1)
    out = model.groups(model.stem(torch.randn(2, 1, 8, 8)))
    assert out.shape == (2, 64, 2, 2)
    assert isinstance(model.groups[0][0].shortcut, nn.Identity)  # 16 -> 16 channels
    assert isinstance(model.groups[1][0].shortcut, nn.Conv2d)
    assert model.groups[1][0].shortcut.stride == (2, 2)


def test_wrn_only_first_block_activates_shortcut() -> None:
    blocks = [block for group in wrn28_2().groups for block in group]
    assert [block.activate_shortcut for block in blocks] == [True] + [False] * 11


def test_projection_shortcut_takes_raw_input() -> None:
    block = WideBasicBlock(2, 4, 2, False, bn_momentum=0.1, bn_eps=1e-3, leaky_slope=0.1)
    nn.init.zeros_(block.conv2.weight)
    x = torch.randn(2, 2, 6, 6)
    expected = nn.functional.conv2d(x, block.shortcut.weight, stride=2)
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("activate_shortcut", [True, False])
def test_block_shortcut_source(activate_shortcut: bool) -> None:
    block = WideBasicBlock(4, 4, 1, activate_shortcut, bn_momentum=0.1, bn_eps=1e-3, leaky_slope=0.1)
    nn.init.zeros_(block.conv2.weight)  # the residual branch now outputs zero
    block.eval()
    with torch.no_grad():
        block.bn1.running_mean.copy_(torch.tensor([0.5, -0.5, 1.0, 0.0]))
        block.bn1.running_var.copy_(torch.tensor([1.0, 4.0, 0.25, 1.0]))
    x = torch.randn(2, 4, 3, 3)

    out = block(x)

    if activate_shortcut:
        mean = block.bn1.running_mean.view(1, -1, 1, 1)
        var = block.bn1.running_var.view(1, -1, 1, 1)
        normalised = (x - mean) / torch.sqrt(var + 1e-3)
        expected = torch.where(normalised < 0, 0.1 * normalised, normalised)
    else:
        expected = x
    torch.testing.assert_close(out, expected)


def test_resnet18_backbone_shape() -> None:
    model = resnet18_backbone()
    features = model(torch.randn(2, 3, 32, 32))
    assert model.feature_dim == 512
    assert features.shape == (2, 512)
    assert isinstance(model.fc, nn.Identity)


def test_resnet18_one_channel() -> None:
    model = resnet18_backbone(in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 512)


def test_resnet18_loads_local_weights(tmp_path: Path) -> None:
    torch.manual_seed(123)
    source = resnet18(weights=None)
    with torch.no_grad():
        source.bn1.running_mean.uniform_()
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)

    torch.manual_seed(7)
    model = resnet18_backbone(weights_path=str(path))

    loaded = model.state_dict()
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key
    assert isinstance(model.fc, nn.Identity)


def test_resnet18_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pth"
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        resnet18_backbone(weights_path=path)


def test_resnet18_mismatched_keys(tmp_path: Path) -> None:
    state = resnet18(weights=None).state_dict()
    del state["layer1.0.conv1.weight"]
    state["layer9.extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)

    with pytest.raises(ValueError) as error:
        resnet18_backbone(weights_path=path)

    message = str(error.value)
    assert "layer1.0.conv1.weight" in message
    assert "layer9.extra.weight" in message
    assert "1 missing" in message
    assert "1 unexpected" in message


def test_resnet18_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "rgb.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=re.escape("conv1.weight: file (64, 3, 7, 7) vs model (64, 1, 7, 7)")):
        resnet18_backbone(weights_path=path, in_channels=1)


def test_resnet18_dataparallel_prefix_hint(tmp_path: Path) -> None:
    state = {f"module.{k}": v for k, v in resnet18(weights=None).state_dict().items()}
    path = tmp_path / "dp.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="module."):
        resnet18_backbone(weights_path=path)


def test_resnet18_rejects_pickled_model(tmp_path: Path) -> None:
    path = tmp_path / "whole.pth"
    torch.save(resnet18(weights=None), path)
    with pytest.raises(ValueError, match="weights_only"):
        resnet18_backbone(weights_path=path)


def test_resnet18_rejects_nested_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": resnet18(weights=None).state_dict(), "epoch": 3}, path)
    with pytest.raises(ValueError, match="state_dict"):
        resnet18_backbone(weights_path=path)
