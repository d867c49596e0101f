"""Classification metrics with pyskl / mmaction2 semantics (SPEC §6).

``top_k_accuracy`` ranks classes with an ascending argsort and takes the last k (so ties go the
way numpy's sort puts them, as in pyskl); ``mean_class_accuracy`` averages per-class recall over
the union of classes present in the predictions or the labels, a predicted-only class counting 0.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_arrays(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(np.stack([np.asarray(s, dtype=np.float64) for s in scores]) if isinstance(scores, (list, tuple))
                        else scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, classes) with N = len(labels); got {scores.shape} and {labels.shape}")
    return scores, labels


def top_k_accuracy(scores, labels, topk: Sequence[int] = (1, 5)) -> list[float]:
    """Fraction of samples whose label is among their k best-scored classes, for each k."""
    scores, labels = _as_arrays(scores, labels)
    if len(labels) == 0:
        return [float("nan")] * len(topk)
    ranking = np.argsort(scores, axis=1)  # ascending; the best k are the last k columns
    out = []
    for k in topk:
        best = ranking[:, -k:]
        out.append(float((best == labels[:, None]).any(axis=1).mean()))
    return out


def mean_class_accuracy(scores, labels) -> float:
    """Mean per-class recall over classes seen in the labels or the argmax predictions."""
    scores, labels = _as_arrays(scores, labels)
    if len(labels) == 0:
        return float("nan")
    preds = scores.argmax(axis=1)
    classes = np.union1d(preds, labels)
    per_class = []
    for c in classes:
        count = (labels == c).sum()
        per_class.append((preds[labels == c] == c).sum() / count if count else 0.0)
    return float(np.mean(per_class))


def confusion_matrix(preds, labels, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted class."""
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def evaluate(scores, labels) -> dict:
    """The metrics ``posec3d test --json`` reports, as fractions in [0, 1]."""
    scores, labels = _as_arrays(scores, labels)
    ks = (1, 5) if scores.shape[1] >= 5 else (1, scores.shape[1])
    top1, top5 = top_k_accuracy(scores, labels, ks)
    return {"top1": top1, "top5": top5, "mean_class_accuracy": mean_class_accuracy(scores, labels),
            "num_samples": int(len(labels))}
