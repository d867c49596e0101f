"""``StreamRecognizer``: frames in one at a time, each tracked person's action out.

Per frame: pose estimation, tracking (``pose.tracking.PoseTracker``, causal: each frame's ids are
final when the frame is pushed), and a ring of the last ``window`` frames. Every ``stride`` frames
the persons seen in the ring are classified together, one batch through the recognizer, and each
person's label is smoothed over its last ``smoothing`` windows. Which windows exist is the same
rule as ``engine.inference.sliding_windows``: ``[0, N), [S, S+N), ...`` and, when the stream ends,
one more window ending at the last frame if the last one did not (one window for a short video).

With ``asynchronous=True`` the recognizer runs in a worker thread, so a slow recognizer step never
holds up the frames: results come out with a later ``push`` (or ``close``). Otherwise each
``push`` classifies inline. Both give the same windows and scores.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from posec3d.pose.geometry import NUM_KEYPOINTS
from posec3d.stream.labels import is_unknown, resolve_unknown_threshold

#: a person must be seen in this many frames of a window (fewer in a shorter window) to be classified
MIN_PERSON_FRAMES = 8
#: frames are downscaled to this short side before pose estimation (as ``pose.extract`` does)
POSE_SHORT_SIDE = 540
#: a person's label is the mean of the scores of their last this many windows
SMOOTHING = 3


def default_window(recognizer) -> tuple[int, int]:
    """(window, stride) from the model's clip length: windows of 3 clips, a new one every clip."""
    from posec3d.engine.inference import test_pipeline_dicts

    clip_len = 16
    for t in test_pipeline_dicts(recognizer.cfg):
        if t.get("type") in ("UniformSampleFrames", "UniformSample", "SampleFrames") and t.get("clip_len"):
            clip_len = int(t["clip_len"])
            break
    return 3 * clip_len, clip_len


@dataclass
class PersonState:
    """One tracked person in one frame, with the latest (smoothed) action of that person."""

    person: int
    box: Optional[tuple[float, float, float, float]]     # x1, y1, x2, y2 in original pixels
    keypoints: np.ndarray                                 # (17, 2) original pixels
    scores: np.ndarray                                    # (17,)
    label: Optional[str] = None
    score: Optional[float] = None
    unknown: bool = False
    window: Optional[tuple[int, int]] = None


@dataclass
class StreamOutput:
    """What one ``push`` gives: the persons in that frame and the events that happened since."""

    frame: int
    t: float
    persons: list[PersonState]
    events: list[dict]
    pose_ms: float = 0.0


@dataclass
class FramePoses:
    """One frame's people from ``StreamRecognizer.estimate``, in original pixels."""

    keypoints: np.ndarray       # (P, 17, 2)
    scores: np.ndarray          # (P, 17)
    boxes: np.ndarray           # (P, 4)
    pose_ms: float
    frame_size: tuple[int, int]  # (w, h) original pixels


@dataclass
class _Entry:
    frame: int
    t: float
    received: Optional[float]
    poses: dict[int, tuple[np.ndarray, np.ndarray]]


@dataclass
class _Label:
    history: deque
    label: Optional[str] = None
    score: Optional[float] = None
    unknown: bool = False
    window: Optional[tuple[int, int]] = None
    announced: Optional[tuple[str, bool]] = None
    windows: list = field(default_factory=list)   # [(start, end, Prediction, unknown)] with keep_history


@dataclass
class _Job:
    start: int
    end: int
    t: float
    received: Optional[float]
    persons: list[int]
    annotations: list[dict]


