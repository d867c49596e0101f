"""``PoseNoise``: make clean ground-truth skeletons look like a pose estimator's output.

The bundled Penn Action model trains on annotated joints but classifies MediaPipe poses, which
jitter from frame to frame, carry soft visibility scores instead of 0/1 and miss joints or whole
frames. This train-time transform adds those three kinds of noise. Registered in
``posec3d.registry.TRANSFORMS`` with the other transforms.
"""
from __future__ import annotations

import numpy as np

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


@TRANSFORMS.register()
class PoseNoise:
    """Jitter, score softening and dropout of keypoints (train only; uses numpy's global RNG).

    - ``jitter``: Gaussian noise on every present (non-zero) coordinate, std = ``jitter`` x the
      longer side of ``img_shape`` (place it after PoseCompact/Resize, where that side is the
      person's box).
    - ``score_range``: each positive score is multiplied by U(low, high) per joint and frame.
    - ``joint_drop`` / ``frame_drop``: probability that a joint in a frame / a whole frame of a
      person gets score 0 (a missed joint / a missed detection).
    """

    def __init__(self, jitter: float = 0.015, score_range=(0.6, 1.0), joint_drop: float = 0.03,
                 frame_drop: float = 0.03):
        low, high = (float(v) for v in score_range)
        if not (0 <= low <= high <= 1) or jitter < 0 or not (0 <= joint_drop < 1) or not (0 <= frame_drop < 1):
            raise ConfigError(f"PoseNoise: bad settings jitter={jitter}, score_range={score_range}, "
                              f"joint_drop={joint_drop}, frame_drop={frame_drop}")
        self.jitter, self.score_range = float(jitter), (low, high)
        self.joint_drop, self.frame_drop = float(joint_drop), float(frame_drop)

    def __call__(self, results: dict) -> dict:
        kp = np.asarray(results["keypoint"], dtype=np.float32)
        score = results.get("keypoint_score")
        score = np.ones(kp.shape[:-1], np.float32) if score is None else np.array(score, dtype=np.float32)
        present = kp != 0  # zero means "missing" to PoseCompact and Flip: keep it zero
        if self.jitter:
            side = float(max(results["img_shape"]))
            kp = np.where(present, kp + np.random.normal(0, self.jitter * side, kp.shape).astype(np.float32), kp)
        low, high = self.score_range
        if low < 1:
            score = score * np.random.uniform(low, high, score.shape).astype(np.float32)
        keep = np.random.rand(*score.shape) >= self.joint_drop
        keep &= (np.random.rand(*score.shape[:2]) >= self.frame_drop)[..., None]
        results["keypoint"] = kp
        results["keypoint_score"] = np.where(keep, score, 0).astype(np.float32)
        return results

    def __repr__(self) -> str:
        return (f"PoseNoise(jitter={self.jitter}, score_range={self.score_range}, "
                f"joint_drop={self.joint_drop}, frame_drop={self.frame_drop})")
