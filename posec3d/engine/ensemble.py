"""Score fusion of several streams (joint + limb, ...): s = sum_i w_i * s_i (SPEC §6).

Reads pyskl dumps (a list of per-video float arrays, dataset order), mmaction2 dumps (a list of
dicts with ``pred_score`` and ``gt_label`` tensors) and our own JSON dumps, always through the
safe unpickler: a score file is data, never code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from posec3d.errors import AnnotationError, ConfigError
from posec3d.engine.metrics import evaluate


@dataclass
class ScoreDump:
    path: str
    scores: np.ndarray          # (N, classes) float64
    labels: np.ndarray | None   # (N,) when the dump carries ground truth


def _to_numpy(x, where: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor (mmaction2 dumps)
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: not a numeric score vector ({type(x).__name__})") from None


def load_scores(path: str | os.PathLike) -> ScoreDump:
    """Read one score dump (pyskl list of arrays, mmaction2 list of dicts, or JSON list)."""
    from posec3d.data.annotations import load_annotation_file

    path = Path(path)
    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise AnnotationError(f"{path}: score file not found")
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise AnnotationError(f"{path}: invalid JSON ({e})") from None
    else:
        items = load_annotation_file(path)
    if not isinstance(items, (list, tuple)) or not items:
        raise AnnotationError(f"{path}: expected a non-empty list of per-video scores, got {type(items).__name__}")
    rows, labels = [], []
    for i, item in enumerate(items):
        where = f"{path}: item {i}"
        if isinstance(item, dict):
            if "pred_score" not in item:
                keys = sorted(item)
                raise AnnotationError(f"{where}: dict without 'pred_score' (keys {keys}); multi-stream "
                                      "(rgb/pose) dumps are not supported here")
            rows.append(_to_numpy(item["pred_score"], where).reshape(-1))
            if "gt_label" in item:
                labels.append(int(_to_numpy(item["gt_label"], where).reshape(-1)[0]))
        else:
            rows.append(_to_numpy(item, where).reshape(-1))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise AnnotationError(f"{path}: score vectors of different lengths {sorted(widths)}")
    if labels and len(labels) != len(rows):
        raise AnnotationError(f"{path}: only {len(labels)} of {len(rows)} items carry 'gt_label'")
    return ScoreDump(str(path), np.stack(rows), np.asarray(labels, dtype=np.int64) if labels else None)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fuse(dumps: Sequence[ScoreDump], weights: Sequence[float] | None = None,
         apply_softmax: bool = False) -> np.ndarray:
    """Weighted sum of the streams' score matrices (softmax applied per stream first if asked)."""
    if not dumps:
        raise ConfigError("ensemble: give at least one score file")
    weights = [1.0] * len(dumps) if not weights else [float(w) for w in weights]
    if len(weights) != len(dumps):
        raise ConfigError(f"ensemble: {len(weights)} weights for {len(dumps)} score files")
    shape = dumps[0].scores.shape
    for d in dumps[1:]:
        if d.scores.shape != shape:
            raise AnnotationError(f"{d.path}: scores of shape {d.scores.shape} do not match "
                                  f"{dumps[0].path} {shape} (same videos, same order, same classes?)")
    fused = np.zeros(shape, dtype=np.float64)
    for w, d in zip(weights, dumps):
        fused += w * (softmax(d.scores) if apply_softmax else d.scores)
    return fused


def resolve_labels(dumps: Sequence[ScoreDump], ann_file: str | None, split: str | None) -> np.ndarray:
    """Labels from the annotation file if given, else from the dumps (which must agree)."""
    n = len(dumps[0].scores)
    if ann_file:
        from posec3d.data.annotations import load_annotations

        labels = np.asarray([int(s["label"]) for s in load_annotations(ann_file, split, validate=False)])
        if len(labels) != n:
            raise AnnotationError(f"{ann_file}: split {split!r} has {len(labels)} samples but the score "
                                  f"files have {n}")
        return labels
    carried = [d for d in dumps if d.labels is not None]
    if not carried:
        raise ConfigError("ensemble: these score files carry no labels; pass --ann-file (and --split)")
    for d in carried[1:]:
        if not np.array_equal(d.labels, carried[0].labels):
            raise AnnotationError(f"{d.path}: its gt_label differ from {carried[0].path}'s (different order?)")
    return carried[0].labels


def check_labels(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Labels must index the score vectors: a negative one would score as never right, silently."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise AnnotationError(f"{source}: label {int(labels[bad[0]])} of item {int(bad[0])} is outside the "
                              f"{num_classes} classes of the scores (0..{num_classes - 1})"
                              + (f"; {len(bad)} such labels" if len(bad) > 1 else ""))


def ensemble(paths: Sequence[str], weights: Sequence[float] | None = None, ann_file: str | None = None,
             split: str | None = None, apply_softmax: bool = False) -> dict:
    """Fused metrics, plus each stream's own, as fractions."""
    dumps = [load_scores(p) for p in paths]
    labels = resolve_labels(dumps, ann_file, split)
    check_labels(labels, dumps[0].scores.shape[1], ann_file or dumps[0].path)
    fused = fuse(dumps, weights, apply_softmax)
    result = evaluate(fused, labels)
    result["weights"] = [1.0] * len(dumps) if not weights else [float(w) for w in weights]
    result["streams"] = {d.path: evaluate(d.scores, labels) for d in dumps}
    return result
