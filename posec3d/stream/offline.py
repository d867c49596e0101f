"""A whole video at once: ``analyse_video`` (what `posec3d demo` and `demo-folder` run)."""
from __future__ import annotations


from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from posec3d.stream.labels import is_unknown, resolve_unknown_threshold

#: A person slot must be seen in this many frames to get an action of its own (per person).
MIN_PERSON_FRAMES = 8
#: windows classified per forward pass (bounded, so a long video never builds one huge batch)
WINDOW_BATCH = 8


@dataclass
class PersonResult:
    """One person's actions: over the whole video and, with windows, window by window.

    ``person`` is the person slot of the annotation, or with ``causal`` the track id that
    `posec3d live` reports for that person."""

    person: int
    predictions: list                                     # [Prediction], best first
    timeline: list = field(default_factory=list)          # [WindowPrediction]
    unknown: bool = False
    keypoints: Optional[tuple[np.ndarray, np.ndarray]] = None   # (T, 17, 2), (T, 17) with causal

    @property
    def top(self):
        return self.predictions[0]


@dataclass
class VideoResult:
    """Everything the demo learnt about one video (``to_json`` gives the `demo --json` document)."""

    video: str
    annotation: dict
    predictions: list = field(default_factory=list)       # [Prediction], best first
    persons: list = field(default_factory=list)           # [PersonResult] when per person
    timeline: list = field(default_factory=list)          # [WindowPrediction] with a window
    unknown_threshold: float = 0.0
    causal: bool = False

    @property
    def unknown(self) -> bool:
        return bool(self.predictions) and is_unknown(self.predictions[0].score, self.unknown_threshold)

    def window_dict(self, w) -> dict:
        return {"start": w.start, "end": w.end, "label": w.top.label, "score": round(w.top.score, 6),
                "unknown": is_unknown(w.top.score, self.unknown_threshold)}

    def person_keypoints(self, person: PersonResult, t: int):
        """(keypoints (17, 2), scores (17,)) of ``person`` in frame ``t``, or None."""
        if person.keypoints is not None:
            kp, sc = person.keypoints
        else:
            kp = np.asarray(self.annotation["keypoint"])[person.person]
            sc = self.annotation.get("keypoint_score")
            sc = np.ones(kp.shape[:2], np.float32) if sc is None else np.asarray(sc)[person.person]
        return (kp[t], sc[t]) if t < len(kp) else None

    def to_json(self) -> dict:
        top = self.predictions[0] if self.predictions else None
        doc = {"video": self.video,
               "predictions": [{"label": p.label, "score": round(p.score, 6)} for p in self.predictions],
               "label": top.label if top else None,
               "score": round(top.score, 6) if top else None,
               "unknown": self.unknown,
               "unknown_threshold": self.unknown_threshold,
               "num_frames": int(self.annotation["total_frames"]),
               "num_persons": int(np.asarray(self.annotation["keypoint"]).shape[0])}
        if self.persons:
            doc["persons"] = []
            for person in self.persons:
                entry = {"person": person.person,
                         "label": person.top.label, "score": round(person.top.score, 6), "unknown": person.unknown,
                         "predictions": [{"label": p.label, "score": round(p.score, 6)} for p in person.predictions]}
                if person.timeline:
                    entry["timeline"] = [self.window_dict(w) for w in person.timeline]
                doc["persons"].append(entry)
            doc["person_ids"] = "track" if self.causal else "slot"
        if self.timeline:
            doc["timeline"] = [self.window_dict(w) for w in self.timeline]
        return doc


