"""`posec3d demo` and `posec3d demo-folder` on real videos, and the inference helpers."""
from __future__ import annotations

import json
import shutil

import av
import numpy as np
import openpyxl
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.engine.inference import (
    ActionRecognizer,
    WindowPrediction,
    frames_every,
    Prediction,
    select_person,
    slice_frames,
    sliding_windows,
    window_at,
)

NTU60_M_CONFIG = "configs/compat/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Small 3D convs gain nothing from a second thread, and on a busy machine its spinning costs 5x.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _video_info(path):
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return len(frames), frames


# ----------------------------------------------------------------------------------------------
# helpers (hand-derived values)


def test_sliding_windows_cover_every_frame():
    assert sliding_windows(100, 48, 24) == [(0, 48), (24, 72), (48, 96), (52, 100)]
    assert sliding_windows(96, 48, 24) == [(0, 48), (24, 72), (48, 96)]
    assert sliding_windows(30, 48, 24) == [(0, 30)]  # shorter than one window
    with pytest.raises(ValueError):
        sliding_windows(10, 0, 1)


def test_window_at_picks_the_window_centred_nearest():
    p = Prediction(0, "a", 1.0)
    tl = [WindowPrediction(0, 48, p), WindowPrediction(24, 72, p), WindowPrediction(48, 96, p)]
    assert window_at(tl, 10) is tl[0]
    assert window_at(tl, 40) is tl[1]   # centres 23.5 and 47.5: 47.5 is nearer
    assert window_at(tl, 95) is tl[2]
    assert window_at(tl, 96) is None


def test_select_person_and_slice_frames():
    kp = np.arange(2 * 10 * 17 * 2, dtype=np.float32).reshape(2, 10, 17, 2)
    ann = {"keypoint": kp, "keypoint_score": np.ones((2, 10, 17), np.float32), "total_frames": 10,
           "img_shape": (100, 100)}
    one = select_person(ann, 1)
    assert one["keypoint"].shape == (1, 10, 17, 2) and (one["keypoint"][0] == kp[1]).all()
    part = slice_frames(ann, 3, 7)
    assert part["total_frames"] == 4 and (part["keypoint"] == kp[:, 3:7]).all()
    assert ann["total_frames"] == 10  # the input is untouched


def test_frames_every_takes_the_nearest_frame_each_step_and_stays_inside_the_clip():
    """What a client sending one frame every ``step`` source frames delivers (the camera tab: one per 0.15 s)."""
    kp = np.arange(1 * 10 * 17 * 2, dtype=np.float32).reshape(1, 10, 17, 2)
    score = np.arange(10 * 17, dtype=np.float32).reshape(1, 10, 17)
    ann = {"keypoint": kp, "keypoint_score": score, "total_frames": 10, "img_shape": (100, 100)}
    every_2_5 = frames_every(ann, 2.5)  # 0, 2.5, 5, 7.5 -> frames 0, 2, 5, 8 (numpy rounds half to even)
    assert every_2_5["total_frames"] == 4
    assert (every_2_5["keypoint"] == kp[:, [0, 2, 5, 8]]).all() and (every_2_5["keypoint_score"] == score[:, [0, 2, 5, 8]]).all()
    every_3_2 = frames_every(ann, 3.2)  # 0, 3.2, 6.4, 9.6 -> 0, 3, 6 and 10, which is past the last frame
    assert (every_3_2["keypoint"] == kp[:, [0, 3, 6]]).all() and every_3_2["total_frames"] == 3
    assert frames_every(ann, 1)["total_frames"] == 10


def test_user_checkpoint_matches_mmaction2(golden, data_dir):
    """A user's mmaction2 NTU60 checkpoint + config + label map: scores equal real mmaction2's."""
    rec = ActionRecognizer(NTU60_M_CONFIG, golden / "models/slowonly_r50_ntu60_xsub_keypoint.pth",
                           data_dir / "label_maps/label_map_ntu60.txt", num_clips=1, flip=True)
    case = np.load(golden / "transforms/pose_p2_f100.npz")
    ann = {"keypoint": case["input/keypoint"], "keypoint_score": case["input/keypoint_score"],
           "img_shape": tuple(int(v) for v in case["input/img_shape"]),
           "total_frames": int(case["input/total_frames"])}
    want = np.load(golden / "models/slowonly_r50_ntu60_xsub_keypoint.outputs.npz")["pipeline_kp/prob_avg"][0]
    np.testing.assert_allclose(rec.scores(ann), want, atol=1e-4)
    top = rec.predict(ann, topk=5)
    assert [p.index for p in top] == list(np.argsort(-want, kind="stable")[:5])
    assert top[0].label == (data_dir / "label_maps/label_map_ntu60.txt").read_text().splitlines()[top[0].index]


# ----------------------------------------------------------------------------------------------
# the commands, end to end


