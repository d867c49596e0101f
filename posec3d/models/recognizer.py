"""Recognizers: backbone + head, training loss and multi-view test-time averaging (SPEC §5).

`Recognizer3D` serves the skeleton models (one heatmap volume per view); `MMRecognizer3D` the
two-input RGBPoseConv3D. Inputs of ``forward_train`` / ``forward_test`` are (N, V, C, T, H, W):
N samples with V views each (clips × flips); views of one sample are averaged at test time.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from posec3d.errors import ConfigError
from posec3d.models.heads import check_average_clips
from posec3d.registry import MODELS


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` on (N, C, ...) input: mmaction2's data preprocessor for RGB.

    Buffers are non-persistent, as in mmaction2, so checkpoints carry no preprocessor keys.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        shape = (1, len(mean), 1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_normalizer(cfg: dict | None, where: str) -> nn.Module:
    """An `ActionDataPreprocessor` dict → `Normalize` if it has mean/std, else identity."""
    if cfg is None:
        return nn.Identity()
    known = {"type", "mean", "std", "format_shape", "to_rgb", "to_float32", "blending"}
    if cfg.get("type", "ActionDataPreprocessor") != "ActionDataPreprocessor" or set(cfg) - known:
        raise ConfigError(f"{where}: unsupported data_preprocessor {cfg!r}")
    if cfg.get("to_rgb") or cfg.get("blending") or cfg.get("format_shape", "NCTHW") != "NCTHW":
        raise ConfigError(f"{where}: data_preprocessor options to_rgb / blending / non-NCTHW formats are not supported")
    if cfg.get("mean") is None and cfg.get("std") is None:
        return nn.Identity()
    return Normalize(cfg["mean"], cfg["std"])


def average_views(logits: torch.Tensor, num_views: int, average_clips: str | None) -> torch.Tensor:
    """(N·V, K) → (N, K) by 'prob' (softmax per view, then mean) or 'score' (mean); None → (N, V, K)."""
    logits = logits.reshape(-1, num_views, logits.shape[-1])
    if average_clips == "prob":
        return logits.softmax(dim=-1).mean(dim=1)
    if average_clips == "score":
        return logits.mean(dim=1)
    return logits


def _flatten_views(x: torch.Tensor, what: str) -> tuple[torch.Tensor, int]:
    if x.dim() == 6:
        return x.reshape((-1,) + x.shape[2:]), x.shape[1]
    if x.dim() == 5:
        return x, 1
    raise ValueError(f"{what} must be (N, V, C, T, H, W) or (N, C, T, H, W), got shape {tuple(x.shape)}")


def _labels(labels: torch.Tensor, num_views: int) -> torch.Tensor:
    # Each view is a training sample of its video's label (labels may arrive as (N, 1)).
    return labels.reshape(-1).long().repeat_interleave(num_views)


class _TestCfg:
    KNOWN = {"average_clips", "max_testing_views", "feat_ext"}

    @staticmethod
    def parse(test_cfg: dict | None, head: nn.Module, where: str) -> tuple[str | None, int | None]:
        test_cfg = dict(test_cfg or {})
        if set(test_cfg) - _TestCfg.KNOWN or test_cfg.get("feat_ext"):
            raise ConfigError(f"{where}: unsupported test_cfg {test_cfg!r} (known: average_clips, max_testing_views)")
        # pyskl sets average_clips in test_cfg, mmaction2 inside cls_head; test_cfg wins if both.
        average = check_average_clips(test_cfg.get("average_clips", head.average_clips), where)
        max_views = test_cfg.get("max_testing_views")
        if max_views is not None and (not isinstance(max_views, int) or max_views < 1):
            raise ConfigError(f"{where}: max_testing_views must be a positive int, got {max_views!r}")
        return average, max_views


def _check_common(neck, pretrained, where: str) -> None:
    if neck is not None:
        raise ConfigError(f"{where}: necks are not supported")
    if pretrained is not None:
        raise ConfigError(f"{where}: pretrained={pretrained!r} is not supported; use load_from")


@MODELS.register()
class Recognizer3D(nn.Module):
    """Backbone + I3DHead over heatmap volumes. ``forward(x (B,C,T,H,W)) → logits (B, classes)``."""

    def __init__(self, backbone: dict, cls_head: dict, neck: dict | None = None, train_cfg: dict | None = None,
                 test_cfg: dict | None = None, data_preprocessor: dict | None = None, pretrained=None, init_cfg=None):
        super().__init__()
        _check_common(neck, pretrained, "Recognizer3D")
        self.backbone = MODELS.build(backbone)
        self.cls_head = MODELS.build(cls_head)
        self.preprocess = build_normalizer(data_preprocessor, "Recognizer3D")
        self.average_clips, self.max_testing_views = _TestCfg.parse(test_cfg, self.cls_head, "Recognizer3D")
        # Set by `optimize_for_inference`: oneDNN's 3D convs are much faster on channels-last input.
        self.channels_last = False

    @property
    def num_classes(self) -> int:
        return self.cls_head.num_classes

    def extract_feat(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) → the backbone's feature map."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.backbone(self.preprocess(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) → logits (B, classes), one row per clip. Plain tensors in and out (exportable)."""
        return self.cls_head(self.extract_feat(x))

    def forward_train(self, imgs: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss (``loss_cls``) and batch ``top1_acc`` / ``top5_acc``; every view counts as a sample."""
        x, num_views = _flatten_views(imgs, "imgs")
        return self.cls_head.loss(self(x), _labels(labels, num_views))

    def forward_test(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, V, C, T, H, W) → (N, classes) averaged over views (``average_clips``); None → (N, V, classes)."""
        x, num_views = _flatten_views(imgs, "imgs")
        if self.max_testing_views is None:
            logits = self(x)
        else:
            logits = torch.cat([self(chunk) for chunk in x.split(self.max_testing_views)])
        return average_views(logits, num_views, self.average_clips)


@MODELS.register()
class MMRecognizer3D(nn.Module):
    """RGBPoseConv3D + RGBPoseHead: ``forward(imgs, heatmap_imgs) → {'rgb': logits, 'pose': logits}``.

    With mmaction2's ``MultiModalDataPreprocessor`` config the RGB input is normalised here, so
    ``imgs`` are raw 0-255 pixels; pyskl configs normalise in the pipeline instead.
    """

    def __init__(self, backbone: dict, cls_head: dict, neck: dict | None = None, train_cfg: dict | None = None,
                 test_cfg: dict | None = None, data_preprocessor: dict | None = None, pretrained=None, init_cfg=None):
        super().__init__()
        _check_common(neck, pretrained, "MMRecognizer3D")
        self.backbone = MODELS.build(backbone)
        self.cls_head = MODELS.build(cls_head)
        self.preprocess_rgb, self.preprocess_pose = self._preprocessors(data_preprocessor)
        self.average_clips, self.max_testing_views = _TestCfg.parse(test_cfg, self.cls_head, "MMRecognizer3D")

    @staticmethod
    def _preprocessors(cfg: dict | None) -> tuple[nn.Module, nn.Module]:
        if cfg is None:
            return nn.Identity(), nn.Identity()
        if cfg.get("type") != "MultiModalDataPreprocessor" or set(cfg) - {"type", "preprocessors"}:
            raise ConfigError(f"MMRecognizer3D: unsupported data_preprocessor {cfg!r}")
        parts = dict(cfg.get("preprocessors", {}))
        if set(parts) - {"imgs", "heatmap_imgs"}:
            raise ConfigError(f"MMRecognizer3D: data_preprocessor inputs must be imgs / heatmap_imgs, got {list(parts)}")
        return (build_normalizer(parts.get("imgs"), "MMRecognizer3D imgs"),
                build_normalizer(parts.get("heatmap_imgs"), "MMRecognizer3D heatmap_imgs"))

    @property
    def num_classes(self) -> int:
        return self.cls_head.num_classes

    def extract_feat(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(self.preprocess_rgb(imgs), self.preprocess_pose(heatmap_imgs))

    def forward(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.cls_head(self.extract_feat(imgs, heatmap_imgs))

    def forward_train(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor,
                      labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``rgb_loss_cls`` + ``pose_loss_cls`` (each weighted) and per-pathway batch accuracies."""
        x, num_views = _flatten_views(imgs, "imgs")
        h, _ = _flatten_views(heatmap_imgs, "heatmap_imgs")
        return self.cls_head.loss(self(x, h), _labels(labels, num_views))

    def forward_test(self, imgs: torch.Tensor, heatmap_imgs: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'rgb': (N, classes), 'pose': (N, classes)}, each averaged over views separately."""
        x, num_views = _flatten_views(imgs, "imgs")
        h, _ = _flatten_views(heatmap_imgs, "heatmap_imgs")
        if self.max_testing_views is None:
            outs = [self(x, h)]
        else:
            outs = [self(a, b) for a, b in zip(x.split(self.max_testing_views), h.split(self.max_testing_views))]
        return {k: average_views(torch.cat([o[k] for o in outs]), num_views, self.average_clips) for k in outs[0]}
