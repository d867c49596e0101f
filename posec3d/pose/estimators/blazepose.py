"""The embedded estimator: MediaPipe's PoseLandmarker (BlazePose), bundled with the package."""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from posec3d.errors import PoseC3DError
from posec3d.pose.estimators.base import PoseEstimator, check_frame, empty_poses
from posec3d.pose.geometry import box_iou, boxes_from_keypoints, keypoint_distance

#: BlazePose-33 landmark index of each COCO-17 keypoint (both use the subject's left/right).
BLAZEPOSE_TO_COCO17 = np.array([0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28])

BUNDLED_MODELS = {"full": "pose_landmarker_full.task"}

#: a second-pass pose this close to a known one is the same person found again
DUPLICATE_IOU = 0.7
DUPLICATE_DISTANCE = 0.1


def bundled_model_path(name: str = "full") -> Path:
    """Path of a ``.task`` bundle shipped inside the package."""
    if name not in BUNDLED_MODELS:
        raise PoseC3DError(f"unknown bundled pose model {name!r}; available: {', '.join(BUNDLED_MODELS)}")
    return Path(str(resources.files("posec3d.pose") / "assets" / BUNDLED_MODELS[name]))


# fd 2 is one per process: two threads silencing it at once would each save the other's sink and
# leave stderr pointing at a closed temp file (every later error message lost), so one at a time.
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence the C++ start-up chatter of LiteRT/XNNPACK (it writes straight to fd 2).

    What was written stays readable from the yielded file (shown with a model-loading error).
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
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

    ``second_pass`` finds people the detector misses when bodies overlap (its non-maximum
    suppression keeps one box of a hugging pair): when fewer than ``max_persons`` people are found,
    the landmarker runs again on the frame with the found people painted over in the frame's mean
    colour (their segmentation masks; painting them black leaves a silhouette that is found again).
    A pose found that way counts only if it is not a copy of a known one (box IoU below
    ``DUPLICATE_IOU`` and mean keypoint distance above ``DUPLICATE_DISTANCE`` of the body size).
    ``"always"`` does this on every such frame (about half the speed); ``"auto"`` (default) only
    within ``probe_every`` frames of a frame with ``max_persons`` people and on every
    ``probe_every``-th frame otherwise, so single-person videos pay about 1/``probe_every`` of the
    cost; ``"off"`` never.
    """

    def __init__(self, model: str | os.PathLike = "full", max_persons: int = 2, *,
                 min_detection_confidence: float = 0.5, min_presence_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, second_pass: str = "auto", probe_every: int = 10) -> None:
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
        if second_pass not in ("auto", "always", "off"):
            raise ValueError(f"second_pass must be 'auto', 'always' or 'off', got {second_pass!r}")
        self.second_pass = second_pass
        self.probe_every = probe_every
        self._calls = 0
        self._last_full = -10**9  # call index of the last frame with max_persons people
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

        # Segmentation masks cost ~10% more per frame, so a second landmarker makes them only for
        # the frames that may get a second pass.
        self._landmarker = create(max_persons, False)
        self._masking_landmarker = create(max_persons, True) if second_pass != "off" and max_persons > 1 else None
        self._warm: set[int] = set()
        self._image_cls = mediapipe.Image
        self._srgb = mediapipe.ImageFormat.SRGB

    @property
    def frame_independent(self) -> bool:
        # IMAGE mode keeps nothing between frames; only the second-pass schedule does.
        return self._masking_landmarker is None

    def settings(self) -> dict:
        return {**super().settings(), "model": self.model_path.name, "thresholds": self._thresholds,
                "second_pass": self.second_pass, "probe_every": self.probe_every}

    def reset(self) -> None:
        """Restart the second-pass schedule, so each video's result is independent of the last."""
        self._calls = 0
        self._last_full = -10**9  # call index of the last frame with max_persons people

    def close(self) -> None:
        # Close explicitly: mediapipe 1.2.3 otherwise prints a TypeError at interpreter exit.
        with _quiet_native_stderr():  # LiteRT logs each accelerator it tears down
            for landmarker in (self._landmarker, self._masking_landmarker):
                if landmarker is not None:
                    landmarker.close()
        self._landmarker = self._masking_landmarker = None

    def _detect(self, rgb: np.ndarray, masks: bool = False):
        landmarker = self._masking_landmarker if masks else self._landmarker
        if landmarker is None:
            raise RuntimeError("MediaPipePose used after close()")
        image = self._image_cls(image_format=self._srgb, data=rgb)
        if id(landmarker) not in self._warm:  # a first inference logs graph set-up warnings
            with _quiet_native_stderr():
                result = landmarker.detect(image)
            self._warm.add(id(landmarker))
            return result
        return landmarker.detect(image)

    def _second_pass_due(self) -> bool:
        """Whether this frame gets a second pass if it shows fewer than max_persons people."""
        if self._masking_landmarker is None:
            return False
        if self.second_pass == "always":
            return True
        recently_full = self._calls - self._last_full <= self.probe_every
        return recently_full or self._calls % self.probe_every == 0

    def _landmarks(self, people) -> np.ndarray:
        """(P, 33, 3) x, y normalised to [0, 1] and visibility."""
        return np.array([[(lm.x, lm.y, lm.visibility or 0.0) for lm in person] for person in people],
                        dtype=np.float32).reshape(len(people), 33, 3)

    def _find_hidden(self, rgb: np.ndarray, result, known: np.ndarray) -> np.ndarray:
        """Landmarks of extra people found with the known ones painted over (may be empty)."""
        masked = rgb.copy()
        fill = rgb.reshape(-1, 3).mean(0).astype(np.uint8)
        for mask in result.segmentation_masks:
            masked[np.squeeze(mask.numpy_view(), axis=-1) > 0.5] = fill
        extra = self._landmarks(self._detect(masked).pose_landmarks)
        if not len(extra):
            return extra
        shape = np.array(rgb.shape[1::-1], np.float32)
        known_xy, extra_xy = known[..., :2] * shape, extra[..., :2] * shape
        known_box, extra_box = boxes_from_keypoints(known_xy), boxes_from_keypoints(extra_xy)
        size = np.maximum((known_box[:, 2:] - known_box[:, :2]).max(-1), 1.0)
        dist = keypoint_distance(known_xy, known[..., 2], extra_xy, extra[..., 2]) / size[:, None]
        copy = (box_iou(known_box, extra_box) > DUPLICATE_IOU) | (dist < DUPLICATE_DISTANCE)
        return extra[~copy.any(0)][: self.max_persons - len(known)]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = check_frame(rgb)
        height, width = rgb.shape[:2]
        due = self._second_pass_due()
        result = self._detect(rgb, masks=due)
        landmarks = self._landmarks(result.pose_landmarks)
        if due and 0 < len(landmarks) < self.max_persons and result.segmentation_masks:
            landmarks = np.concatenate([landmarks, self._find_hidden(rgb, result, landmarks)])
        if len(landmarks) >= self.max_persons:
            self._last_full = self._calls
        self._calls += 1
        if not len(landmarks):
            return empty_poses()
        xy = landmarks[..., :2] * np.array([width, height], np.float32)
        # Landmarks of body parts outside the picture are extrapolated beyond it; keep them on the
        # border so downstream heatmaps stay inside the frame (their visibility is low anyway).
        np.clip(xy[..., 0], 0, width - 1, out=xy[..., 0])
        np.clip(xy[..., 1], 0, height - 1, out=xy[..., 1])
        keypoints = np.ascontiguousarray(xy[:, BLAZEPOSE_TO_COCO17])
        scores = np.ascontiguousarray(np.clip(landmarks[:, BLAZEPOSE_TO_COCO17, 2], 0, 1))
        return keypoints, scores, boxes_from_keypoints(xy)
