"""Classification heads (SPEC §4.5): global average pool → dropout → linear.

`I3DHead` / `SimpleHead` hold one ``fc_cls``; `RGBPoseHead` holds ``fc_rgb`` and ``fc_pose`` and
returns ``{'rgb': logits, 'pose': logits}``. Each head also computes its own training loss.

Outlier exposure (Hendrycks, Mazeika, Dietterich, ICLR 2019), `I3DHead` only: training samples
labelled -1 are outliers, actions of none of the classes; their loss is the cross-entropy to the
uniform distribution, weighted by ``outlier_weight``, so that the model learns to spread its
probability over the classes (a low top probability: "unknown") on what it does not know.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from posec3d.errors import ConfigError
from posec3d.registry import MODELS

AVERAGE_CLIPS = ("prob", "score", None)


def _check_loss_cfg(loss_cls: dict | None, where: str) -> float:
    """Only plain cross-entropy is implemented; returns its loss weight."""
    if loss_cls is None:
        return 1.0
    unknown = set(loss_cls) - {"type", "loss_weight"}
    if loss_cls.get("type", "CrossEntropyLoss") != "CrossEntropyLoss" or unknown:
        raise ConfigError(f"{where}: loss_cls {loss_cls!r} is not supported (only CrossEntropyLoss with loss_weight)")
    return float(loss_cls.get("loss_weight", 1.0))


def check_average_clips(value, where: str):
    if value not in AVERAGE_CLIPS:
        raise ConfigError(f"{where}: average_clips must be 'prob', 'score' or None, got {value!r}")
    return value


def check_outlier_weight(value, where: str) -> float:
    try:
        weight = float(value)
    except (TypeError, ValueError):
        weight = float("nan")
    if not weight >= 0 or weight == float("inf"):
        raise ConfigError(f"{where}: outlier_weight must be a number >= 0, got {value!r}")
    return weight


def uniform_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the cross-entropy from the uniform distribution to softmax(logits):
    mean_c(-log p_c) = logsumexp(z) - mean(z); its minimum, log(num_classes), is at equal logits."""
    return (torch.logsumexp(logits, dim=1) - logits.mean(dim=1)).mean()


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) → (N, C). A plain mean, which also exports to ONNX as ReduceMean."""
    return x.mean(dim=(2, 3, 4))


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Fraction of rows whose label is among the k highest logits (a batch statistic for logs)."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return hits.float().mean()


@MODELS.register("SimpleHead")
class I3DHead(nn.Module):
    """Average pool over (T, H, W) → Dropout → ``fc_cls``. Tuple inputs are concatenated on channels."""

    def __init__(self, num_classes: int, in_channels: int, loss_cls: dict | None = None,
                 spatial_type: str = "avg", dropout_ratio: float | None = None, dropout: float | None = None,
                 init_std: float = 0.01, average_clips: str | None = "prob", mode: str = "3D",
                 multi_class: bool = False, label_smooth_eps: float = 0.0, topk=(1, 5), init_cfg=None,
                 outlier_weight: float = 0.0):
        super().__init__()
        if spatial_type != "avg" or mode != "3D" or multi_class or label_smooth_eps:
            raise ConfigError(f"I3DHead: only spatial_type='avg', mode='3D', single-label, no label smoothing "
                              f"is supported (got spatial_type={spatial_type!r}, mode={mode!r}, "
                              f"multi_class={multi_class}, label_smooth_eps={label_smooth_eps})")
        # pyskl spells the dropout probability `dropout`, mmaction2 `dropout_ratio`.
        p = dropout_ratio if dropout_ratio is not None else (dropout if dropout is not None else 0.5)
        self.num_classes, self.in_channels, self.init_std = num_classes, in_channels, init_std
        self.loss_weight = _check_loss_cfg(loss_cls, "I3DHead")
        self.average_clips = check_average_clips(average_clips, "I3DHead")
        self.outlier_weight = check_outlier_weight(outlier_weight, "I3DHead")
        self.topk = tuple(topk)
        self.dropout = nn.Dropout(p) if p else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.normal_(self.fc_cls.weight, 0, self.init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def pool(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, (tuple, list)):
            x = torch.cat([global_avg_pool(t) for t in x], dim=1)
        else:
            x = global_avg_pool(x)
        return x

    def forward(self, x: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fc_cls(self.dropout(self.pool(x)))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the labelled samples (``loss_cls``); with outliers (label -1) in the batch,
        also ``loss_outlier``. Both are means over their own samples, as in Hendrycks et al."""
        known = labels >= 0
        if bool(known.all()):
            losses = {"loss_cls": self.loss_weight * F.cross_entropy(logits, labels)}
        else:
            if self.outlier_weight <= 0:
                raise ConfigError("I3DHead: the batch has outlier samples (label -1) but outlier_weight is 0; "
                                  "set cls_head.outlier_weight (or the config's outliers.weight)")
            # A batch of outliers only has no labelled term (0, still attached to the graph).
            ce = F.cross_entropy(logits[known], labels[known]) if bool(known.any()) else logits.sum() * 0
            losses = {"loss_cls": self.loss_weight * ce,
                      "loss_outlier": self.outlier_weight * uniform_cross_entropy(logits[~known])}
            logits, labels = logits[known], labels[known]
        with torch.no_grad():
            for k in self.topk:
                losses[f"top{k}_acc"] = (topk_accuracy(logits, labels, k) if len(labels)
                                         else torch.zeros((), device=logits.device))
        return losses


