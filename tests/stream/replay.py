"""A pose estimator replaying real poses, so stream tests need no MediaPipe run."""
from __future__ import annotations

import numpy as np


class ReplayPoses:
    """A pose estimator that returns the poses of an annotation, frame after frame.

    It lets the stream be tested on real poses without running MediaPipe; the frames pushed are
    1/``shrink`` of the original size, so keypoints are returned in those pixels (``shrink`` is a
    power of two: scaling back is exact)."""

    max_persons = 2

    def __init__(self, annotation: dict, shrink: int = 8) -> None:
        self.kp = np.asarray(annotation["keypoint"], np.float32)
        self.sc = np.asarray(annotation["keypoint_score"], np.float32)
        self.shrink = shrink
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def close(self) -> None:
        pass

    def __call__(self, rgb):
        from posec3d.pose.geometry import boxes_from_keypoints

        t = self.t
        self.t += 1
        present = [m for m in range(len(self.kp)) if (self.sc[m, t] > 0).any()]
        kp = self.kp[present, t] / self.shrink
        return kp, self.sc[present, t], boxes_from_keypoints(kp).astype(np.float32)
