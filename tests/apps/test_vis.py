"""`posec3d vis`: skeleton MP4s decoded back with PyAV and checked pixel by pixel."""
from __future__ import annotations

import av
import numpy as np
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.render import read_frames
from posec3d.data.skeleton_video import CANVAS_GREY, find_video, output_name
from posec3d.data.annotations import save_annotations
from posec3d.errors import AnnotationError

runner = CliRunner()

# A COCO-17 figure around x 120..200, y 30..230 on a 320x240 image.
FIGURE = np.array([
    [160, 40], [150, 35], [170, 35], [145, 40], [175, 40], [130, 70], [190, 70], [120, 110],
    [200, 110], [115, 150], [205, 150], [140, 150], [180, 150], [138, 190], [182, 190], [136, 230], [184, 230],
], dtype=np.float32)


def sample(name: str, frames: int, img_shape=(240, 320), scale=1.0, label=1, **extra) -> dict:
    kp = np.repeat((FIGURE * scale)[None, None], frames, axis=1)
    return dict(frame_dir=name, label=label, img_shape=img_shape, original_shape=img_shape,
                total_frames=frames, keypoint=kp, keypoint_score=np.ones(kp.shape[:3], np.float32), **extra)


def test_blank_canvas_video(tmp_path):
    ann = tmp_path / "a.pkl"
    save_annotations(ann, [sample("one", 6), sample("two", 4)], split={"val": ["two"], "train": ["one"]})
    labels = tmp_path / "labels.txt"
    labels.write_text("walk\nwave\n")
    out = tmp_path / "vids"
    r = runner.invoke(app, ["vis", str(ann), "-o", str(out), "--label-map", str(labels), "--fps", "10",
                            "--split", "train"])
    assert r.exit_code == 0, r.output
    assert [p.name for p in out.iterdir()] == ["one.mp4"]
    with av.open(str(out / "one.mp4")) as c:
        s = c.streams.video[0]
        assert s.average_rate == 10 and s.codec_context.name in ("h264", "mpeg4")
    frames = list(read_frames(out / "one.mp4"))
    assert len(frames) == 6 and frames[0].shape == (240, 320, 3)
    f = frames[3].astype(int)
    # joints are drawn where the keypoints are (skip the label panel in the top-left corner)
    for j in (9, 10, 13, 14, 15, 16):
        x, y = FIGURE[j].astype(int)
        assert np.abs(f[y - 1:y + 2, x - 1:x + 2] - CANVAS_GREY).max() > 80, f"joint {j} not drawn"
    # the canvas stays blank away from the figure and the panel
    assert np.abs(f[200:, 240:] - CANVAS_GREY).max() < 12
    # the panel at top-left holds bright text on a dark box
    assert f[8:60, 8:90].max() > 200


def test_over_source_video_scales_keypoints(tmp_path, data_dir):
    src = data_dir / "videos/misc/test.avi"  # 320x240
    root = tmp_path / "videos"
    root.mkdir()
    (root / "clip.avi").symlink_to(src)
    ann = tmp_path / "a.pkl"
    # keypoints given on a 640x480 frame: they must be halved onto the 320x240 video
    save_annotations(ann, [sample("clip", 8, img_shape=(480, 640), scale=2.0)])
    out = tmp_path / "out"
    r = runner.invoke(app, ["vis", str(ann), "-o", str(out), "--video-root", str(root)])
    assert r.exit_code == 0, r.output
    assert "1 over source video" in r.output
    with av.open(str(out / "clip.mp4")) as c:
        assert c.streams.video[0].average_rate == 25  # the source video's rate
    drawn = list(read_frames(out / "clip.mp4"))
    original = list(read_frames(src, max_frames=8))
    assert len(drawn) == 8 and drawn[0].shape == (240, 320, 3)
    d, o = drawn[5].astype(int), original[5].astype(int)
    for j in (9, 10, 15, 16):
        x, y = FIGURE[j].astype(int)
        assert np.abs(d[y - 1:y + 2, x - 1:x + 2] - o[y - 1:y + 2, x - 1:x + 2]).max() > 80
    # away from the skeleton the original picture is kept (up to compression)
    assert np.abs(d[150:, 250:] - o[150:, 250:]).mean() < 6


def test_find_video_rules(tmp_path):
    (tmp_path / "x.mkv").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "v.mp4").write_bytes(b"")
    assert find_video({"frame_dir": "x"}, tmp_path) == tmp_path / "x.mkv"
    assert find_video({"frame_dir": "x", "filename": "sub/v.mp4"}, tmp_path) == tmp_path / "sub/v.mp4"
    assert find_video({"frame_dir": "sub/v.mp4"}, None, ann_dir=tmp_path) is None
    assert find_video({"frame_dir": "nope"}, tmp_path) is None
    assert output_name({"frame_dir": "train/기본준비/P02"}, 0) == "train_기본준비_P02.mp4"
    assert output_name({}, 3) == "sample_00003.mp4"