@pytest.mark.slow
def test_demo_clean_and_jerk_with_the_default_model(data_dir, tmp_path):
    video = data_dir / "videos/kinetics/clean_and_jerk.mp4"
    out, js, png = tmp_path / "cj.mp4", tmp_path / "cj.json", tmp_path / "frame.png"
    result = CliRunner().invoke(app, ["demo", str(video), "-o", str(out), "--json", str(js),
                                      "--window", "96", "--stride", "48", "--per-person", "--save-frame", str(png)])
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    assert doc["video"] == str(video)
    preds = doc["predictions"]
    assert len(preds) == 5 and set(preds[0]) >= {"label", "score"}
    assert preds[0]["label"] == "clean_and_jerk"
    scores = [p["score"] for p in preds]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    # sliding windows: 300 frames, 96 long every 48 -> starts 0, 48, ..., 192, then 204 to reach the end
    assert [(w["start"], w["end"]) for w in doc["timeline"]] == \
        [(0, 96), (48, 144), (96, 192), (144, 240), (192, 288), (204, 300)]
    assert all(set(w) >= {"start", "end", "label", "score"} for w in doc["timeline"])
    assert doc["persons"] and all(len(p["predictions"]) == 5 for p in doc["persons"])
    n, frames = _video_info(out)
    assert n == 300 and frames[0].shape == (256, 340, 3)
    # the skeleton is drawn: annotated frames differ from the source where the athlete is
    with av.open(str(video)) as c:
        src = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    assert np.abs(frames[0].astype(int) - src.astype(int)).max() > 100
    assert png.is_file()


@pytest.mark.slow
def test_demo_with_a_user_ntu60_checkpoint_per_person(golden, data_dir, tmp_path):
    js = tmp_path / "ntu.json"
    result = CliRunner().invoke(app, [
        "demo", str(data_dir / "videos/ntu/ntu_sample.avi"), "-o", str(tmp_path / "ntu.mp4"), "--json", str(js),
        "--config", NTU60_M_CONFIG, "--checkpoint", str(golden / "models/slowonly_r50_ntu60_xsub_keypoint.pth"),
        "--label-map", str(data_dir / "label_maps/label_map_ntu60.txt"), "--max-frames", "24", "--num-clips", "1",
        "--per-person", "--topk", "3"])
    assert result.exit_code == 0, result.output
    doc = json.loads(js.read_text())
    names = (data_dir / "label_maps/label_map_ntu60.txt").read_text().splitlines()
    assert len(doc["predictions"]) == 3 and all(p["label"] in names for p in doc["predictions"])
    assert doc["num_frames"] == 24
    assert [p["person"] for p in doc["persons"]] == [0, 1]  # two people hug: one action each


def test_demo_rejects_half_a_model(tmp_path, data_dir):
    result = CliRunner().invoke(app, ["demo", str(data_dir / "videos/kinetics/clean_and_jerk.mp4"),
                                      "-o", str(tmp_path / "x.mp4"), "--config", NTU60_M_CONFIG])
    assert result.exit_code != 0
    assert "--checkpoint" in str(result.exception) + result.output


@pytest.mark.slow
def test_demo_folder_report_and_resume(data_dir, tmp_path):
    root = data_dir / "videos"
    labels = tmp_path / "truth.txt"
    # ground truth must use the model's class names (tai chi and drinking are not Penn Action classes)
    labels.write_text("kinetics/clean_and_jerk.mp4 clean_and_jerk\nkinetics/ta_chi.mp4 squat\n"
                      "S001C001P001R001A001_rgb bench_press\n")
    out = tmp_path / "report"
    args = ["demo-folder", str(root), "-o", str(out), "--annotations", str(labels), "--max-frames", "40",
            "--num-clips", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    videos = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".mp4", ".avi"))
    table = pd.read_csv(out / "predictions.csv")
    assert sorted(table["path"]) == videos and len(videos) == 9
    assert table["error"].isna().all()
    book = openpyxl.load_workbook(out / "report.xlsx")
    assert {"videos", "summary", "confusion_matrix"} <= set(book.sheetnames)
    header = [c.value for c in book["videos"][1]]
    assert header[:4] == ["path", "true_label", "top1_label", "top1_score"] and "correct" in header
    assert book["videos"].max_row == 10
    summary = {r[0]: r[1] for r in book["summary"].iter_rows(min_row=2, max_col=2, values_only=True) if r[0]}
    assert summary["videos"] == 9 and summary["labelled and classified"] == 3
    assert summary["top1_accuracy"] is not None and "mean_class_accuracy" in summary
    cm = book["confusion_matrix"]
    rows = [r[0] for r in cm.iter_rows(min_row=2, max_col=1, values_only=True)]
    assert {"clean_and_jerk", "squat", "bench_press"} <= set(rows)
    assert sum(v for r in cm.iter_rows(min_row=2, min_col=2, values_only=True) for v in r if v) == 3
    for rel in table["output"]:
        assert (out / rel).is_file()
    # resumable: a second run takes every video from the cache
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "9 videos (9 from cache)" in again.output


