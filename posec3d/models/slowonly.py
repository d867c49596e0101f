"""ResNet3d family: the SlowOnly pose backbone and the pathways of RGBPoseConv3D (SPEC §4.2, §4.6).

One class, `ResNet3dPathway`, builds every variant: a plain ResNet3d (``lateral=False``), a
SlowOnly (different defaults), or a pathway that receives lateral connections from a second
pathway (``lateral=True``; the forward that interleaves two pathways lives in `rgbpose.py`).
Module names equal the released checkpoint keys (``conv1``, ``layer1.0.conv2``, ``layer2_lateral``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from posec3d.errors import ConfigError
from posec3d.models.layers import ConvBnAct, DeconvBnAct, SpatialMaxPool, check_layer_cfgs, init_conv_bn
from posec3d.registry import MODELS

# depth -> blocks per stage (Bottleneck only; PoseC3D uses depth 50 everywhere).
BOTTLENECK_DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class Bottleneck3d(nn.Module):
    """1x1 → 3x3 → 1x1 residual block; ``inflate`` makes the temporal kernel 3 (style '3x1x1': conv1)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, spatial_stride: int = 1, temporal_stride: int = 1,
                 dilation: int = 1, downsample: nn.Module | None = None, inflate: bool = True,
                 inflate_style: str = "3x1x1", style: str = "pytorch", with_cp: bool = False):
        super().__init__()
        # 'pytorch' style strides on the 3x3 conv, 'caffe' on the first 1x1.
        s1, s2 = ((1, 1, 1), (temporal_stride, spatial_stride, spatial_stride)) if style == "pytorch" \
            else ((temporal_stride, spatial_stride, spatial_stride), (1, 1, 1))
        if inflate and inflate_style == "3x1x1":
            k1, p1, k2, p2 = (3, 1, 1), (1, 0, 0), (1, 3, 3), (0, dilation, dilation)
        elif inflate:  # '3x3x3'
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (3, 3, 3), (1, dilation, dilation)
        else:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, dilation, dilation)
        self.conv1 = ConvBnAct(inplanes, planes, k1, s1, p1)
        self.conv2 = ConvBnAct(planes, planes, k2, s2, p2, dilation=(1, dilation, dilation))
        self.conv3 = ConvBnAct(planes, planes * self.expansion, 1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)
        self.with_cp = with_cp
        # Set by `fuse_conv_activations` (inference): conv3 adds the shortcut and applies the ReLU.
        self.fused_residual = False

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(self.conv2(self.conv1(x)))
        out += identity  # in place: no new feature-map buffer (BN's backward does not need its output)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_residual:
            identity = x if self.downsample is None else self.downsample(x)
            return self.conv3.conv(self.conv2(self.conv1(x)), identity)
        if self.with_cp and x.requires_grad:
            out = checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


def _per_stage(value, num_stages: int, name: str) -> tuple:
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,) * num_stages
    if len(value) < num_stages:
        raise ConfigError(f"ResNet3d: {name}={value!r} has fewer than num_stages={num_stages} entries")
    return value[:num_stages]


def _stride_pair(joint, t, s, name: str) -> tuple[int, int]:
    """pyskl writes ``conv1_stride=(t, s)``; mmaction2 ``conv1_stride_t`` / ``conv1_stride_s``."""
    if joint is not None:
        if isinstance(joint, int):
            return joint, joint
        if len(joint) != 2:
            raise ConfigError(f"ResNet3d: {name}={joint!r} must be (temporal, spatial)")
        return int(joint[0]), int(joint[1])
    return t, s


