"""X3D, pyskl's variant used as "X3D-shallow" for pose heatmaps (SPEC §4.4).

Depthwise-separable residual blocks, widths expanded by ``gamma_b`` inside each block.
Names follow the checkpoint keys (``conv1_s``, ``conv1_t``, ``layerN.i.conv{1,2,3}``, ``conv5``);
in block 0 of a stage ``downsample`` is registered before ``conv1``, as in pyskl's key order.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from posec3d.errors import ConfigError
from posec3d.models.layers import ConvBnAct, check_layer_cfgs, init_conv_bn
from posec3d.registry import MODELS


def round_width(width: float, multiplier: float, min_width: int = 8, divisor: int = 8) -> int:
    """Scale a channel count and round it to a multiple of ``divisor`` (never below 90 %)."""
    if not multiplier:
        return int(width)
    width *= multiplier
    new = max(min_width, int(width + divisor / 2) // divisor * divisor)
    if new < 0.9 * width:
        new += divisor
    return int(new)


class SqueezeExcite(nn.Module):
    """Channel gating: global pool → fc1 → ReLU → fc2 → sigmoid → scale (1x1x1 convs with bias)."""

    def __init__(self, channels: int, ratio: float):
        super().__init__()
        hidden = round_width(channels, ratio)
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv3d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(w))))


class X3DBlock(nn.Module):
    """1x1x1 expand → depthwise 3x3x3 (spatial stride) → [SE] → [swish] → 1x1x1 project, + residual."""

    def __init__(self, inplanes: int, planes: int, outplanes: int, spatial_stride: int = 1,
                 downsample: nn.Module | None = None, se_ratio: float | None = None, use_swish: bool = True):
        super().__init__()
        self.downsample = downsample
        self.conv1 = ConvBnAct(inplanes, planes, 1)
        self.conv2 = ConvBnAct(planes, planes, 3, (1, spatial_stride, spatial_stride), 1, groups=planes, act=False)
        self.se_module = SqueezeExcite(planes, se_ratio) if se_ratio is not None else None
        self.swish = nn.SiLU() if use_swish else nn.Identity()
        self.conv3 = ConvBnAct(planes, outplanes, 1, act=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.se_module is not None:
            out = self.se_module(out)
        out = self.conv3(self.swish(out))
        out += identity  # in place: no new feature-map buffer (BN's backward does not need its output)
        return self.relu(out)


@MODELS.register("PysklX3D")
class X3D(nn.Module):
    """X3D backbone: ``(N, C, T, H, W) → (N, gamma_b·base·2^(stages-1), T, H/2^(stages+1), ...)``."""

    def __init__(self, gamma_w: float = 1.0, gamma_b: float = 2.25, gamma_d: float = 2.2,
                 pretrained: str | None = None, in_channels: int = 3, base_channels: int = 24,
                 num_stages: int = 4, stage_blocks: Sequence[int] = (1, 2, 5, 3),
                 spatial_strides: Sequence[int] = (2, 2, 2, 2), frozen_stages: int = -1,
                 se_style: str = "half", se_ratio: float | None = 1 / 16, use_swish: bool = True,
                 conv_cfg: dict | None = None, norm_cfg: dict | None = None, act_cfg: dict | None = None,
                 norm_eval: bool = False, with_cp: bool = False, zero_init_residual: bool = True, init_cfg=None):
        super().__init__()
        if pretrained is not None:
            raise ConfigError(f"X3D: pretrained={pretrained!r} is not supported; use load_from / load_checkpoint")
        if se_style not in ("half", "all"):
            raise ConfigError(f"X3D: se_style must be 'half' or 'all', got {se_style!r}")
        if with_cp:
            raise ConfigError("X3D: with_cp=True is not supported")
        check_layer_cfgs(conv_cfg, norm_cfg, act_cfg, "X3D")
        stage_blocks = [math.ceil(gamma_d * n) for n in stage_blocks][:num_stages]
        if len(stage_blocks) != num_stages or len(spatial_strides) < num_stages:
            raise ConfigError(f"X3D: stage_blocks / spatial_strides need num_stages={num_stages} entries")
        base = round_width(base_channels, gamma_w)
        self.in_channels = in_channels
        self.num_stages, self.frozen_stages, self.norm_eval = num_stages, frozen_stages, norm_eval

        self.conv1_s = ConvBnAct(in_channels, base, (1, 3, 3), (1, 2, 2), (0, 1, 1), norm=False, act=False,
                                 bias=False)
        self.conv1_t = ConvBnAct(base, base, (5, 1, 1), 1, (2, 0, 0), groups=base)
        self.res_layers = []
        inplanes = base
        for i, blocks in enumerate(stage_blocks):
            outplanes = base * 2 ** i
            planes = int(outplanes * gamma_b)
            stride = spatial_strides[i]
            downsample = None
            if stride != 1 or inplanes != outplanes:
                downsample = ConvBnAct(inplanes, outplanes, 1, (1, stride, stride), act=False)
            layers = []
            for j in range(blocks):
                with_se = se_ratio is not None and (se_style == "all" or j % 2 == 0)
                layers.append(X3DBlock(inplanes if j == 0 else outplanes, planes, outplanes, stride if j == 0 else 1,
                                       downsample if j == 0 else None, se_ratio if with_se else None, use_swish))
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*layers))
            self.res_layers.append(name)
            inplanes = outplanes
        self.feat_dim = int(inplanes * gamma_b)
        self.conv5 = ConvBnAct(inplanes, self.feat_dim, 1)
        self.init_weights(zero_init_residual)

    def init_weights(self, zero_init_residual: bool = True) -> None:
        init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, X3DBlock):
                    nn.init.zeros_(m.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1_t(self.conv1_s(x))
        for name in self.res_layers:
            x = getattr(self, name)(x)
        return self.conv5(x)

    def train(self, mode: bool = True):
        super().train(mode)
        for name in ["conv1_s", "conv1_t", *self.res_layers][: self.frozen_stages + 2 if self.frozen_stages >= 0 else 0]:
            module = getattr(self, name)
            module.eval()
            for p in module.parameters():
                p.requires_grad = False
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self
