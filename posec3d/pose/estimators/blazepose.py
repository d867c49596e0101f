"""The embedded estimator: MediaPipe's PoseLandmarker (BlazePose), bundled with the package."""
from __future__ import annotations

import contextlib
import os
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from posec3d.errors import PoseC3DError
from posec3d.pose.estimators.base import PoseEstimator, boxes_from_keypoints, check_frame, empty_poses

#: BlazePose-33 landmark index of each COCO-17 keypoint (both use the subject's left/right).
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

BUNDLED_MODELS = {"full": "pose_landmarker_full.task"}


def bundled_model_path(name: str = "full") -> Path:
    """Path of a ``.task`` bundle shipped inside the package."""
    if name not in BUNDLED_MODELS:
        raise PoseC3DError(f"unknown bundled pose model {name!r}; available: {', '.join(BUNDLED_MODELS)}")
    return Path(str(resources.files("posec3d.pose") / "assets" / BUNDLED_MODELS[name]))


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ start-up chatter of LiteRT/XNNPACK (it writes straight to fd 2).

    What was written is kept and re-raised with the error if model creation fails.
    """
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class MediaPipePose(PoseEstimator):
    """Multi-person BlazePose through the MediaPipe Tasks API (IMAGE mode), fully offline.

    ``model`` is ``"full"`` (the bundled model) or the path of a PoseLandmarker ``.task`` file.
    Scores are BlazePose landmark visibilities. Keypoints are clipped to the frame.

    ``second_pass``: when fewer than ``max_persons`` people are found, run the landmarker again on
    the frame with the found people blacked out (their segmentation masks), so a person hidden
    behind another by the detector's non-maximum suppression still gets found. It roughly doubles
    the cost of frames with fewer people than ``max_persons``.
    """

    def __init__(self, model: str | os.PathLike = "full", max_persons: int = 2, *,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, second_pass: bool = False) -> None:
        import mediapipe  # noqa: F401  (imported here so `import posec3d.pose` stays light)
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        if max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        path = bundled_model_path(str(model)) if str(model) in BUNDLED_MODELS else Path(model)
        if not path.is_file():
            raise PoseC3DError(f"{path}: MediaPipe pose model not found")
        self.model_path = path
        self.max_persons = max_persons
        self.second_pass = second_pass
        self._thresholds = (min_detection_confidence, min_presence_confidence, min_tracking_confidence)

        def create(num_poses: int, masks: bool):
            options = vision.PoseLandmarkerOptions(
                base_options=mp_tasks.BaseOptions(model_asset_path=str(path)),
                running_mode=vision.RunningMode.IMAGE,
                num_poses=num_poses,
                min_pose_detection_confidence=min_detection_confidence,
                min_pose_presence_confidence=min_presence_confidence,
                min_tracking_confidence=min_tracking_confidence,
                output_segmentation_masks=masks,
            )
            with _quiet_native_stderr() as log:
                try:
                    return vision.PoseLandmarker.create_from_options(options)
                except Exception as e:  # mediapipe raises bare RuntimeError/ValueError
                    log.seek(0)
                    detail = log.read().decode(errors="replace").strip().splitlines()[-3:]
                    raise PoseC3DError(f"{path}: cannot load the MediaPipe pose model ({e}) "
                                       f"{' | '.join(detail)}") from None

        self._landmarker = create(max_persons, second_pass)
        self._image_cls = mediapipe.Image
        self._srgb = mediapipe.ImageFormat.SRGB

    def settings(self) -> dict:
        return {**super().settings(), "model": self.model_path.name, "thresholds": self._thresholds,
                "second_pass": self.second_pass}

    def close(self) -> None:
        # Close explicitly: mediapipe 1.2.3 otherwise prints a TypeError at interpreter exit.
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def _detect(self, rgb: np.ndarray):
        return self._landmarker.detect(self._image_cls(image_format=self._srgb, data=rgb))

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = check_frame(rgb)
        height, width = rgb.shape[:2]
        result = self._detect(rgb)
        people = list(result.pose_landmarks)
        if self.second_pass and 0 < len(people) < self.max_persons and result.segmentation_masks:
            masked = rgb.copy()
            for mask in result.segmentation_masks:
                masked[np.squeeze(mask.numpy_view(), -1) > 0.5 if mask.numpy_view().ndim == 3 else mask.numpy_view() > 0.5] = 0
            again = self._detect(np.ascontiguousarray(masked))
            people += list(again.pose_landmarks)[: self.max_persons - len(people)]
        if not people:
            return empty_poses()
        landmarks = np.array([[(lm.x, lm.y, lm.visibility or 0.0) for lm in person] for person in people],
                             dtype=np.float32)  # (P, 33, 3), x/y normalised to [0, 1]
        xy = landmarks[..., :2] * np.array([width, height], np.float32)
        # Landmarks of body parts outside the picture are extrapolated beyond it; keep them on the
        # border so downstream heatmaps stay inside the frame (their visibility is low anyway).
        np.clip(xy[..., 0], 0, width - 1, out=xy[..., 0])
        np.clip(xy[..., 1], 0, height - 1, out=xy[..., 1])
        keypoints = np.ascontiguousarray(xy[:, BLAZEPOSE_TO_COCO17])
        scores = np.ascontiguousarray(np.clip(landmarks[:, BLAZEPOSE_TO_COCO17, 2], 0, 1))
        return keypoints, scores, boxes_from_keypoints(xy)