@MODELS.register("ResNet3d")
class ResNet3dPathway(nn.Module):
    """ResNet3d-50 style backbone, optionally a pathway receiving lateral connections.

    Lateral widths (SPEC §4.6): with C_i = 4·base·2^i the stage-i output of *this* pathway,
    a normal lateral maps C_i/channel_ratio → C_i·lateral_infl/channel_ratio (temporal stride
    ``speed_ratio``), an inverse one (``lateral_inv``, transposed conv + BN + ReLU) maps
    C_i·channel_ratio → C_i·channel_ratio/lateral_infl. ``layer{i+1}_lateral`` feeds stage i+1.
    """

    def __init__(self, depth: int = 50, pretrained: str | None = None, stage_blocks: Sequence[int] | None = None,
                 pretrained2d: bool = True, in_channels: int = 3, num_stages: int = 4, base_channels: int = 64,
                 out_indices: Sequence[int] = (3,), spatial_strides=(1, 2, 2, 2), temporal_strides=(1, 1, 1, 1),
                 dilations=(1, 1, 1, 1), conv1_kernel=(3, 7, 7), conv1_stride=None, conv1_stride_s: int = 2,
                 conv1_stride_t: int = 1, pool1_stride=None, pool1_stride_s: int = 2, pool1_stride_t: int = 1,
                 with_pool1: bool = True, with_pool2: bool = True, style: str = "pytorch", frozen_stages: int = -1,
                 inflate=(1, 1, 1, 1), inflate_style: str = "3x1x1", conv_cfg: dict | None = None,
                 norm_cfg: dict | None = None, act_cfg: dict | None = None, norm_eval: bool = False,
                 with_cp: bool = False, non_local=(0, 0, 0, 0), non_local_cfg: dict | None = None,
                 zero_init_residual: bool = True, init_cfg=None,
                 # lateral connections (RGBPoseConv3D pathways)
                 lateral: bool = False, lateral_inv: bool = False, lateral_norm: bool = False,
                 speed_ratio: int = 8, channel_ratio: int = 8, fusion_kernel: int = 5, lateral_infl: int = 2,
                 lateral_activate=(1, 1, 1, 1)):
        super().__init__()
        where = type(self).__name__
        if pretrained is not None:
            raise ConfigError(f"{where}: pretrained={pretrained!r} is not supported; load weights with "
                              "load_from / load_checkpoint instead")
        if depth not in BOTTLENECK_DEPTHS:
            raise ConfigError(f"{where}: depth {depth} is not supported (choose from {sorted(BOTTLENECK_DEPTHS)})")
        if any(non_local):
            raise ConfigError(f"{where}: non-local blocks are not supported (non_local={non_local!r})")
        if style not in ("pytorch", "caffe") or inflate_style not in ("3x1x1", "3x3x3"):
            raise ConfigError(f"{where}: style={style!r} / inflate_style={inflate_style!r} not supported")
        check_layer_cfgs(conv_cfg, norm_cfg, act_cfg, where)
        if not 1 <= num_stages <= 4:
            raise ConfigError(f"{where}: num_stages must be 1..4, got {num_stages}")
        stage_blocks = tuple(stage_blocks) if stage_blocks is not None else BOTTLENECK_DEPTHS[depth][:num_stages]
        if len(stage_blocks) != num_stages:
            raise ConfigError(f"{where}: stage_blocks {stage_blocks} must have num_stages={num_stages} entries")
        self.out_indices = tuple(out_indices)
        if not self.out_indices or max(self.out_indices) >= num_stages:
            raise ConfigError(f"{where}: out_indices {self.out_indices} must lie in 0..{num_stages - 1}")
        spatial_strides = _per_stage(spatial_strides, num_stages, "spatial_strides")
        temporal_strides = _per_stage(temporal_strides, num_stages, "temporal_strides")
        dilations = _per_stage(dilations, num_stages, "dilations")
        inflate = _per_stage(inflate, num_stages, "inflate")
        c1_t, c1_s = _stride_pair(conv1_stride, conv1_stride_t, conv1_stride_s, "conv1_stride")
        p1_t, p1_s = _stride_pair(pool1_stride, pool1_stride_t, pool1_stride_s, "pool1_stride")

        self.in_channels, self.base_channels, self.num_stages = in_channels, base_channels, num_stages
        self.with_pool1, self.with_pool2 = with_pool1, with_pool2
        self.frozen_stages, self.norm_eval = frozen_stages, norm_eval
        self.lateral, self.lateral_inv = lateral, lateral_inv
        self.speed_ratio, self.channel_ratio = speed_ratio, channel_ratio
        lateral_activate = _per_stage(lateral_activate, num_stages, "lateral_activate") if lateral else (0,) * num_stages
        self.lateral_activate = lateral_activate

        kt, kh, kw = conv1_kernel
        self.conv1 = ConvBnAct(in_channels, base_channels, conv1_kernel, (c1_t, c1_s, c1_s),
                               ((kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2))
        self.maxpool = SpatialMaxPool(p1_s) if p1_t == 1 else nn.MaxPool3d((1, 3, 3), (p1_t, p1_s, p1_s), (0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))

        # Lateral channels arriving at the input of stage i (block 0 and its downsample).
        stage_out = [base_channels * 2 ** i * Bottleneck3d.expansion for i in range(num_stages)]
        lateral_in = [0] * num_stages
        if lateral:
            for i in range(num_stages - 1):
                if lateral_activate[i + 1]:
                    lateral_in[i + 1] = self._lateral_widths(stage_out[i], lateral_infl)[1]
        inplanes = base_channels
        self.res_layers = []
        for i, blocks in enumerate(stage_blocks):
            planes = base_channels * 2 ** i
            layer = self._make_layer(inplanes + lateral_in[i], planes, blocks, spatial_strides[i],
                                     temporal_strides[i], dilations[i], bool(inflate[i]), inflate_style,
                                     style, with_cp)
            name = f"layer{i + 1}"
            self.add_module(name, layer)
            self.res_layers.append(name)
            inplanes = planes * Bottleneck3d.expansion
        self.feat_dim = inplanes

        # Laterals are registered after the stages: that is their place in the checkpoint key order.
        self.lateral_connections = []
        if lateral:
            pad = (fusion_kernel - 1) // 2
            for i in range(num_stages - 1):
                if not lateral_activate[i + 1]:
                    continue
                c_in, c_out = self._lateral_widths(stage_out[i], lateral_infl)
                kernel, stride, padding = (fusion_kernel, 1, 1), (speed_ratio, 1, 1), (pad, 0, 0)
                if lateral_inv:
                    module = DeconvBnAct(c_in, c_out, kernel, stride, padding)
                else:
                    module = ConvBnAct(c_in, c_out, kernel, stride, padding, norm=lateral_norm, act=lateral_norm,
                                       bias=False)
                name = f"layer{i + 1}_lateral"
                self.add_module(name, module)
                self.lateral_connections.append(name)
        self.init_weights(zero_init_residual)

    def _lateral_widths(self, own_channels: int, lateral_infl: int) -> tuple[int, int]:
        if self.lateral_inv:
            return own_channels * self.channel_ratio, own_channels * self.channel_ratio // lateral_infl
        return own_channels // self.channel_ratio, own_channels * lateral_infl // self.channel_ratio

    @staticmethod
    def _make_layer(inplanes: int, planes: int, blocks: int, spatial_stride: int, temporal_stride: int,
                    dilation: int, inflate: bool, inflate_style: str, style: str, with_cp: bool) -> nn.Sequential:
        downsample = None
        if spatial_stride != 1 or temporal_stride != 1 or inplanes != planes * Bottleneck3d.expansion:
            downsample = ConvBnAct(inplanes, planes * Bottleneck3d.expansion, 1,
                                   (temporal_stride, spatial_stride, spatial_stride), act=False)
        layers = [Bottleneck3d(inplanes, planes, spatial_stride, temporal_stride, dilation, downsample,
                               inflate, inflate_style, style, with_cp)]
        for _ in range(1, blocks):
            layers.append(Bottleneck3d(planes * Bottleneck3d.expansion, planes, 1, 1, dilation, None,
                                       inflate, inflate_style, style, with_cp))
        return nn.Sequential(*layers)

    def init_weights(self, zero_init_residual: bool = True) -> None:
        """Training-from-scratch init (SPEC §4.1); loading a checkpoint overrides it."""
        init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck3d):
                    nn.init.zeros_(m.conv3.bn.weight)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.maxpool(x) if self.with_pool1 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == 0 and self.with_pool2:
                x = self.pool2(x)
            if i in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def train(self, mode: bool = True):
        super().train(mode)
        _freeze(self, ["conv1", *self.res_layers][: self.frozen_stages + 1])
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self


def _freeze(backbone: nn.Module, names: list[str]) -> None:
    """frozen_stages=k: the stem and stages 1..k run in eval mode with no gradient."""
    for name in names:
        module = getattr(backbone, name)
        module.eval()
        for p in module.parameters():
            p.requires_grad = False


@MODELS.register()
class ResNet3dSlowOnly(ResNet3dPathway):
    """SlowOnly: a ResNet3d with a (1,7,7) stem, no temporal stem stride, no pool2 (SPEC §4.2)."""

    def __init__(self, conv1_kernel=(1, 7, 7), conv1_stride_t: int = 1, pool1_stride_t: int = 1,
                 inflate=(0, 0, 1, 1), with_pool2: bool = False, lateral: bool = False, **kwargs):
        if lateral:
            raise ConfigError("ResNet3dSlowOnly cannot have lateral connections; use RGBPoseConv3D")
        super().__init__(conv1_kernel=conv1_kernel, conv1_stride_t=conv1_stride_t, pool1_stride_t=pool1_stride_t,
                         inflate=inflate, with_pool2=with_pool2, **kwargs)