def test_limit_and_errors(tmp_path):
    ann = tmp_path / "a.pkl"
    save_annotations(ann, [sample(f"s{i}", 3) for i in range(4)])
    r = runner.invoke(app, ["vis", str(ann), "-o", str(tmp_path / "o"), "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["s0.mp4", "s1.mp4"]
    r = runner.invoke(app, ["vis", str(ann), "-o", str(tmp_path / "o2"), "--split", "xsub_val"])
    assert isinstance(r.exception, AnnotationError) and "a.pkl" in str(r.exception)
    assert not (tmp_path / "o2").exists()


def test_other_layouts_drawn_as_coco(tmp_path, data_dir):
    """MSR Action3D (20 Kinect joints in MSR order): --layout maps them onto the COCO skeleton."""
    from posec3d.data.annotations import load_annotations

    (msr,) = load_annotations(data_dir / "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl")[:1]
    t = msr["total_frames"] // 2
    ann = tmp_path / "msr.pkl"
    save_annotations(ann, [msr])
    for layout in ("msr_action3d", "auto"):
        out = tmp_path / layout
        r = runner.invoke(app, ["vis", str(ann), "-o", str(out), "--layout", layout])
        assert r.exit_code == 0, r.output
        (video,) = out.iterdir()
        frames = list(read_frames(video))
        assert len(frames) == msr["total_frames"] and frames[0].shape == (240, 320, 3)
        f = frames[t].astype(int)
        near = lambda j: np.abs(f[int(msr["keypoint"][0, t, j, 1]) - 1:int(msr["keypoint"][0, t, j, 1]) + 2,  # noqa: E731
                                  int(msr["keypoint"][0, t, j, 0]) - 1:int(msr["keypoint"][0, t, j, 0]) + 2]
                                - CANVAS_GREY).max()
        assert near(10) > 80  # right wrist: drawn either way
        hand = 12  # right hand: confident here, but not a COCO joint and on no COCO limb
        assert msr["keypoint_score"][0, t, hand] == 1.0
        assert near(hand) < 12  # auto recognised the MSR order (it used to draw bare points)


def _bone_drawn(video, sample, t, a, b) -> bool:
    """Pixels along the segment a-b (away from both ends) differ from the blank canvas."""
    f = list(read_frames(video))[t].astype(int)
    pa, pb = sample["keypoint"][0, t, a], sample["keypoint"][0, t, b]
    if np.linalg.norm(pa - pb) < 8:
        return False
    x, y = ((pa + pb) / 2).astype(int)
    return np.abs(f[y - 1:y + 2, x - 1:x + 2] - CANVAS_GREY).max() > 80


def test_20_joint_kinect_files_render_with_bones_in_either_order(tmp_path, data_dir):
    from posec3d.data.skeleton_video import kinect20_order
    from posec3d.data.annotations import load_annotations

    # (file, order, right elbow, right wrist) in that file's own joint indices
    cases = [("datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl", "msr_action3d", 8, 10),
             ("datasets/utkinect_action3d/utkinect_kinect20_proj2d.pkl", "kinect20", 9, 10)]
    for rel, order, elbow, wrist in cases:
        first = load_annotations(data_dir / rel)[0]
        # a short clip of a frame where the forearm is long enough to see a bone between the joints
        length = np.linalg.norm(first["keypoint"][0, :, elbow] - first["keypoint"][0, :, wrist], axis=-1)
        length[first["keypoint_score"][0, :, [elbow, wrist]].min(0) < 0.5] = 0
        t = int(length.argmax())
        clip = dict(first, keypoint=first["keypoint"][:, t:t + 2], keypoint_score=first["keypoint_score"][:, t:t + 2],
                    total_frames=2)
        clip.pop("filename", None)
        assert kinect20_order(clip["keypoint"], clip["keypoint_score"]) == order
        ann = tmp_path / f"{order}.pkl"
        save_annotations(ann, [clip])
        out = tmp_path / order
        r = runner.invoke(app, ["vis", str(ann), "-o", str(out)])
        assert r.exit_code == 0, r.output
        (video,) = out.iterdir()
        assert _bone_drawn(video, clip, 0, elbow, wrist), order


def test_vis_finds_ntu_rgb_videos(tmp_path, data_dir):
    root = tmp_path / "ntu"
    root.mkdir()
    (root / "S001C001P001R001A001_rgb.avi").symlink_to(data_dir / "videos/ntu/S001C001P001R001A001_rgb.avi")
    assert find_video({"frame_dir": "S001C001P001R001A001"}, root) == root / "S001C001P001R001A001_rgb.avi"


def test_unreadable_source_video_falls_back_to_canvas(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    ann = tmp_path / "a.pkl"
    save_annotations(ann, [sample("broken", 3)])
    r = runner.invoke(app, ["vis", str(ann), "-o", str(tmp_path / "o"), "--video-root", str(root)])
    assert r.exit_code == 0, r.output
    assert "broken.mp4" in r.output and "blank canvas" in r.output
    frames = list(read_frames(tmp_path / "o" / "broken.mp4"))
    assert len(frames) == 3 and abs(int(frames[0][230, 10].mean()) - CANVAS_GREY) < 6
