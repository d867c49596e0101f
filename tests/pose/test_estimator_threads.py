"""Pose estimators used from several threads at once (what `live` does with its pose workers)."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest


def _fd2_identity():
    st = os.fstat(2)
    return st.st_dev, st.st_ino


def test_silencing_native_stderr_from_two_threads_restores_it():
    """Two overlapping silenced sections must leave fd 2 where it was (not on a closed temp file)."""
    from posec3d.pose.estimators.blazepose import _quiet_native_stderr

    before = _fd2_identity()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    # Unserialised, this order breaks it: A in, B in (saving A's sink as "stderr"), A out, B out.
    def first():
        with _quiet_native_stderr():
            a_in.set()
            b_in.wait(0.5)  # with the lock, B only enters once A has left: the wait times out
        a_out.set()

    def second():
        a_in.wait(5)
        with _quiet_native_stderr():
            b_in.set()
            a_out.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert _fd2_identity() == before


@pytest.fixture(scope="module")
def frames(data_dir):
    from posec3d.stream.sources import FileSource

    with FileSource(data_dir / "videos/kinetics/clean_and_jerk.mp4", max_frames=12) as src:
        return [f.rgb for f in src]


def test_mediapipe_instances_in_two_threads_give_the_single_instance_poses(frames):
    """live's pose pool: instances on alternate frames at once equal one instance on every frame."""
    from posec3d.pose.estimators.blazepose import MediaPipePose

    with MediaPipePose(max_persons=2, second_pass="off") as one:
        assert one.frame_independent
        expected = [one(f) for f in frames]
    got: dict[int, tuple] = {}
    with MediaPipePose(max_persons=2, second_pass="off") as a, MediaPipePose(max_persons=2, second_pass="off") as b:
        def work(est, start):
            for i in range(start, len(frames), 2):
                got[i] = est(frames[i])

        threads = [threading.Thread(target=work, args=(a, 0)), threading.Thread(target=work, args=(b, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert sorted(got) == list(range(len(frames)))
    for i, (kp, sc, box) in enumerate(expected):
        assert len(kp) >= 1
        np.testing.assert_array_equal(got[i][0], kp)
        np.testing.assert_array_equal(got[i][1], sc)
        np.testing.assert_array_equal(got[i][2], box)


def test_the_second_pass_schedule_is_state_so_it_is_not_frame_independent():
    from posec3d.pose.estimators.blazepose import MediaPipePose

    with MediaPipePose(max_persons=2) as auto, MediaPipePose(max_persons=1) as single:
        assert not auto.frame_independent     # its probe schedule carries over frames
        assert single.frame_independent      # one person: no second pass at all
