"""PoseTracker on hand-built poses whose correct slot assignment is known."""
from __future__ import annotations

import numpy as np

import json
from pathlib import Path

import pytest

from posec3d.pose.geometry import box_iou, boxes_from_keypoints, keypoint_distance
from posec3d.pose.tracking import PoseTracker


def person(cx, cy, size=100.0, score=0.9):
    """A 17-joint 'person': joints on a vertical line through (cx, cy), spread over ``size``."""
    kp = np.stack([np.full(17, cx, np.float32), cy + np.linspace(-size / 2, size / 2, 17, dtype=np.float32)], -1)
    kp[:, 0] += np.linspace(-size / 8, size / 8, 17)  # some width, so boxes have an area
    return kp, np.full(17, score, np.float32)


def frame(*people):
    kps = np.stack([p[0] for p in people]) if people else np.zeros((0, 17, 2), np.float32)
    scs = np.stack([p[1] for p in people]) if people else np.zeros((0, 17), np.float32)
    return kps, scs, boxes_from_keypoints(kps)


def test_geometry_by_hand():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0]])
    kp_a = np.zeros((1, 3, 2), np.float32)
    kp_b = np.array([[[3, 4], [6, 8], [100, 100]]], np.float32)
    # the third joint is not confident in b, so only the first two count: (5 + 10) / 2
    assert keypoint_distance(kp_a, np.ones((1, 3)), kp_b, np.array([[1, 1, 0]]))[0, 0] == 7.5
    assert np.isinf(keypoint_distance(kp_a, np.zeros((1, 3)), kp_b, np.ones((1, 3)))[0, 0])


def test_identities_survive_detection_order_changes():
    tracker = PoseTracker()
    for t in range(20):
        left, right = person(100 + 2 * t, 200), person(400 - 2 * t, 210, score=0.6)
        # the estimator returns people in arbitrary order
        tracker.update(*(frame(left, right) if t % 3 else frame(right, left)))
    kp, sc = tracker.to_arrays(max_persons=2)
    assert kp.shape == (2, 20, 17, 2)
    # slot 0 = the more confident person (left, moving right), slot 1 = the other, in every frame
    np.testing.assert_allclose(kp[0, :, 8, 0], 100 + 2 * np.arange(20), atol=1e-4)
    np.testing.assert_allclose(kp[1, :, 8, 0], 400 - 2 * np.arange(20), atol=1e-4)
    np.testing.assert_allclose(sc[1], 0.6)


def test_gaps_and_slot_limit():
    tracker = PoseTracker(max_age=5)
    main = lambda t: person(100 + t, 200)  # noqa: E731
    frames = []
    for t in range(30):
        people = [main(t)] if not 10 <= t < 20 else []          # main person missing for 10 frames
        if t < 5:
            people.append(person(600, 200, score=0.4))           # a brief, weak extra person
        if 3 <= t < 8:
            people.append(person(900, 200, score=0.2))           # a third one, even weaker
        frames.append(people)
        tracker.update(*frame(*people))
    # the main person comes back where they left after more than max_age frames: the lost track
    # is re-associated before a new one is born (main, weak, weakest)
    assert len(tracker.tracks) == 3
    assert sorted(tracker.tracks[0].frames) == [t for t in range(30) if not 10 <= t < 20]
    kp, sc = tracker.to_arrays(max_persons=2)
    assert kp.shape == (2, 30, 17, 2)
    present = sc.max(-1) > 0
    assert present[0].tolist() == [not 10 <= t < 20 for t in range(30)]
    np.testing.assert_allclose(kp[0, 25, 8, 0], 125, atol=1e-4)
    # slot 1: the weak person (t < 5) and the weakest (3..7) overlap in time, so only the
    # stronger of them is kept
    assert present[1].tolist() == [t < 5 for t in range(30)]
    assert np.all(kp[1, 5:] == 0) and np.all(kp[:, 10:20][~present[:, 10:20]] == 0)


