"""Video -> one pyskl-format annotation: decode, estimate poses, track people, fill slots."""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from posec3d.pose.estimators.base import PoseEstimator
from posec3d.pose.tracking import PoseTracker
from posec3d.pose.video import VideoReader

#: Frames are downscaled to this short side before pose estimation. MediaPipe resizes to 224/256
#: internally anyway, so 1080p input only costs decode/resize time; keypoints are mapped back to
#: original pixels (measured on the NTU clips: see tests/pose/test_extract.py).
DEFAULT_SHORT_SIDE = 540


class VideoTruncatedWarning(UserWarning):
    """The video ended (or broke) before the frame count in its header; the decoded part is kept."""


def iter_video_poses(path: str | os.PathLike, estimator: PoseEstimator, *, max_frames: int | None = None,
                     stride: int = 1, short_side: int | None = DEFAULT_SHORT_SIDE,
                     reader: VideoReader | None = None
                     ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Frame-level API: yield ``(frame_index, rgb, keypoints, scores, boxes)`` per kept frame.

    ``rgb`` is the (possibly downscaled) frame given to the estimator; keypoints and boxes are in
    pixels of the *original* video. Persons are untracked (estimator order).
    """
    own_reader = reader is None
    reader = reader or VideoReader(path, max_frames=max_frames, stride=stride, short_side=short_side)
    estimator.reset()  # each video's poses must not depend on the video before it
    sx, sy = reader.width / reader.out_width, reader.height / reader.out_height
    to_original = np.array([sx, sy], np.float32)
    try:
        for index, rgb in reader:
            keypoints, scores, boxes = estimator(rgb)
            keypoints = keypoints * to_original
            boxes = boxes * np.tile(to_original, 2)
            yield index, rgb, keypoints, scores, boxes
    finally:
        if own_reader:
            reader.close()


def extract_video(path: str | os.PathLike, estimator: PoseEstimator | None = None, max_persons: int = 2,
                  max_frames: int | None = None, stride: int = 1,
                  progress: Callable[..., None] | None = None, label: int | None = None, *,
                  short_side: int | None = DEFAULT_SHORT_SIDE) -> dict:
    """Extract the poses of one video as a pyskl annotation dict (SPEC §1.2).

    Keys: ``frame_dir`` (file stem), ``filename`` (the absolute path), ``label`` (only when given),
    ``img_shape`` = ``original_shape`` = (H, W) of the video, ``total_frames`` (frames kept after
    ``stride`` / ``max_frames``), ``keypoint`` float32 (M, T, 17, 2) in original pixels and
    ``keypoint_score`` float32 (M, T, 17); 1 <= M <= ``max_persons``, tracked people in fixed slots,
    the most present person first. Without ``estimator`` the bundled MediaPipe model is used.

    A truncated video keeps the frames that decoded and emits a ``VideoTruncatedWarning``.
    ``progress(advance=1, total=..., fps=...)`` is called once per kept frame.
    """
    own_estimator = estimator is None
    if own_estimator:
        from posec3d.pose.estimators.blazepose import MediaPipePose

        estimator = MediaPipePose(max_persons=max_persons)
    try:
        with VideoReader(path, max_frames=max_frames, stride=stride, short_side=short_side) as reader:
            expected = None
            if reader.expected_frames:
                expected = -(-reader.expected_frames // stride)
                if max_frames is not None:
                    expected = min(expected, max_frames)
            tracker = PoseTracker()
            start = time.perf_counter()
            for done, (_, _, keypoints, scores, boxes) in enumerate(
                    iter_video_poses(path, estimator, reader=reader), start=1):
                tracker.update(keypoints, scores, boxes)
                if progress is not None:
                    progress(advance=1, total=expected, fps=done / max(time.perf_counter() - start, 1e-9))
            if progress is not None and tracker.num_frames != expected:  # the header was wrong
                progress(advance=0, total=tracker.num_frames)
            if reader.truncated:
                warnings.warn(VideoTruncatedWarning(f"{Path(path)}: truncated video, {reader.truncation_reason}; "
                                                    f"kept the {tracker.num_frames} frames that decoded"),
                              stacklevel=2)
            height, width = reader.height, reader.width
    finally:
        if own_estimator:
            estimator.close()
    keypoint, keypoint_score = tracker.to_arrays(max_persons)
    annotation = {
        "frame_dir": Path(path).stem,
        # Absolute: a relative name only works from the folder extract ran in (vis elsewhere
        # would silently fall back to a blank canvas). absolute(), not resolve(): links keep their name.
        "filename": str(Path(path).absolute()),
        "img_shape": (height, width),
        "original_shape": (height, width),
        "total_frames": int(keypoint.shape[1]),
        "keypoint": keypoint,
        "keypoint_score": keypoint_score,
    }
    if label is not None:  # unlabelled videos carry no label key, as in pyskl's custom builder
        annotation["label"] = int(label)
    return annotation


def save_annotation_file(path: str | os.PathLike, annotations: list[dict], split: dict[str, list[str]]) -> None:
    """Validate and write ``{'split': ..., 'annotations': ...}`` atomically (pyskl layout).

    The one place pose/ reaches into data/: annotation files have a single writer.
    """
    from posec3d.data.annotations import save_annotations

    save_annotations(path, annotations, split=split)
