"""Inference-time folding of BatchNorm into the preceding convolution.

In eval mode BN is an affine map per channel, so ``bn(conv(x))`` equals a conv with scaled
weights and a bias. Folding removes one full pass over every feature map (SlowOnly has 43 BNs).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.BatchNorm3d) -> nn.Module:
    """``conv`` itself, its weight scaled and its bias set (new Parameters: no module is built,
    no weights re-initialised, two tensor ops per pair)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    if isinstance(conv, nn.ConvTranspose3d):
        # Weight layout [in, out/groups, ...]: output channels are on dim 1.
        shape = (1, -1) + (1,) * (conv.weight.dim() - 2)
    else:
        shape = (-1,) + (1,) * (conv.weight.dim() - 1)
    conv.weight = nn.Parameter(conv.weight * scale.reshape(shape), requires_grad=conv.weight.requires_grad)
    conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale, requires_grad=conv.weight.requires_grad)
    return conv


def fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every ``conv``/``bn`` pair (children of one block) in place; returns ``model`` in eval mode.

    For inference only: the folded model has conv biases instead of BN keys, so it no longer
    loads or saves checkpoints, and training it would not behave like the original.
    """
    model.eval()
    for block in list(model.modules()):
        conv, bn = getattr(block, "conv", None), getattr(block, "bn", None)
        if isinstance(conv, (nn.Conv3d, nn.ConvTranspose3d)) and isinstance(bn, nn.BatchNorm3d) \
                and bn.track_running_stats and conv.out_channels == bn.num_features:
            block.conv = _fold(conv, bn)
            block.bn = nn.Identity()
    return model


def _onednn_post_ops() -> bool:
    """oneDNN's convolution with fused post-ops (what inductor uses on CPU) is in this torch build."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class ConvActivation(nn.Module):
    """A bias-carrying Conv3d whose ReLU, and optionally a residual added before it, run inside the
    convolution as oneDNN post-ops: one pass over the output instead of two or three.

    Used without autograd on CPU float32; anything else (CUDA, gradients, other dtypes) takes the
    plain ``conv → (+ residual) → relu`` path, which computes the same values.
    """

    def __init__(self, conv: nn.Conv3d, relu: bool):
        super().__init__()
        self.conv = conv
        self.relu = relu
        self._packed: torch.Tensor | None = None  # the weight in oneDNN's blocked layout
        self._packed_for: tuple | None = None
        self._calls = 0

    def __getstate__(self) -> dict:
        # The packed weight is an opaque oneDNN tensor: never copied or pickled, re-made on use.
        return {**self.__dict__, "_packed": None, "_packed_for": None}

    def _weight(self, x: torch.Tensor) -> torch.Tensor:
        """The conv weight reordered once for oneDNN (otherwise every call reorders it, 8-20 ms
        per SlowOnly layer); re-made if the weight tensor is replaced or changed in place.

        Packing costs about one call's reorders, so the first call runs on the plain weight: a
        one-sample test pays nothing, a dataset gains from its third batch on.
        """
        w = self.conv.weight
        self._calls += 1
        if self._calls < 2 or not hasattr(torch._C._nn, "mkldnn_reorder_conv3d_weight"):
            return w
        key = (w.data_ptr(), w._version, w.stride(), tuple(x.shape[1:]))
        if self._packed_for != key:
            c = self.conv
            self._packed = torch._C._nn.mkldnn_reorder_conv3d_weight(
                w.detach().to_mkldnn(), list(c.padding), list(c.stride), list(c.dilation), c.groups, list(x.shape))
            self._packed_for = key
        return self._packed

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.conv.bias

    def _fused(self, x: torch.Tensor) -> bool:
        c = self.conv
        return (x.device.type == "cpu" and x.dtype == torch.float32 and c.weight.dtype == torch.float32
                and not (torch.is_grad_enabled() and (x.requires_grad or c.weight.requires_grad)))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        c = self.conv
        if self._fused(x) and (residual is None or residual.dtype == torch.float32):
            geometry = (list(c.padding), list(c.stride), list(c.dilation), c.groups)
            weight = self._weight(x)
            if residual is None:
                return torch.ops.mkldnn._convolution_pointwise(x, weight, c.bias, *geometry,
                                                               "relu" if self.relu else "none", [], "")
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, weight, c.bias, *geometry, "add", None, "relu" if self.relu else None, [], None)
        y = c(x)
        if residual is not None:
            y = y + residual
        return F.relu(y) if self.relu else y


def fuse_conv_activations(model: nn.Module) -> nn.Module:
    """After `fuse_conv_bn`: every folded ``conv → ReLU`` block, and every bottleneck's last conv
    with its shortcut add and ReLU, becomes one `ConvActivation` (in place; inference only).

    Does nothing where this torch build lacks oneDNN's fused convolution. Only blocks whose BN is
    already folded away are touched, so it is a no-op on a model with BN.
    """
    if not _onednn_post_ops():
        return model
    from posec3d.models.layers import ConvBnAct
    from posec3d.models.slowonly import Bottleneck3d

    def foldable(block: nn.Module) -> bool:
        conv = getattr(block, "conv", None)
        return (isinstance(block, ConvBnAct) and type(conv) is nn.Conv3d and conv.padding_mode == "zeros"
                and not isinstance(conv.padding, str) and isinstance(getattr(block, "bn", nn.Identity()), nn.Identity))

    for block in list(model.modules()):
        if isinstance(block, Bottleneck3d) and foldable(block.conv3) and not hasattr(block.conv3, "relu"):
            block.conv3.conv = ConvActivation(block.conv3.conv, relu=True)
            block.fused_residual = True
        elif foldable(block) and hasattr(block, "relu") and isinstance(block.relu, nn.ReLU):
            block.conv = ConvActivation(block.conv, relu=True)
            block.relu = nn.Identity()
    return model


def optimize_for_inference(model: nn.Module, fuse_bn: bool = True, channels_last: bool = True,
                           fuse_activations: bool = True) -> nn.Module:
    """Eval-mode speed-ups that keep the outputs (up to float rounding): BN folding,
    channels-last 3D memory layout (weights now, inputs inside `Recognizer3D.extract_feat`) and
    ReLU / residual adds fused into the convolutions (`fuse_conv_activations`, needs ``fuse_bn``).

    In place; returns ``model``. The result is for inference only (see `fuse_conv_bn`).
    """
    model.eval()
    if fuse_bn:
        fuse_conv_bn(model)
        if fuse_activations:
            fuse_conv_activations(model)
    return to_channels_last(model) if channels_last else model


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last 3D weights, and (for `Recognizer3D`) inputs: 25-45 % faster CPU training
    steps and inference for SlowOnly / X3D with oneDNN; same results up to float rounding."""
    model.to(memory_format=torch.channels_last_3d)
    if hasattr(model, "channels_last"):
        model.channels_last = True
    return model