def test_empty_video_gives_one_empty_slot():
    tracker = PoseTracker()
    for _ in range(4):
        tracker.update(*frame())
    kp, sc = tracker.to_arrays(max_persons=2)
    assert kp.shape == (1, 4, 17, 2) and not sc.any()


def test_flickering_false_detections_are_dropped():
    tracker = PoseTracker()
    for t in range(60):
        people = [person(100, 200)]
        if t in (10, 11, 50):  # a 'person' found now and then where there is none
            people.append(person(300, 100, score=0.8))
        tracker.update(*frame(*people))
    kp, sc = tracker.to_arrays(max_persons=2)
    # 3 x 0.8 is under 10% of the main track's 60 x 0.9: only the real person is kept
    assert kp.shape == (1, 60, 17, 2) and (sc[0] > 0).all()
    keep_all = PoseTracker(min_relative_weight=0)
    for t in range(60):
        keep_all.update(*frame(*([person(100, 200)] + ([person(300, 100, score=0.8)] if t in (10, 11, 50) else []))))
    assert (keep_all.to_arrays(max_persons=2)[1][1].max(-1) > 0).sum() == 3


def test_duplicate_detection_of_one_person_does_not_spawn_a_track():
    tracker = PoseTracker()
    for t in range(10):
        people = [person(100 + t, 200)]
        if t == 5:  # the estimator finds the same person twice, slightly shifted and less sure
            people.append(person(104 + t, 203, score=0.8))
        ids = tracker.update(*frame(*people))
        assert ids == [0] * len(people)
    assert len(tracker.tracks) == 1 and sorted(tracker.tracks[0].frames) == list(range(10))
    # the more confident pose of frame 5 is the one kept
    np.testing.assert_allclose(tracker.tracks[0].frames[5][0], person(105, 200)[0])


def test_lost_track_is_reassociated_but_not_with_someone_elsewhere():
    tracker = PoseTracker(max_age=3)
    for t in range(20):
        tracker.update(*frame(*([person(100, 200)] if t < 5 or t >= 15 else [])))
    assert len(tracker.tracks) == 1
    far = PoseTracker(max_age=3)
    for t in range(20):
        far.update(*frame(*([person(100, 200)] if t < 5 else [person(900, 200)] if t >= 15 else [])))
    assert len(far.tracks) == 2  # someone else, elsewhere: a new track
    short = PoseTracker(max_age=3, max_lost_age=6)
    for t in range(20):
        short.update(*frame(*([person(100, 200)] if t < 5 or t >= 15 else [])))
    assert len(short.tracks) == 2  # lost for 11 frames, longer than max_lost_age


REAL = json.loads((Path(__file__).parent / "data" / "tracking_detections.json").read_text())


def real_frames(name):
    for f in REAL["clips"][name]["frames"]:
        kp = np.asarray(f["keypoints"], np.float32).reshape(-1, 17, 2)
        yield kp, np.asarray(f["scores"], np.float32).reshape(-1, 17), np.asarray(f["boxes"], np.float32).reshape(-1, 4)


@pytest.mark.parametrize("name, people", [("kinetics/ta_chi.mp4", 1), ("kinetics/skateboarding.mp4", 1),
                                          ("ntu/demo_skeleton.mp4", 2)])
def test_real_poses_keep_one_track_per_person(name, people):
    """Recorded MediaPipe detections: ta_chi frame 170 and skateboarding frame 53 hold the one person
    twice (boxes overlapping by 0.67 and 0.78); the hugging pair overlaps by up to 0.44 and stays two."""
    frames = list(real_frames(name))
    counts = [len(b) for _, _, b in frames]
    assert max(counts) == 2  # the clip window holds the hard frame(s)
    tracker = PoseTracker()
    ids = [tracker.update(*f) for f in frames]
    assert len(tracker.tracks) == people
    kp, sc = tracker.to_arrays(max_persons=2)
    assert kp.shape[0] == people
    # every frame with a detection has it in a slot, the same person never in two slots
    assert ((sc.max(-1) > 0).sum(0) == np.minimum(counts, people)).all()
    if people == 2:
        assert all(sorted(i) == [0, 1] for i, c in zip(ids, counts) if c == 2)