@MODELS.register()
class RGBPoseHead(nn.Module):
    """Two linear classifiers, one per pathway, over globally pooled RGB and pose features."""

    def __init__(self, num_classes: int, in_channels: Sequence[int], loss_components=("rgb", "pose"),
                 loss_weights: float | Sequence[float] = 1.0, dropout: float | dict = 0.5, init_std: float = 0.01,
                 loss_cls: dict | None = None, average_clips: str | None = "prob", spatial_type: str = "avg",
                 topk=(1, 5), init_cfg=None):
        super().__init__()
        if len(in_channels) != 2 or spatial_type != "avg":
            raise ConfigError(f"RGBPoseHead: in_channels must be [rgb, pose] and spatial_type 'avg', got "
                              f"{in_channels!r}, {spatial_type!r}")
        self.loss_components = tuple(loss_components)
        if set(self.loss_components) - {"rgb", "pose"}:
            raise ConfigError(f"RGBPoseHead: loss_components must be a subset of ['rgb', 'pose'], got {loss_components!r}")
        weights = [loss_weights] * len(self.loss_components) if isinstance(loss_weights, (int, float)) else list(loss_weights)
        if len(weights) != len(self.loss_components):
            raise ConfigError(f"RGBPoseHead: loss_weights {loss_weights!r} do not match loss_components {loss_components!r}")
        self.loss_weights = dict(zip(self.loss_components, map(float, weights)))
        drop = dropout if isinstance(dropout, dict) else {"rgb": dropout, "pose": dropout}
        self.num_classes, self.in_channels, self.init_std = num_classes, list(in_channels), init_std
        self.average_clips = check_average_clips(average_clips, "RGBPoseHead")
        _check_loss_cfg(loss_cls, "RGBPoseHead")
        self.topk = tuple(topk)
        self.dropout_rgb = nn.Dropout(drop["rgb"]) if drop["rgb"] else nn.Identity()
        self.dropout_pose = nn.Dropout(drop["pose"]) if drop["pose"] else nn.Identity()
        self.fc_rgb = nn.Linear(in_channels[0], num_classes)
        self.fc_pose = nn.Linear(in_channels[1], num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        for fc in (self.fc_rgb, self.fc_pose):
            nn.init.normal_(fc.weight, 0, self.init_std)
            nn.init.zeros_(fc.bias)

    def forward(self, feats: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        x_rgb, x_pose = global_avg_pool(feats[0]), global_avg_pool(feats[1])
        return {"rgb": self.fc_rgb(self.dropout_rgb(x_rgb)), "pose": self.fc_pose(self.dropout_pose(x_pose))}

    def loss(self, logits: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """One weighted cross-entropy per component (``rgb_loss_cls``, ``pose_loss_cls``) + accuracies."""
        losses = {}
        for name in self.loss_components:
            losses[f"{name}_loss_cls"] = self.loss_weights[name] * F.cross_entropy(logits[name], labels)
            with torch.no_grad():
                for k in self.topk:
                    losses[f"{name}_top{k}_acc"] = topk_accuracy(logits[name], labels, k)
        return losses
