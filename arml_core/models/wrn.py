"""Wide ResNet backbones, with WRN-28-2 as configured by Oliver et al. (2018).

ARML's semi-supervised experiments follow "Realistic Evaluation of Deep Semi-Supervised
Learning Algorithms" (Oliver et al., NeurIPS 2018), whose TensorFlow reference code builds
WRN-28-2 as follows, and this module builds the same network in PyTorch:

- a 3x3 convolution to 16 channels, then three groups of (depth - 4) / 6 pre-activation
  wide basic blocks with 16k, 32k and 64k channels (k = widen_factor); the first block of
  groups 2 and 3 has stride 2;
- each block is BN -> leaky ReLU -> conv3x3 (stride) -> BN -> leaky ReLU -> conv3x3, plus a
  shortcut. The first block of group 1 feeds the activated input to both branches. Every
  other block takes the shortcut from its raw input, through a 1x1 convolution when the
  channel count changes;
- a final BN -> leaky ReLU -> global average pooling, giving features of size 64k;
- convolutions without bias, He-normal initialised with std sqrt(2 / (k * k * out_channels));
  batch norm with a learned scale and shift; leaky ReLU slope 0.1.

WRN-28-2 has 1,466,320 parameters without a classifier (1,467,610 with a 10-class linear one).
The classifier is not part of the backbone: heads are added by ``MultiHead``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The reference code uses tf.contrib.layers.batch_norm with its defaults decay=0.999 and
# epsilon=0.001 (TensorFlow 1.x API). TensorFlow updates moving = decay * moving + (1 - decay) * batch
# and PyTorch updates running = (1 - momentum) * running + momentum * batch, so the matching
# PyTorch momentum is 1 - 0.999 = 0.001.
REFERENCE_BN_MOMENTUM = 0.001
REFERENCE_BN_EPS = 1e-3


class WideBasicBlock(nn.Module):
    """Pre-activation wide basic block mapping (B, in_channels, H, W) to (B, out_channels, H/stride, W/stride).

    With ``activate_shortcut`` (the first block of the network) the shortcut starts from the
    activated input. Otherwise it starts from the raw input.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        activate_shortcut: bool,
        bn_momentum: float,
        bn_eps: float,
        leaky_slope: float,
    ) -> None:
        super().__init__()
        self.activate_shortcut = activate_shortcut
        self.bn1 = nn.BatchNorm2d(in_channels, eps=bn_eps, momentum=bn_momentum)
        self.act1 = nn.LeakyReLU(leaky_slope)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels, eps=bn_eps, momentum=bn_momentum)
        self.act2 = nn.LeakyReLU(leaky_slope)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)

        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.act1(self.bn1(x))
        residual_input = activated if self.activate_shortcut else x

        out = self.conv1(activated)
        out = self.conv2(self.act2(self.bn2(out)))
        return out + self.shortcut(residual_input)


class WideResNet(nn.Module):
    """Wide ResNet backbone mapping images (B, in_channels, H, W) to features (B, feature_dim).

    ``feature_dim`` is 64 * widen_factor. ``bn_momentum`` is PyTorch's batch-norm momentum
    (the weight of the new batch in the running statistics); the default 0.001 matches the
    reference decay of 0.999.
    NOTE: with momentum 0.001 the running statistics need thousands of steps to forget their
    initial values (mean 0, variance 1), so a run of a few hundred steps evaluated in eval
    mode normalises with stale statistics. Pass a larger ``bn_momentum`` (for example 0.1)
    for short runs.
    """

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        in_channels: int = 3,
        bn_momentum: float = REFERENCE_BN_MOMENTUM,
        leaky_slope: float = 0.1,
        bn_eps: float = REFERENCE_BN_EPS,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"WideResNet depth must be 6n + 4 with n >= 1 blocks per group (10, 16, 22, 28, ...), "
                f"got depth={depth!r}"
            )
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive integer, got {widen_factor!r}")
        if not 0.0 <= bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must lie in [0, 1] (PyTorch convention), got {bn_momentum!r}")

        blocks_per_group = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.depth = depth
        self.widen_factor = widen_factor
        self.feature_dim = widths[3]

        self.stem = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        for group_index in range(3):
            in_width, out_width = widths[group_index], widths[group_index + 1]
            blocks = []
            for block_index in range(blocks_per_group):
                first = block_index == 0
                blocks.append(
                    WideBasicBlock(
                        in_channels=in_width if first else out_width,
                        out_channels=out_width,
                        stride=2 if first and group_index > 0 else 1,
                        activate_shortcut=first and group_index == 0,
                        bn_momentum=bn_momentum,
                        bn_eps=bn_eps,
                        leaky_slope=leaky_slope,
                    )
                )
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.final_bn = nn.BatchNorm2d(widths[3], eps=bn_eps, momentum=bn_momentum)
        self.final_act = nn.LeakyReLU(leaky_slope)
        self.pool = nn.AdaptiveAvgPool2d(1)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise convolutions He-normal over fan-out and batch norm to identity (in place)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.groups(self.stem(images))
        out = self.final_act(self.final_bn(out))
        return self.pool(out).flatten(1)


def wrn28_2(
    bn_momentum: float = REFERENCE_BN_MOMENTUM,
    leaky_slope: float = 0.1,
    in_channels: int = 3,
    bn_eps: float = REFERENCE_BN_EPS,
) -> WideResNet:
    """Build WRN-28-2 (depth 28, width 2, 128 features) with the reference settings as defaults."""
    return WideResNet(
        depth=28,
        widen_factor=2,
        in_channels=in_channels,
        bn_momentum=bn_momentum,
        leaky_slope=leaky_slope,
        bn_eps=bn_eps,
    )
