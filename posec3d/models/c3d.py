"""C3D-light, pyskl's plain 3D-conv pose backbone (SPEC §4.3).

Eight-or-fewer 3x3x3 conv → BN → ReLU layers with average pooling between them; no residuals.
Names follow the checkpoint keys: ``conv1a``, ``conv2a``, ``conv3a``/``conv3b``, ...
"""
from __future__ import annotations

import torch
from torch import nn

from posec3d.errors import ConfigError
from posec3d.models.layers import ConvBnAct, check_layer_cfgs, init_conv_bn
from posec3d.registry import MODELS


@MODELS.register("PysklC3D")
class C3D(nn.Module):
    """C3D for heatmap volumes: ``(N, C, T, H, W) → (N, 8·base, T', H/8, W/8)`` with 3 stages.

    ``temporal_downsample=False`` keeps T (PoseC3D's setting); ``True`` halves it at pool2..pool4.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, num_stages: int = 4,
                 temporal_downsample: bool = True, pretrained: str | None = None, conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, act_cfg: dict | None = None, init_cfg=None):
        super().__init__()
        if pretrained is not None:
            raise ConfigError(f"C3D: pretrained={pretrained!r} is not supported; use load_from / load_checkpoint")
        if num_stages not in (3, 4):
            raise ConfigError(f"C3D: num_stages must be 3 or 4, got {num_stages}")
        check_layer_cfgs(conv_cfg, norm_cfg, act_cfg, "C3D")
        b = base_channels
        later_pool = (2, 2, 2) if temporal_downsample else (1, 2, 2)
        conv = lambda cin, cout: ConvBnAct(cin, cout, 3, 1, 1)  # noqa: E731
        self.in_channels = in_channels
        self.conv1a = conv(in_channels, b)
        self.pool1 = nn.AvgPool3d((1, 2, 2), (1, 2, 2))
        self.conv2a = conv(b, 2 * b)
        self.pool2 = nn.AvgPool3d(later_pool, later_pool)
        self.conv3a = conv(2 * b, 4 * b)
        self.conv3b = conv(4 * b, 4 * b)
        self.pool3 = nn.AvgPool3d(later_pool, later_pool)
        self.conv4a = conv(4 * b, 8 * b)
        self.conv4b = conv(8 * b, 8 * b)
        self.num_stages = num_stages
        if num_stages == 4:
            self.pool4 = nn.AvgPool3d(later_pool, later_pool)
            self.conv5a = conv(8 * b, 8 * b)
            self.conv5b = conv(8 * b, 8 * b)
        self.feat_dim = 8 * b
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.conv1a(x))
        x = self.pool2(self.conv2a(x))
        x = self.pool3(self.conv3b(self.conv3a(x)))
        x = self.conv4b(self.conv4a(x))
        if self.num_stages == 4:
            x = self.conv5b(self.conv5a(self.pool4(x)))
        return x
