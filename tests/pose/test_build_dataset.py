"""build-dataset: list parsing, a real multi-video build with broken entries, the resumable cache."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.data.annotations import load_annotations
from posec3d.errors import AnnotationError
from posec3d.data.label_map import label_indices, read_label_map
from posec3d.pose.dataset_builder import build_dataset, parse_video_list

VIDEOS = {  # every real clip in shared/data/videos, with its size (H, W)
    "ntu/S001C001P001R001A001_rgb.avi": (1080, 1920), "ntu/ntu_sample.avi": (1080, 1920),
    "ntu/demo_skeleton.mp4": (1080, 1920), "kinetics/skateboarding.mp4": (256, 340),
    "kinetics/clean_and_jerk.mp4": (256, 340), "kinetics/ta_chi.mp4": (256, 340),
    "kinetics/demo_arm_wrestling.mp4": (256, 340), "misc/test.mp4": (256, 340), "misc/test.avi": (240, 320),
}


def test_parse_list_paths_labels_and_errors(tmp_path, data_dir):
    label_map = label_indices(read_label_map(data_dir / "label_maps/label_map_ntu60.txt"))
    assert label_map["drink water"] == 0 and label_map["hugging other person"] == 54
    (tmp_path / "clips").mkdir()
    good = tmp_path / "clips" / "list.txt"
    good.write_bytes("\ufeff# comment\r\n\r\na.mp4\t3\r\nsub dir/b c.mp4\thugging other person\n/abs/d.avi 7\n"
                     .encode("utf-8"))  # BOM and CRLF as a Windows editor saves it
    items = parse_video_list(good, label_map)
    assert [i.path for i in items] == [tmp_path / "clips/a.mp4", tmp_path / "clips/sub dir/b c.mp4",
                                       Path("/abs/d.avi")]
    assert [i.label for i in items] == [3, 54, 7]
    assert items[1].source == f"{good}:4"

    cases = {"a.mp4\n": ":1: expected", "a.mp4\tthree\n": "not an integer",
             "x.mp4\t1\na.mp4\tflying\n": ":2: class 'flying'", "a.mp4\t-2\n": "negative"}
    for text, message in cases.items():
        bad = tmp_path / "bad.txt"
        bad.write_text(text)
        with pytest.raises(AnnotationError, match=message) as e:
            parse_video_list(bad, label_map if "flying" in text else None)
        assert str(bad) in str(e.value)
    with pytest.raises(AnnotationError, match="out of range"):
        bad.write_text("a.mp4\t60\n")
        parse_video_list(bad, label_map)


@pytest.fixture(scope="module")
def built(tmp_path_factory, data_dir):
    """All real videos (first 12 frames, stride 2) in two lists, plus a missing and a corrupt entry."""
    root = tmp_path_factory.mktemp("build")
    (root / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 500)
    names = list(VIDEOS)
    train = [f"{data_dir / 'videos' / n}\t{i}" for i, n in enumerate(names[:6])] + ["missing.mp4\t1"]
    val = [f"{data_dir / 'videos' / n}\t{i}" for i, n in enumerate(names[6:])] + ["corrupt.mp4\thugging other person"]
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("\n".join(val) + "\n")
    out = root / "out" / "data.pkl"
    result = CliRunner().invoke(app, [
        "build-dataset", str(root / "train.txt"), str(root / "val.txt"), "-o", str(out),
        "--split-names", "train", "val", "--workers", "2", "--max-frames", "12", "--stride", "2",
        "--label-map", str(data_dir / "label_maps/label_map_ntu60.txt")])
    return root, out, result


def test_build_writes_valid_dataset_and_failure_report(built, data_dir):
    root, out, result = built
    assert result.exit_code == 0, result.output
    train = load_annotations(out, split="train")
    val = load_annotations(out, split="val")
    assert [a["frame_dir"] for a in train] == [n.split("/")[-1].rsplit(".", 1)[0] for n in list(VIDEOS)[:6]]
    assert len(val) == 3
    for ann in train + val:
        rel = os.path.relpath(ann["filename"], data_dir / "videos")
        assert ann["img_shape"] == VIDEOS[rel]
        assert ann["total_frames"] == 12 and ann["keypoint"].shape[1:] == (12, 17, 2)
        assert 1 <= ann["keypoint"].shape[0] <= 2
    assert [a["label"] for a in train] == list(range(6))
    # the people-rich clips really have poses
    by_name = {a["frame_dir"]: a for a in train + val}
    assert (by_name["clean_and_jerk"]["keypoint_score"][0].max(-1) > 0).all()
    failed = (out.parent / "failed.txt").read_text().splitlines()
    assert len(failed) == 2
    assert failed[0].startswith(f"{root / 'train.txt'}:7\t") and "not found" in failed[0]
    assert failed[1].startswith(f"{root / 'val.txt'}:4\t") and "corrupt.mp4" in failed[1]
    assert "2 video(s) failed" in result.output


def test_rerun_uses_the_cache(built, data_dir):
    root, out, _ = built
    first = {a["filename"]: a for a in load_annotations(out)}
    report = build_dataset([root / "train.txt", root / "val.txt"], out, split_names=["train", "val"],
                           workers=2, max_frames=12, stride=2,
                           label_map=data_dir / "label_maps/label_map_ntu60.txt")
    assert report.extracted == 0 and report.frames == 0 and report.cached == 9
    assert len(report.failures) == 2
    again = {a["filename"]: a for a in load_annotations(out)}
    assert again.keys() == first.keys()
    for name in first:
        np.testing.assert_array_equal(again[name]["keypoint"], first[name]["keypoint"])


def test_cache_key_follows_file_and_settings(tmp_path, data_dir):
    video = tmp_path / "clip.avi"
    video.write_bytes((data_dir / "videos/misc/test.avi").read_bytes())
    lst = tmp_path / "all.txt"
    lst.write_text("clip.avi\t5\n")
    out = tmp_path / "d.pkl"
    kw = dict(max_frames=3, cache_dir=tmp_path / "cache")
    assert build_dataset([lst], out, **kw).extracted == 1
    assert build_dataset([lst], out, **kw).extracted == 0
    os.utime(video, ns=(1_000_000_000, 1_000_000_000))  # the video changed
    assert build_dataset([lst], out, **kw).extracted == 1
    assert build_dataset([lst], out, **{**kw, "max_frames": 4}).extracted == 1  # other settings
    assert not (tmp_path / "failed.txt").exists()
    with open(out, "rb") as f:
        data = pickle.load(f)
    assert data["split"] == {"all": [str(video)]} and data["annotations"][0]["total_frames"] == 4


def test_extract_cli(tmp_path, data_dir):
    out = tmp_path / "one.pkl"
    result = CliRunner().invoke(app, ["extract", str(data_dir / "videos/kinetics/ta_chi.mp4"), "-o", str(out),
                                      "--label", "346", "--max-frames", "6", "--stride", "2", "--max-persons", "1",
                                      "--short-side", "128"])
    assert result.exit_code == 0, result.output
    (ann,) = load_annotations(out, split="all")
    assert ann["label"] == 346 and ann["total_frames"] == 6 and ann["keypoint"].shape == (1, 6, 17, 2)
    # the pose model saw 170x128 frames, the keypoints are in the video's 340x256 pixels
    assert ann["img_shape"] == (256, 340) and ann["keypoint"][..., 0].max() > 170
    missing = CliRunner().invoke(app, ["extract", str(tmp_path / "nope.mp4"), "-o", str(out)])
    assert missing.exit_code != 0


def test_truncated_video_is_kept_and_reported_also_from_cache(tmp_path, data_dir):
    data = (data_dir / "videos/misc/test.avi").read_bytes()
    (tmp_path / "half.avi").write_bytes(data[: len(data) // 2])
    lst = tmp_path / "l.txt"
    lst.write_text("half.avi\t0\n")
    first = build_dataset([lst], tmp_path / "d.pkl", stride=10)
    again = build_dataset([lst], tmp_path / "d.pkl", stride=10)
    assert (first.extracted, again.extracted, again.cached) == (1, 0, 1)
    for report in (first, again):
        assert not report.failures
        assert len(report.warnings) == 1 and "half.avi" in report.warnings[0] and "164" in report.warnings[0]
    (ann,) = load_annotations(tmp_path / "d.pkl")
    assert 5 <= ann["total_frames"] <= 9  # about half of 164 frames, every 10th


@pytest.mark.slow
def test_a_crashing_worker_fails_only_its_video(tmp_path, data_dir, monkeypatch):
    """A native crash (here: os._exit in the worker, via sitecustomize) breaks the process pool;
    the other videos still get extracted and only the culprit is reported."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import os\n"
        "import posec3d.pose.extract as ex\n"
        "_real = ex.extract_video\n"
        "def extract_video(path, *a, **k):\n"
        "    if os.path.basename(str(path)) == 'crash.avi':\n"
        "        os._exit(3)\n"
        "    return _real(path, *a, **k)\n"
        "ex.extract_video = extract_video\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]))
    src = (data_dir / "videos/misc/test.avi").read_bytes()
    for name in ("a.avi", "crash.avi", "b.avi"):
        (tmp_path / name).write_bytes(src)
    lst = tmp_path / "l.txt"
    lst.write_text("a.avi\t0\ncrash.avi\t1\nb.avi\t2\n")
    report = build_dataset([lst], tmp_path / "d.pkl", workers=2, max_frames=2)
    assert report.extracted == 2
    assert [(s, e) for s, _, e in report.failures] == [
        (f"{lst}:2", f"{tmp_path / 'crash.avi'}: the worker process crashed on this video")]
    assert [a["label"] for a in load_annotations(tmp_path / "d.pkl")] == [0, 2]


