"""Render helpers: skeleton / label drawing and the atomic PyAV writer, checked by decoding back."""
from __future__ import annotations

import av
import numpy as np
import pytest

from posec3d.render import (
    CENTRE_COLOUR,
    LEFT_COLOUR,
    RIGHT_COLOUR,
    VideoWriter,
    draw_label_panel,
    draw_pose,
    read_frames,
)
from posec3d.errors import VideoError

# A standing COCO-17 figure in a 240x320 frame (x, y).
FIGURE = np.array([
    [160, 40], [150, 35], [170, 35], [145, 40], [175, 40], [130, 70], [190, 70], [120, 110],
    [200, 110], [115, 150], [205, 150], [140, 150], [180, 150], [138, 190], [182, 190], [136, 230], [184, 230],
], dtype=np.float32)


def _near(img: np.ndarray, x: float, y: float, r: int = 1) -> np.ndarray:
    return img[int(y) - r:int(y) + r + 1, int(x) - r:int(x) + r + 1].reshape(-1, 3).astype(int)


def _colours_near(img: np.ndarray, x: float, y: float) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in _near(img, x, y, r=1)}


def test_draw_pose_colours_by_side_and_skips_low_scores():
    frame = np.zeros((240, 320, 3), np.uint8)
    scores = np.ones((1, 17), np.float32)
    scores[0, 16] = 0.1  # right ankle below the threshold: neither joint nor shin drawn
    out = draw_pose(frame, FIGURE[None], scores, score_thr=0.3)
    assert frame.max() == 0, "input frame must stay untouched"
    # mid-points of limbs: left forearm (7,9) orange, right forearm (8,10) blue, hips (11,12) green
    mid = lambda a, b: (FIGURE[a] + FIGURE[b]) / 2  # noqa: E731
    assert LEFT_COLOUR in _colours_near(out, *mid(7, 9))
    assert RIGHT_COLOUR in _colours_near(out, *mid(8, 10))
    assert CENTRE_COLOUR in _colours_near(out, *mid(11, 12))
    assert LEFT_COLOUR not in _colours_near(out, *mid(8, 10))
    # the right shin (14,16) is absent, the left shin (13,15) present
    assert _near(out, *mid(14, 16)).max() == 0
    assert _near(out, *mid(13, 15)).max() > 0
    # far from the figure nothing is drawn
    assert out[:, :100].max() == 0 and out[:, 230:].max() == 0


def test_draw_pose_person_rings_differ():
    frame = np.zeros((240, 320, 3), np.uint8)
    two = np.stack([FIGURE - [60, 0], FIGURE + [60, 0]])
    out = draw_pose(frame, two, np.ones((2, 17)), edges=())
    ring_offset = 3  # radius = line width (2) + 1: the ring sits on the dot's edge
    c0 = tuple(out[int(two[0, 0, 1]) - ring_offset, int(two[0, 0, 0])])
    c1 = tuple(out[int(two[1, 0, 1]) - ring_offset, int(two[1, 0, 0])])
    assert c0 != c1 and max(c0) > 0 and max(c1) > 0


def test_label_panel_darkens_box_and_draws_text():
    frame = np.full((240, 320, 3), 200, np.uint8)
    out = draw_label_panel(frame, ["drink water", "0.93"])
    box = out[8:60, 8:100]
    assert (box < 200).mean() > 0.5, "the background box is dark"
    assert (box > 200).any(), "white text on it"
    assert (out[120:, 160:] == 200).all(), "the rest of the frame is unchanged"


def test_video_writer_round_trip_odd_size(tmp_path):
    h, w, n = 121, 161, 12
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, : 10 + 10 * i] = 255  # a white bar growing frame by frame
        frames.append(f)
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, fps=25, width=w, height=h) as vw:
        for f in frames:
            vw.write(f)
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"], "no temp file left"
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name in ("h264", "mpeg4")
        assert s.codec_context.pix_fmt == "yuv420p"
        assert (s.codec_context.width, s.codec_context.height) == (162, 122)
        assert s.average_rate == 25
    decoded = list(read_frames(out))
    assert len(decoded) == n
    for i, d in enumerate(decoded):
        edge = 10 + 10 * i
        assert d[60, edge - 4].mean() > 200 and d[60, edge + 4].mean() < 60, f"frame {i} out of order"


def test_video_writer_failure_leaves_nothing(tmp_path):
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError):
        with VideoWriter(out, fps=10, width=64, height=48) as vw:
            vw.write(np.zeros((48, 64, 3), np.uint8))
            vw.write(np.zeros((10, 10, 3), np.uint8))  # wrong size
    assert list(tmp_path.iterdir()) == []


def test_read_frames_real_video_and_errors(data_dir, tmp_path):
    frames = list(read_frames(data_dir / "videos/misc/test.avi", max_frames=5))
    assert len(frames) == 5 and frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    with pytest.raises(VideoError, match="not found"):
        next(read_frames(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="junk.mp4"):
        list(read_frames(junk))