def _windows_with_person(annotation: dict, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans in which the (single) person is seen in enough frames to be classified."""
    from posec3d.stream.core import MIN_PERSON_FRAMES as MIN_WINDOW_FRAMES

    score = annotation.get("keypoint_score")
    present = ((np.asarray(score)[0] > 0).any(-1) if score is not None
               else (np.asarray(annotation["keypoint"])[0] != 0).any(axis=(-1, -2)))
    return [(s, e) for s, e in spans if present[s:e].sum() >= min(MIN_WINDOW_FRAMES, e - s)]


def _classify_windows(recognizer, annotation: dict, spans, progress=None) -> list:
    from posec3d.engine.inference import WindowPrediction, slice_frames

    result = []
    for i in range(0, len(spans), WINDOW_BATCH):
        chunk = spans[i:i + WINDOW_BATCH]
        scores = recognizer.scores_batch([slice_frames(annotation, s, e) for s, e in chunk])
        for (s, e), row in zip(chunk, scores):
            result.append(WindowPrediction(s, e, recognizer.rank(row, 1)[0]))
        if progress is not None:
            progress(advance=len(chunk))
    return result


def classify_annotation(recognizer, video: str, annotation: dict, *, topk: int = 5, per_person: bool = False,
                        window: Optional[int] = None, stride: Optional[int] = None,
                        unknown_threshold: Optional[float] = None,
                        progress: Optional[Callable[..., None]] = None) -> VideoResult:
    """Run the recognizer on a whole annotation: the clip, each person slot, and sliding windows
    (of all persons together, and with ``per_person`` of each person slot alone)."""
    from posec3d.engine.inference import has_person, person_frames, select_person, sliding_windows
    from posec3d.errors import VideoError

    if not has_person(annotation):
        raise VideoError(f"{video}: no person was found in any frame, nothing to classify")
    threshold = resolve_unknown_threshold(recognizer, unknown_threshold)
    result = VideoResult(video=video, annotation=annotation, unknown_threshold=threshold)
    slots = []
    if per_person:
        slots = [s for s in range(np.asarray(annotation["keypoint"]).shape[0])
                 if person_frames(annotation, s) >= MIN_PERSON_FRAMES]
    # The clip and every person in one batch.
    scores = recognizer.scores_batch([annotation] + [select_person(annotation, s) for s in slots])
    result.predictions = recognizer.rank(scores[0], topk)
    for s, row in zip(slots, scores[1:]):
        preds = recognizer.rank(row, topk)
        result.persons.append(PersonResult(s, preds, unknown=is_unknown(preds[0].score, threshold)))
    if window:
        spans = sliding_windows(int(annotation["total_frames"]), window, stride or max(1, window // 2))
        result.timeline = _classify_windows(recognizer, annotation, spans, progress)
        for person in result.persons:
            alone = select_person(annotation, person.person)
            person.timeline = _classify_windows(recognizer, alone, _windows_with_person(alone, spans))
    return result


def analyse_video(source, recognizer, *, topk: int = 5, per_person: bool = False, window: Optional[int] = None,
                  stride: Optional[int] = None, max_persons: int = 2, max_frames: Optional[int] = None,
                  estimator=None, unknown_threshold: Optional[float] = None,
                  progress: Optional[Callable[..., None]] = None, causal: bool = False) -> VideoResult:
    """Poses, tracks and actions of a video file (the `posec3d demo --json` document is ``.to_json()``).

    By default poses come from ``pose.extract.extract_video`` (MediaPipe with its second pass,
    people packed into slots over the whole video, which looks ahead). ``causal=True`` instead runs
    the frames through ``StreamRecognizer`` exactly as `posec3d live` does: no second pass, persons
    are tracks as they are seen, and with ``per_person`` each person's windows are the windows
    `live` classifies (same scores). ``progress(advance=1, ...)`` is called once per frame.
    """
    if not causal:
        from posec3d.pose.extract import extract_video

        annotation = extract_video(source, estimator=estimator, max_persons=max_persons, max_frames=max_frames,
                                   progress=progress)
        return classify_annotation(recognizer, str(source), annotation, topk=topk, per_person=per_person,
                                   window=window, stride=stride, unknown_threshold=unknown_threshold)
    return _analyse_causally(source, recognizer, topk=topk, per_person=per_person, window=window, stride=stride,
                             max_persons=max_persons, max_frames=max_frames, estimator=estimator,
                             unknown_threshold=unknown_threshold, progress=progress)


def _analyse_causally(source, recognizer, *, topk, per_person, window, stride, max_persons, max_frames, estimator,
                      unknown_threshold, progress) -> VideoResult:
    from pathlib import Path

    from posec3d.engine.inference import WindowPrediction
    from posec3d.stream.core import StreamRecognizer
    from posec3d.stream.sources import FileSource

    stream = StreamRecognizer(recognizer, estimator=estimator, window=window, stride=stride, max_persons=max_persons,
                              unknown_threshold=unknown_threshold, keep_history=True)
    try:
        with FileSource(source, max_frames=max_frames) as frames:
            for frame in frames:
                stream.push(frame.rgb, frame.t, frame_index=frame.index, original_size=frame.original_size)
                if progress is not None:
                    progress(advance=1, total=frames.expected_frames)
    finally:
        stream.close()
    keypoint, keypoint_score = stream.tracker.to_arrays(max_persons)
    w, h = stream.frame_size
    annotation = {"frame_dir": Path(source).stem, "filename": str(source), "img_shape": (h, w),
                  "original_shape": (h, w), "total_frames": int(keypoint.shape[1]), "keypoint": keypoint,
                  "keypoint_score": keypoint_score}
    result = classify_annotation(recognizer, str(source), annotation, topk=topk, per_person=False,
                                 window=window if window else None, stride=stride,
                                 unknown_threshold=unknown_threshold)
    result.causal = True
    if per_person:
        windows = stream.person_windows()
        tracks = [p for p in range(len(stream.tracker.tracks))
                  if p in windows or len(stream.tracker.tracks[p].frames) >= MIN_PERSON_FRAMES]
        alone = [stream.person_annotation(p) for p in tracks]
        scores = recognizer.scores_batch(alone) if alone else []
        for p, ann, row in zip(tracks, alone, scores):
            preds = recognizer.rank(row, topk)
            result.persons.append(PersonResult(
                p, preds, [WindowPrediction(s, e, top) for s, e, top, _ in windows.get(p, [])],
                unknown=is_unknown(preds[0].score, result.unknown_threshold),
                keypoints=(ann["keypoint"][0], ann["keypoint_score"][0])))
    return result