def test_built_dataset_feeds_the_posec3d_pipeline(built):
    """The output is consumed as-is by data/'s PoseDataset with the standard PoseC3D test pipeline."""
    from posec3d.data.dataset import PoseDataset

    left, right = [1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]
    pipeline = [dict(type="UniformSampleFrames", clip_len=8, num_clips=1, test_mode=True),
                dict(type="PoseDecode"), dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
                dict(type="Resize", scale=(-1, 32)), dict(type="CenterCrop", crop_size=32),
                dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=True, with_limb=False,
                     left_kp=left, right_kp=right),
                dict(type="FormatShape", input_format="NCTHW_Heatmap"), dict(type="PackActionInputs")]
    _, out, _ = built
    dataset = PoseDataset(out, pipeline, split="train", test_mode=True)
    assert len(dataset) == 6
    item = dataset[4]  # clean_and_jerk: one athlete in every frame
    imgs = item["imgs"]
    assert tuple(imgs.shape) == (1, 17, 8, 32, 32) and item["label"] == 4
    assert float(imgs.max()) > 0.5  # real joint heatmaps, not an empty volume


def test_a_cache_file_that_would_run_code_is_refused_and_reextracted(tmp_path, data_dir):
    """Cache files go through the safe loader: a replaced one runs nothing and is extracted again."""
    from tests import hostile_files as H
    from posec3d.pose.dataset_builder import _load_cached

    marker = tmp_path / "MARKER"
    cache = tmp_path / "entry.pkl"
    cache.write_bytes(H.pickle_of({"annotation": H.runs_code(marker), "warnings": []}))
    assert _load_cached(cache) is None and not marker.exists()
    cache.write_bytes(H.pickle_of({"annotation": {"keypoint": H.forged_pointer_array()}, "warnings": []}))
    assert _load_cached(cache) is None
    good = {"annotation": {"frame_dir": "v", "keypoint": np.zeros((1, 2, 17, 2), np.float32)}, "warnings": ["w"]}
    cache.write_bytes(pickle.dumps(good))
    loaded = _load_cached(cache)
    assert loaded["warnings"] == ["w"] and loaded["annotation"]["keypoint"].shape == (1, 2, 17, 2)
