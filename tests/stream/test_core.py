"""The stream core on real poses: windows, per-person batches, the fast path and the open set."""
from __future__ import annotations

import numpy as np
import pytest

from posec3d.engine.inference import ActionRecognizer, select_person, slice_frames, sliding_windows
from posec3d.stream import StreamRecognizer, display_label
from tests.stream.replay import ReplayPoses


def _stream_windows(recognizer, annotation, window, stride, **kw):
    """Push an annotation's poses through a StreamRecognizer; return (window events, all events)."""
    h, w = annotation["img_shape"]
    replay = ReplayPoses(annotation)
    stream = StreamRecognizer(recognizer, estimator=replay, window=window, stride=stride, **kw)
    frame = np.zeros((h // replay.shrink, w // replay.shrink, 3), np.uint8)
    events = []
    for t in range(annotation["total_frames"]):
        out = stream.push(frame, t / 30, original_size=(w, h))
        events += out.events
    events += stream.close()
    return [e for e in events if e["event"] == "window"], events


def test_fast_batched_path_equals_the_plain_eval_path(recognizer, golden_poses):
    """Persons and windows in one batch through the folded network = one by one through the plain one."""
    ann = golden_poses("pose_p2_f100")
    samples = [ann, select_person(ann, 0), select_person(ann, 1), slice_frames(ann, 20, 68)]
    plain = ActionRecognizer(recognizer.config_path, recognizer.checkpoint_path, fuse_bn=False,
                             calibration={"temperature": recognizer.temperature})
    want = np.stack([plain.scores(s) for s in samples])
    got = recognizer.scores_batch(samples)
    assert got.shape == (4, recognizer.num_classes)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(recognizer.scores(samples[3]), want[3], atol=1e-4)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_stream_windows_are_the_offline_sliding_windows(recognizer, golden_poses, asynchronous):
    ann = golden_poses("pose_p1_f60")
    assert ann["keypoint"].shape[0] == 1
    windows, events = _stream_windows(recognizer, ann, 24, 8, asynchronous=asynchronous)
    spans = sliding_windows(60, 24, 8)
    assert spans[-1] == (36, 60)  # the stride leaves frames over: one more window ends at the last
    assert [tuple(e["window"]) for e in windows] == spans
    assert {e["person"] for e in windows} == {0}
    want = recognizer.scores_batch([slice_frames(ann, s, e) for s, e in spans])
    for e, row in zip(windows, want):
        top = int(np.argmax(row))
        assert e["label"] == recognizer.labels[top]
        assert e["score"] == pytest.approx(float(row[top]), abs=1e-5)
        assert e["frame"] == e["window"][1] - 1 and e["unknown"] is False
    # the smoothed label is announced once per change, the first window included
    actions = [e for e in events if e["event"] == "action"]
    assert actions and actions[0]["window"] == [0, 24]
    # (a label may be announced again when only its open-set state changes)
    assert all((a["label"], a["unknown"]) != (b["label"], b["unknown"]) for a, b in zip(actions, actions[1:]))
    assert [e["event"] for e in events].count("person_found") == 1


def test_short_stream_is_one_window_and_persons_are_batched(recognizer, golden_poses):
    ann = golden_poses("pose_p2_f30_short")
    windows, _ = _stream_windows(recognizer, ann, 48, 16)
    assert {tuple(e["window"]) for e in windows} == {(0, ann["total_frames"])}
    assert sorted(e["person"] for e in windows) == [0, 1]


def test_unknown_threshold_reaches_every_event(recognizer, golden_poses):
    ann = golden_poses("pose_p1_f60")
    off, _ = _stream_windows(recognizer, ann, 24, 8, unknown_threshold=0.0)
    on, events = _stream_windows(recognizer, ann, 24, 8, unknown_threshold=0.999)
    assert not any(e["unknown"] for e in off)
    assert all(e["unknown"] for e in on if e["score"] < 0.999)
    assert [e["score"] for e in on] == [e["score"] for e in off]  # the label stays the best guess
    assert all(e["unknown"] == (e["score"] < 0.999) for e in events if e["event"] == "action")
    assert display_label("squat", 0.4123, True) == "unknown (best guess: squat 0.41)"
    assert display_label("squat", 0.4123, False) == "squat 0.41"


def test_recognizer_threshold_is_the_default(recognizer, golden_poses):
    ann = golden_poses("pose_p1_f60")
    had = "unknown_threshold" in vars(recognizer)
    before = getattr(recognizer, "unknown_threshold", None)
    recognizer.unknown_threshold = 0.999
    try:
        windows, _ = _stream_windows(recognizer, ann, 24, 8)
    finally:
        if had:
            recognizer.unknown_threshold = before
        else:
            del recognizer.unknown_threshold
    assert any(e["unknown"] for e in windows)
