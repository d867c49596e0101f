"""The conv → norm → activation block every PoseC3D backbone is made of.

Its children are called ``conv`` and ``bn`` so parameter names are exactly the keys of the
released pyskl / mmaction2 checkpoints (mmcv's ConvModule layout): ``<name>.conv.weight``,
``<name>.bn.{weight,bias,running_mean,running_var,num_batches_tracked}``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from posec3d.errors import ConfigError

Triple = int | tuple[int, int, int]


def check_layer_cfgs(conv_cfg: dict | None, norm_cfg: dict | None, act_cfg: dict | None, where: str) -> None:
    """Accept only the layer configs our blocks implement (Conv3d, BN3d, ReLU), else ConfigError.

    Configs spell them out (``norm_cfg=dict(type='BN3d', requires_grad=True)``) even though they
    are the defaults; anything else would silently build a different network.
    """
    if conv_cfg is not None and conv_cfg.get("type", "Conv3d") != "Conv3d":
        raise ConfigError(f"{where}: conv_cfg {conv_cfg!r} is not supported (only Conv3d)")
    if norm_cfg is not None:
        if norm_cfg.get("type", "BN3d") not in ("BN3d", "BN", "BatchNorm3d"):
            raise ConfigError(f"{where}: norm_cfg {norm_cfg!r} is not supported (only BN3d)")
        if not norm_cfg.get("requires_grad", True):
            raise ConfigError(f"{where}: norm_cfg requires_grad=False is not supported")
    if act_cfg is not None and act_cfg.get("type", "ReLU") != "ReLU":
        raise ConfigError(f"{where}: act_cfg {act_cfg!r} is not supported (only ReLU)")


class ConvBnAct(nn.Sequential):
    """Bias-free Conv3d, optional BatchNorm3d, optional ReLU (children ``conv``, ``bn``, ``relu``).

    A Sequential so the forward is a flat chain that tracing, ONNX export and BN folding
    (`fuse_conv_bn`) all see plainly.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Triple, stride: Triple = 1,
                 padding: Triple = 0, dilation: Triple = 1, groups: int = 1, norm: bool = True,
                 act: bool = True, bias: bool | None = None):
        super().__init__()
        # mmcv's ConvModule drops the conv bias whenever a norm layer follows.
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                              bias=(not norm) if bias is None else bias)
        if norm:
            self.bn = nn.BatchNorm3d(out_channels)
        if act:
            self.relu = nn.ReLU(inplace=True)


class DeconvBnAct(nn.Module):
    """ConvTranspose3d (no bias) → BN → ReLU whose output is exactly ``stride`` times the input.

    The reference passes ``output_size=(N, C, s·T, s·H, s·W)`` at call time; an equivalent fixed
    ``output_padding`` keeps the forward free of shape arithmetic (exportable).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int],
                 stride: tuple[int, int, int], padding: tuple[int, int, int]):
        super().__init__()
        output_padding = tuple(s + 2 * p - k for s, p, k in zip(stride, padding, kernel_size))
        if any(op < 0 or op >= s for op, s in zip(output_padding, stride)):
            raise ConfigError(f"transposed lateral conv: kernel {kernel_size} / stride {stride} / padding "
                              f"{padding} cannot give an output exactly stride times the input")
        self.conv = nn.ConvTranspose3d(in_channels, out_channels, kernel_size, stride, padding,
                                       output_padding=output_padding, bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class SpatialMaxPool(nn.Module):
    """MaxPool3d with kernel (1, 3, 3), padding (0, 1, 1) and stride (1, s, s).

    Without autograd, on the default layout, it is computed separably (a row max of 3 shifted
    views, then a column max, then the stride): identical results, 5-25x faster than the CPU
    max-pool kernel, which always computes argmax indices. On channels-last 3D input (the test
    fast path) the native kernel is vectorised over channels and beats the separable one (354 vs
    467 ms on 4 SlowOnly stem outputs). With autograd the native kernel runs, because its
    index-based backward is far cheaper (and picks one winner on ties, like the reference).
    Later measurement with one view per forward (the test fast path's ``views_per_forward``): a
    stride-1 pool on channels-last input is 3x faster as shifted in-place maxima without the
    index tensor (`_max_3x3_in_place`), so that is what it runs.
    """

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return F.max_pool3d(x, (1, 3, 3), (1, self.stride, self.stride), (0, 1, 1))
        if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous():
            if self.stride == 1:
                return _max_3x3_in_place(x)
            return F.max_pool3d(x, (1, 3, 3), (1, self.stride, self.stride), (0, 1, 1))
        x = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
        x = torch.maximum(torch.maximum(x[..., :-2], x[..., 1:-1]), x[..., 2:])
        x = torch.maximum(torch.maximum(x[..., :-2, :], x[..., 1:-1, :]), x[..., 2:, :])
        return x[..., ::self.stride, ::self.stride] if self.stride > 1 else x


def _max_3x3_in_place(x: torch.Tensor) -> torch.Tensor:
    """Stride-1 (1, 3, 3) max pool with -inf padding on any layout: a copy maxed in place with the
    shifted neighbours, first along W, then along H. Two allocations of the input's size and no
    argmax indices: on one channels-last SlowOnly stem output (1 x 32 x 48 x 64 x 64) 7 ms against
    the native kernel's 22 ms, most of which is the page faults of its int64 index tensor."""
    rows = x.clone()  # keeps the memory format
    torch.maximum(rows[..., 1:], x[..., :-1], out=rows[..., 1:])
    torch.maximum(rows[..., :-1], x[..., 1:], out=rows[..., :-1])
    out = rows.clone()
    torch.maximum(out[..., 1:, :], rows[..., :-1, :], out=out[..., 1:, :])
    torch.maximum(out[..., :-1, :], rows[..., 1:, :], out=out[..., :-1, :])
    return out


def init_conv_bn(module: nn.Module) -> None:
    """SPEC §4.1 init: Conv3d kaiming-normal (fan_out, relu), bias 0; BN weight 1, bias 0.

    ConvTranspose3d is deliberately left at PyTorch's default, as in the reference.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
