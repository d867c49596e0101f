"""The one interface every pose backend implements."""
from __future__ import annotations

import abc

import numpy as np

from posec3d.pose.geometry import NUM_KEYPOINTS, boxes_from_keypoints  # noqa: F401 (re-exported)

def empty_poses() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The result for a frame with nobody in it."""
    return (np.zeros((0, NUM_KEYPOINTS, 2), np.float32), np.zeros((0, NUM_KEYPOINTS), np.float32),
            np.zeros((0, 4), np.float32))


class PoseEstimator(abc.ABC):
    """Frame in, people out.

    ``estimator(rgb)`` takes one C-contiguous RGB uint8 frame (H, W, 3) and returns
    ``(keypoints (P, 17, 2), scores (P, 17), boxes (P, 4))`` as float32: COCO-17 keypoints in pixel
    coordinates of that frame, per-keypoint confidences in [0, 1], and person boxes x1, y1, x2, y2.
    P may be 0. Persons come in no particular order; tracking across frames is done elsewhere.
    """

    #: the most people one call returns
    max_persons: int

    @property
    def frame_independent(self) -> bool:
        """True when a call's result depends on its frame alone (no state carried between calls), so
        several instances may estimate consecutive frames at once with the same results as one."""
        return False

    @abc.abstractmethod
    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ...

    def reset(self) -> None:
        """Forget per-video state before a new video (extract_video calls it)."""

    def close(self) -> None:
        """Release native resources (models, sessions)."""

    def settings(self) -> dict:
        """Everything that changes the output, for cache keys."""
        return {"type": type(self).__name__, "max_persons": self.max_persons}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_frame(rgb: np.ndarray) -> np.ndarray:
    """Validate a frame and make it C-contiguous (backends read raw buffers)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got "
                         f"{getattr(rgb, 'dtype', type(rgb))} {getattr(rgb, 'shape', '')}")
    return np.ascontiguousarray(rgb)
