"""Checks for score dumps (pyskl lists of arrays, mmaction2 lists of dicts): every item a finite
numeric vector of one length, every ``gt_label`` one non-negative integer, each problem one line."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from posec3d.errors import AnnotationError, short_repr


def score_vector(value: Any, where: str) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor (mmaction2 dumps)
        value = value.detach().cpu().numpy()
    arr = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple)) else None
    if arr is None or arr.dtype.kind not in "biuf" or arr.dtype == np.bool_ or arr.size == 0:
        kind = arr.dtype if arr is not None else type(value).__name__
        raise AnnotationError(f"{where}: scores must be a non-empty vector of real numbers, got {kind} "
                              f"{short_repr(value)}")
    arr = arr.astype(np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise AnnotationError(f"{where}: scores contain NaN or inf")
    return arr


def label_value(value: Any, where: str) -> int:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value) if isinstance(value, (np.ndarray, list, tuple, int, np.integer)) else None
    if (arr is None or arr.size != 1 or arr.dtype.kind not in "iu" or isinstance(value, bool)):
        raise AnnotationError(f"{where}: gt_label must be one integer, got {short_repr(value)}")
    label = int(arr.reshape(-1)[0])
    if not 0 <= label < 2**31:
        raise AnnotationError(f"{where}: gt_label {short_repr(label)} is not a class index")
    return label


def check_score_items(items: Any, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """(scores (N, C) float64, labels (N,) int64 or None) of a loaded score dump."""
    if not isinstance(items, (list, tuple)) or not items:
        raise AnnotationError(f"{path}: expected a non-empty list of per-video scores, got "
                              f"{type(items).__name__}")
    rows, labels = [], []
    for i, item in enumerate(items):
        where = f"{path}: item {i}"
        if isinstance(item, dict):
            if "pred_score" not in item:
                raise AnnotationError(f"{where}: dict without 'pred_score' (keys {short_repr(list(item))}); "
                                      "multi-stream (rgb/pose) dumps are not supported here")
            rows.append(score_vector(item["pred_score"], where))
            if "gt_label" in item:
                labels.append(label_value(item["gt_label"], where))
        else:
            rows.append(score_vector(item, where))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise AnnotationError(f"{path}: score vectors of different lengths {sorted(widths)[:5]}")
    if labels and len(labels) != len(rows):
        raise AnnotationError(f"{path}: only {len(labels)} of {len(rows)} items carry 'gt_label'")
    return np.stack(rows), (np.asarray(labels, dtype=np.int64) if labels else None)
