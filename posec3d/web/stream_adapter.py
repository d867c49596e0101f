"""TEMPORARY stand-in for ``posec3d.stream`` (the contract's video -> actions core, being built on
another branch). It exposes the contract's four names over today's ``apps.demo`` pieces so the web
app can be built and tested now; it is deleted, and the imports point at ``posec3d.stream``, as
soon as that package lands.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from posec3d.apps.demo import classify_annotation, extract_poses, load_recognizer as _load
from posec3d.apps.demo import render_video as _render


def load_recognizer(model=None, config=None, checkpoint=None, label_map=None, **kw):
    return _load(model, config, checkpoint, label_map, **kw)


def analyse_video(source, recognizer, *, topk=5, per_person=False, window=None, stride=None, max_persons=2,
                  max_frames=None, estimator=None, unknown_threshold=None, progress=None):
    annotation = extract_poses(source, estimator=estimator, max_persons=max_persons, max_frames=max_frames,
                               progress=progress)
    return classify_annotation(recognizer, str(source), annotation, topk=topk, per_person=per_person,
                               window=window, stride=stride)


def render_video(source, out_path, result, *, progress=None):
    _render(source, out_path, result, progress=progress)


@dataclass
class _Person:
    person: int
    box: tuple
    label: str
    score: float
    unknown: bool


@dataclass
class _Output:
    persons: list = field(default_factory=list)
    events: list = field(default_factory=list)
    keypoints: np.ndarray | None = None
    scores: np.ndarray | None = None


class StreamRecognizer:
    """Poses per pushed frame, the last ``window`` frames classified every ``stride`` frames."""

    def __init__(self, recognizer, *, estimator=None, window=None, stride=None, max_persons=2,
                 unknown_threshold=None):
        from posec3d.pose.estimators.blazepose import MediaPipePose

        self.recognizer = recognizer
        self.estimator = estimator or MediaPipePose(max_persons=max_persons)
        self.window, self.stride = window or 32, stride or 8
        self.max_persons = max_persons
        self.threshold = (getattr(recognizer, "unknown_threshold", 0.0) if unknown_threshold is None
                          else unknown_threshold)
        self.frames: deque = deque(maxlen=self.window)
        self.count = 0
        self.labels: dict = {}

    def push(self, rgb, t_seconds):
        kp, sc, boxes = self.estimator(rgb)
        m = min(len(kp), self.max_persons)
        k = np.zeros((self.max_persons, 17, 2), np.float32)
        s = np.zeros((self.max_persons, 17), np.float32)
        k[:m], s[:m] = kp[:m], sc[:m]
        self.frames.append((k, s))
        self.count += 1
        if len(self.frames) >= 8 and self.count % self.stride == 0:
            ann = {"keypoint": np.stack([f[0] for f in self.frames], 1),
                   "keypoint_score": np.stack([f[1] for f in self.frames], 1),
                   "total_frames": len(self.frames), "img_shape": rgb.shape[:2]}
            for p in range(m):
                one = {**ann, "keypoint": ann["keypoint"][p:p + 1], "keypoint_score": ann["keypoint_score"][p:p + 1]}
                top = self.recognizer.predict(one, topk=1)[0]
                self.labels[p] = (top.label, top.score)
        out = _Output(keypoints=k[:m], scores=s[:m])
        for p in range(m):
            if p in self.labels:
                label, score = self.labels[p]
                out.persons.append(_Person(p, tuple(float(v) for v in boxes[p]), label, score,
                                           bool(score < self.threshold)))
        return out

    def draw(self, rgb, output):
        from posec3d.apps.render import draw_label_panel, draw_pose

        frame = draw_pose(rgb, output.keypoints, output.scores) if output.keypoints is not None else rgb
        for p in output.persons:
            text = (f"unknown (best guess: {p.label} {p.score:.2f})" if p.unknown else f"{p.label} {p.score:.2f}")
            frame = draw_label_panel(frame, [f"#{p.person} {text}"],
                                     origin=(max(0, int(p.box[0])), max(0, int(p.box[1]) - 24)))
        return frame

    def close(self):
        self.estimator.close()
        return []
