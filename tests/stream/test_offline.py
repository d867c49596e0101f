"""The offline flow on the stream core: the demo document's open-set fields, demo-folder workers."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.stream import classify_annotation


def test_demo_document_carries_unknown_everywhere_a_top_label_is(recognizer, golden_poses):
    ann = golden_poses("pose_p2_f100")
    doc_off = classify_annotation(recognizer, "v.mp4", ann, per_person=True, window=48, stride=16,
                                  unknown_threshold=0).to_json()
    doc_on = classify_annotation(recognizer, "v.mp4", ann, per_person=True, window=48, stride=16,
                                 unknown_threshold=0.999).to_json()
    places_on = [doc_on] + doc_on["persons"] + doc_on["timeline"] + [w for p in doc_on["persons"] for w in p["timeline"]]
    places_off = [doc_off] + doc_off["persons"] + doc_off["timeline"] + \
        [w for p in doc_off["persons"] for w in p["timeline"]]
    assert len(places_on) == len(places_off) > 4
    assert [p["person"] for p in doc_on["persons"]] == [0, 1]
    for on, off in zip(places_on, places_off):
        assert off["unknown"] is False
        assert on["unknown"] is (on["score"] < 0.999)
        assert on["label"] == off["label"] and on["score"] == off["score"]  # label stays the best guess
    assert doc_on["label"] == doc_on["predictions"][0]["label"]
    # per-person windows: that person alone, the same windows as the whole clip's where it is seen
    assert [(w["start"], w["end"]) for w in doc_on["persons"][0]["timeline"]] == \
        [(w["start"], w["end"]) for w in doc_on["timeline"]]


@pytest.mark.slow
def test_demo_folder_workers_and_no_video_give_the_same_predictions(data_dir, tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(data_dir / "videos/kinetics/clean_and_jerk.mp4", folder)
    shutil.copy(data_dir / "videos/misc/test.avi", folder / "sub")
    runner = CliRunner()
    one, two = tmp_path / "one", tmp_path / "two"
    r = runner.invoke(app, ["demo-folder", str(folder), "-o", str(one), "--max-frames", "24",
                            "--unknown-threshold", "0"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["demo-folder", str(folder), "-o", str(two), "--max-frames", "24", "--workers", "2",
                            "--no-video", "--unknown-threshold", "0.9"])
    assert r.exit_code == 0, r.output
    a, b = pd.read_csv(one / "predictions.csv"), pd.read_csv(two / "predictions.csv")
    assert list(a["path"]) == list(b["path"]) == ["clean_and_jerk.mp4", "sub/test.avi"]
    for k in range(1, 6):
        assert list(a[f"top{k}_label"]) == list(b[f"top{k}_label"])
        assert (abs(a[f"top{k}_score"] - b[f"top{k}_score"]) <= 1e-6).all()
    assert list(b["unknown"]) == [s < 0.9 for s in b["top1_score"]]
    for path, label, unknown in zip(b["path"], b["top1_label"], b["unknown"]):  # the console says so too
        assert (f"{path}: unknown (best guess: {label} " in r.output) == unknown
    assert not a["unknown"].any()  # 0 turns the open set off
    assert (one / "videos/sub/test_demo.mp4").is_file() and not (two / "videos").exists()
    assert b["output"].isna().all()


def test_videos_are_handed_to_the_pose_workers_longest_first(data_dir, tmp_path):
    from posec3d.stream.batch import expected_work

    kinetics = data_dir / "videos/kinetics/clean_and_jerk.mp4"  # 300 frames, 340x256
    ntu = data_dir / "videos/ntu/ntu_sample.avi"  # 72 frames, 1920x1080
    assert expected_work(kinetics) == pytest.approx(300 * (1 + 340 * 256 / 3.8e6))
    assert expected_work(ntu) == pytest.approx(72 * (1 + 1920 * 1080 / 3.8e6))
    assert expected_work(kinetics, max_frames=24) == pytest.approx(24 * (1 + 340 * 256 / 3.8e6))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert expected_work(broken) == 0.0  # no place in the queue, not an error: extraction reports it


def test_a_render_worker_draws_a_video_result_without_importing_torch(data_dir, tmp_path):
    """demo-folder's render workers unpickle a VideoResult and draw it: no torch import (1.3 s each)."""
    import pickle
    import subprocess
    import sys

    import numpy as np

    from posec3d.engine.inference import Prediction, WindowPrediction
    from posec3d.stream.offline import PersonResult, VideoResult

    top = Prediction(3, "jump", 0.75)
    kp = np.full((1, 24, 17, 2), 100.0, np.float32)
    annotation = {"keypoint": kp, "keypoint_score": np.ones((1, 24, 17), np.float32), "total_frames": 24,
                  "img_shape": (256, 340)}
    result = VideoResult("clip.mp4", annotation, [top], [PersonResult(0, [top], [WindowPrediction(0, 24, top)])],
                         [WindowPrediction(0, 24, top)])
    (tmp_path / "result.pkl").write_bytes(pickle.dumps(result))
    script = (
        "import pickle, sys\n"
        "from posec3d.stream.batch import _render\n"
        f"result = pickle.loads(open({str(tmp_path / 'result.pkl')!r}, 'rb').read())\n"
        f"error = _render({str(data_dir / 'videos/kinetics/clean_and_jerk.mp4')!r}, {str(tmp_path / 'out.mp4')!r}, result)\n"
        "print(error, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["None", "False"], done.stdout + done.stderr
    assert (tmp_path / "out.mp4").stat().st_size > 0