class StreamRecognizer:
    """Per-person actions of a stream of frames (one instance per video or camera; not thread-safe).

    ``push(rgb, t)`` takes an RGB uint8 frame and its time in seconds. Give ``original_size=(w, h)``
    when the frame was already downscaled by the decoder (keypoints then come out in original
    pixels); otherwise frames larger than ``POSE_SHORT_SIDE`` are downscaled here.
    """

    def __init__(self, recognizer, *, estimator=None, window: Optional[int] = None, stride: Optional[int] = None,
                 max_persons: int = 2, unknown_threshold: Optional[float] = None, smoothing: int = SMOOTHING,
                 asynchronous: bool = False, max_pending: int = 2, keep_history: bool = False) -> None:
        from posec3d.pose.tracking import PoseTracker

        self.recognizer = recognizer
        if window is None:
            self.window, default_stride = default_window(recognizer)
            self.stride = int(stride or default_stride)
        else:
            self.window, self.stride = int(window), int(stride or max(1, int(window) // 2))
        if self.window < 1 or self.stride < 1:
            raise ValueError(f"window and stride must be positive, got {self.window} and {self.stride}")
        self.max_persons = max_persons
        self.unknown_threshold = resolve_unknown_threshold(recognizer, unknown_threshold)
        self.smoothing = max(1, int(smoothing))
        self._own_estimator = estimator is None
        if estimator is None:
            from posec3d.pose.estimators.blazepose import MediaPipePose

            # No second pass: it doubles the pose time on frames with fewer people than max_persons.
            estimator = MediaPipePose(max_persons=max_persons, second_pass="off")
        self.estimator = estimator
        estimator.reset()
        self.tracker = PoseTracker()
        self.keep_history = keep_history
        self.frame_size: Optional[tuple[int, int]] = None    # (w, h) original pixels
        self.frames = 0                                      # frames pushed
        self._ring: deque[_Entry] = deque(maxlen=self.window)
        self._last_window_end = 0                            # in pushed frames
        self._seen: dict[int, int] = {}                      # person -> pushed-frame count when last seen
        self._labels: dict[int, _Label] = {}
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self.windows_classified = 0
        self.windows_skipped = 0                             # asynchronous and the recognizer was busy
        self.label_latencies_ms: list[float] = []
        self._error: Optional[BaseException] = None
        self._closed = False
        self._jobs: Optional[queue.Queue] = None
        if asynchronous:
            self._jobs = queue.Queue(maxsize=max(1, max_pending))
            self._worker = threading.Thread(target=self._work, name="posec3d-actions", daemon=True)
            self._worker.start()

    # ------------------------------------------------------------------------------------------
    def push(self, rgb: np.ndarray, t: float, *, frame_index: Optional[int] = None,
             original_size: Optional[tuple[int, int]] = None, received: Optional[float] = None,
             block: bool = True) -> StreamOutput:
        """Add one frame. ``frame_index`` is the source's frame number (default: frames pushed so far);
        ``received`` the ``time.perf_counter()`` at which it was decoded (for label latency);
        ``block=False`` skips a window instead of waiting when the asynchronous recognizer is busy."""
        return self.push_poses(self.estimate(rgb, original_size), t, frame_index=frame_index,
                               received=received, block=block)

    def estimate(self, rgb: np.ndarray, original_size: Optional[tuple[int, int]] = None,
                 estimator=None) -> "FramePoses":
        """Pose estimation alone, for ``push_poses``: keypoints and boxes in original pixels.

        Touches no state of this object, so several frames may be estimated at once, each with its
        own ``estimator`` (``run_live`` does, when the estimator is frame-independent)."""
        started = time.perf_counter()
        pose_rgb, scale, frame_size = self._pose_frame(rgb, original_size)
        keypoints, scores, boxes = (estimator or self.estimator)(pose_rgb)
        return FramePoses(keypoints * scale, scores, boxes * np.tile(scale, 2),
                          (time.perf_counter() - started) * 1000, frame_size)

    def push_poses(self, found: "FramePoses", t: float, *, frame_index: Optional[int] = None,
                   received: Optional[float] = None, block: bool = True) -> StreamOutput:
        """``push`` for a frame whose poses ``estimate`` gave; frames must come in order."""
        self._raise_worker_error()
        if self._closed:
            raise RuntimeError("StreamRecognizer.push after close()")
        if self.frame_size is None:
            self.frame_size = found.frame_size
        index = self.frames if frame_index is None else int(frame_index)
        keypoints, scores, boxes, pose_ms = found.keypoints, found.scores, found.boxes, found.pose_ms
        ids = [int(p) for p in self.tracker.update(keypoints, scores, boxes)]
        self.frames += 1
        # A tracker may give two detections of one person the same id: keep the more confident.
        best: dict[int, int] = {}
        for i, p in enumerate(ids):
            if p not in best or scores[i].mean() > scores[best[p]].mean():
                best[p] = i
        poses = {p: (keypoints[i], scores[i]) for p, i in best.items()}
        self._ring.append(_Entry(index, float(t), received, poses))
        events = []
        for p in poses:
            if p not in self._seen:
                events.append({"event": "person_found", "t": round(float(t), 3), "frame": index, "person": p})
            self._seen[p] = self.frames
        for p, last in list(self._seen.items()):
            if self.frames - last > self.tracker.max_age:  # the tracker no longer matches it either
                del self._seen[p]
                events.append({"event": "person_lost", "t": round(float(t), 3), "frame": index, "person": p,
                               "last_frame": self._frame_of(last)})
        with self._lock:
            self._events.extend(events)
        if self.frames >= self.window and (self.frames - self.window) % self.stride == 0:
            self._submit(block)
        if not self.keep_history and self.frames % 64 == 0:
            self._forget_old_frames()
        persons = []
        with self._lock:
            for p, i in best.items():
                lab = self._labels.get(p)
                persons.append(PersonState(p, tuple(float(v) for v in boxes[i]), keypoints[i], scores[i],
                                           *(lab.label, lab.score, lab.unknown, lab.window) if lab else ()))
            events, self._events = self._events, []
        return StreamOutput(index, float(t), persons, events, pose_ms)

    def close(self) -> list[dict]:
        """Classify the last window if the stride left frames uncovered; wait for the recognizer;
        return the remaining events. Closes the estimator if this object made it."""
        if self._closed:
            return []
        try:
            if self._error is None and self.frames and self._last_window_end < self.frames:
                self._submit(block=True)
            if self._jobs is not None:
                self._jobs.put(None)
                self._worker.join()
            self._raise_worker_error()
        finally:
            self._closed = True
            if self._own_estimator:
                self.estimator.close()
        with self._lock:
            events, self._events = self._events, []
        return events

    def draw(self, rgb: np.ndarray, output: StreamOutput, status: Optional[str] = None) -> np.ndarray:
        """The frame with each person's skeleton, box, id and label, and ``status`` in a corner."""
        from posec3d.stream.overlay import draw_persons

        return draw_persons(rgb, output.persons, self.frame_size or (rgb.shape[1], rgb.shape[0]), status=status)

    # ------------------------------------------------------------------------------------------
    def person_windows(self) -> dict[int, list]:
        """With ``keep_history``: person -> [(start, end, Prediction, unknown)] of every window."""
        with self._lock:
            return {p: list(lab.windows) for p, lab in sorted(self._labels.items()) if lab.windows}

    def person_annotation(self, person: int) -> dict:
        """With ``keep_history``: all frames of one tracked person as an annotation (M = 1)."""
        track = self.tracker.tracks[person]
        kp = np.zeros((1, self.frames, NUM_KEYPOINTS, 2), np.float32)
        sc = np.zeros((1, self.frames, NUM_KEYPOINTS), np.float32)
        for f, (k, s) in track.frames.items():
            kp[0, f], sc[0, f] = k, s
        w, h = self.frame_size or (0, 0)
        return {"keypoint": kp, "keypoint_score": sc, "total_frames": self.frames, "img_shape": (h, w),
                "original_shape": (h, w)}

    # ------------------------------------------------------------------------------------------
    def _pose_frame(self, rgb: np.ndarray, original_size) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """The frame for the estimator, the scale back to original pixels, and the original (w, h)."""
        h, w = rgb.shape[:2]
        if original_size is not None:
            ow, oh = int(original_size[0]), int(original_size[1])
        else:
            ow, oh = w, h
            if min(w, h) > POSE_SHORT_SIDE:
                from PIL import Image

                from posec3d.pose.video import scaled_size

                w, h = scaled_size(ow, oh, POSE_SHORT_SIDE)
                rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
        return np.ascontiguousarray(rgb), np.array([ow / w, oh / h], np.float32), (ow, oh)

    def _frame_of(self, pushed: int) -> int:
        """Source frame index of the ``pushed``-th frame, when it is still in the ring."""
        back = self.frames - pushed
        return self._ring[-1 - back].frame if 0 <= back < len(self._ring) else -1

    def _submit(self, block: bool) -> None:
        entries = list(self._ring)
        self._last_window_end = self.frames
        length = len(entries)
        need = min(MIN_PERSON_FRAMES, length)
        counts: dict[int, int] = {}
        for e in entries:
            for p in e.poses:
                counts[p] = counts.get(p, 0) + 1
        persons = sorted(p for p, c in counts.items() if c >= need)
        if not persons:
            return
        w, h = self.frame_size
        annotations = []
        for p in persons:
            kp = np.zeros((1, length, NUM_KEYPOINTS, 2), np.float32)
            sc = np.zeros((1, length, NUM_KEYPOINTS), np.float32)
            for i, e in enumerate(entries):
                if p in e.poses:
                    kp[0, i], sc[0, i] = e.poses[p]
            annotations.append({"keypoint": kp, "keypoint_score": sc, "total_frames": length,
                                "img_shape": (h, w), "original_shape": (h, w)})
        last = entries[-1]
        job = _Job(entries[0].frame, last.frame + 1, last.t, last.received, persons, annotations)
        if self._jobs is None:
            self._classify(job)
        elif block:
            self._jobs.put(job)
        else:
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                self.windows_skipped += 1

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._error is not None:
                continue
            try:
                self._classify(job)
            except BaseException as e:  # noqa: BLE001 - handed to the pushing thread
                self._error = e

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _classify(self, job: _Job) -> None:
        rec = self.recognizer
        scores = rec.scores_batch(job.annotations)
        done = time.perf_counter()
        latency = None if job.received is None else round((done - job.received) * 1000, 1)
        events = []
        with self._lock:
            self.windows_classified += 1
            if latency is not None:
                self.label_latencies_ms.append(latency)
            for p, row in zip(job.persons, scores):
                top = rec.rank(row, 1)[0]
                unknown = is_unknown(top.score, self.unknown_threshold)
                common = {"t": round(job.t, 3), "frame": job.end - 1, "person": p, "window": [job.start, job.end]}
                event = {"event": "window", **common, "label": top.label, "score": round(top.score, 6),
                         "unknown": unknown}
                if latency is not None:
                    event["latency_ms"] = latency
                events.append(event)
                lab = self._labels.setdefault(p, _Label(deque(maxlen=self.smoothing)))
                if self.keep_history:
                    lab.windows.append((job.start, job.end, top, unknown))
                lab.history.append(row)
                smooth = rec.rank(np.mean(lab.history, axis=0), 1)[0]
                lab.label, lab.score = smooth.label, smooth.score
                lab.unknown = is_unknown(smooth.score, self.unknown_threshold)
                lab.window = (job.start, job.end)
                if lab.announced != (lab.label, lab.unknown):
                    lab.announced = (lab.label, lab.unknown)
                    events.append({"event": "action", **common, "label": lab.label, "score": round(lab.score, 6),
                                   "unknown": lab.unknown})
            self._events.extend(events)

    def _forget_old_frames(self) -> None:
        """Drop track history older than the ring (a long stream would otherwise grow without bound).

        The tracker matches on each track's last pose only, which is always kept."""
        oldest = self.tracker.num_frames - self.window
        for track in self.tracker.tracks:
            frames = getattr(track, "frames", None)
            if frames and len(frames) > 1:
                for f in [f for f in frames if f < oldest and f != track.last_seen]:
                    del frames[f]
