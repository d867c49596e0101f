"""Pose geometry shared by the estimators and the tracker: boxes, overlaps, keypoint distances."""
from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 17  # COCO-17, the layout PoseC3D is trained on


def boxes_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Tight (x1, y1, x2, y2) boxes around (P, V, 2) keypoints."""
    if len(keypoints) == 0:
        return np.zeros((0, 4), np.float32)
    return np.concatenate([keypoints.min(1), keypoints.max(1)], axis=1).astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between (N, 4) and (M, 4) x1, y1, x2, y2 boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def keypoint_distance(kp_a: np.ndarray, sc_a: np.ndarray, kp_b: np.ndarray, sc_b: np.ndarray,
                      min_score: float = 0.1) -> np.ndarray:
    """(N, M) mean L2 distance over the joints confident in both poses (inf if none is)."""
    dist = np.linalg.norm(kp_a[:, None] - kp_b[None], axis=-1)  # (N, M, V)
    both = (sc_a[:, None] > min_score) & (sc_b[None] > min_score)
    count = both.sum(-1)
    total = np.where(both, dist, 0).sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.inf)