@pytest.mark.slow
def test_demo_folder_reports_bad_videos_without_stopping(data_dir, tmp_path):
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(data_dir / "videos/misc/test.avi", root / "sub/good.avi")
    (root / "broken.mp4").write_bytes(b"this is not a video")
    data = (data_dir / "videos/kinetics/ta_chi.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 50])
    result = CliRunner().invoke(app, ["demo-folder", str(root), "-o", str(tmp_path / "out"), "--max-frames", "16",
                                      "--num-clips", "1"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "out/predictions.csv").set_index("path")
    assert set(table.index) == {"broken.mp4", "sub/good.avi", "truncated.mp4"}
    assert "broken.mp4" in table.index and "VideoError" in table.loc["broken.mp4", "error"]
    assert isinstance(table.loc["sub/good.avi", "top1_label"], str) or \
        "no person" in str(table.loc["sub/good.avi", "error"])
    failed = openpyxl.load_workbook(tmp_path / "out/report.xlsx")["failed"]
    assert "broken.mp4" in [r[0] for r in failed.iter_rows(min_row=2, values_only=True)]


# ----------------------------------------------------------------------------------------------
# demo-folder: ground truth, accuracy and file listing (issue 13's silent wrong results)


def test_demo_folder_truth_rejects_class_names_outside_the_label_map(tmp_path):
    from posec3d.apps.demo_folder import read_truth
    from posec3d.errors import AnnotationError

    names = ["clean_and_jerk", "squat", "pushup"]
    good = tmp_path / "good.txt"
    good.write_text("a.mp4 squat\nsub/b.mp4 2\n")
    assert read_truth(good, tmp_path, names)["a.mp4"] == "squat"
    assert read_truth(good, tmp_path, names)["sub/b.mp4"] == "pushup"
    bad = tmp_path / "bad.txt"
    bad.write_text("a.mp4 squat\nb.mp4 sqaut\n")
    with pytest.raises(AnnotationError, match=r"bad.txt:2: class 'sqaut' is not in .*did you mean 'squat'"):
        read_truth(bad, tmp_path, names)


def test_demo_folder_mean_class_accuracy_is_the_test_commands():
    from posec3d.apps.demo_folder import summary_tables
    from posec3d.engine.metrics import evaluate

    def row(true, pred):
        return {"true_label": true, "predictions": [{"label": pred, "score": 1.0}], "correct": true == pred,
                "correct_top5": true == pred, "error": None}

    rows = [row("a", "a"), row("a", "b"), row("b", "c"), row("b", "b"), row("b", "b")]
    overall, per_class, _ = summary_tables(rows)
    value = dict(zip(overall["metric"], overall["value"]))["mean_class_accuracy"]
    # by hand (mmaction2): recall a = 1/2, b = 2/3, and c (predicted, never true) counts 0
    assert value == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    # and exactly what `posec3d test` reports for the same predictions (classes a=0, b=1, c=2)
    scores = np.eye(3)[[0, 1, 2, 1, 1]]
    assert value == pytest.approx(evaluate(scores, [0, 0, 1, 1, 1])["mean_class_accuracy"])
    assert per_class["accuracy"].tolist() == pytest.approx([1 / 2, 2 / 3])  # the per-class sheet: recall


@pytest.mark.slow
def test_demo_folder_symlinks_to_one_video_are_separate_videos(data_dir, tmp_path):
    root = tmp_path / "links"
    root.mkdir()
    names = [f"take_{i}.mp4" for i in range(5)]
    for name in names:
        (root / name).symlink_to(data_dir / "videos/kinetics/ta_chi.mp4")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo-folder", str(root), "-o", str(out), "--max-frames", "8",
                                      "--num-clips", "1"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "predictions.csv")
    assert table["path"].tolist() == names and table["error"].isna().all()
    assert table["output"].tolist() == [f"videos/take_{i}_demo.mp4" for i in range(5)]
    assert all((out / rel).is_file() for rel in table["output"])
    assert table["top1_label"].nunique() == 1  # the same frames, the same prediction


def test_label_map_longer_than_the_classes_is_refused(tmp_path):
    from posec3d.errors import ConfigError
    from posec3d.zoo import resolve_model

    m = resolve_model("penn-action")
    names = m.label_map.read_text().splitlines()
    longer = tmp_path / "longer.txt"
    longer.write_text("\n".join(names + ["extra_class"]) + "\n")
    with pytest.raises(ConfigError, match=r"longer.txt: 16 class names for a model with 15 classes"):
        ActionRecognizer(m.config, m.checkpoint, longer)
    assert ActionRecognizer(m.config, m.checkpoint, m.label_map).labels == names
