"""`posec3d info` on every real pickle, and one-line errors on broken ones."""
from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.errors import AnnotationError

runner = CliRunner()


def _info_json(path) -> dict:
    result = runner.invoke(app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_info_json_on_every_shared_pickle(data_dir):
    files = sorted(data_dir.rglob("*.pkl"))
    assert len(files) >= 9
    for path in files:
        info = _info_json(path)
        for key in ("num_samples", "splits", "num_classes", "keypoints_per_person"):
            assert key in info, (path, key)
        assert info["num_samples"] > 0


def test_info_values_of_known_files(data_dir):
    ntu = _info_json(data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl")
    assert ntu["num_samples"] == 3 and ntu["splits"] == {"xsub_val": 3}
    assert ntu["keypoints_per_person"] == 17 and ntu["class_counts"] == {"0": 1, "54": 2}
    assert ntu["persons"] == {"min": 1, "median": 2.0, "max": 2}
    assert ntu["frames"] == {"min": 72, "median": 72.0, "max": 103}
    msr = data_dir / "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl"
    result = runner.invoke(app, ["info", str(msr), "--json", "--split", "xsub_test"])
    assert json.loads(result.stdout)["num_samples"] == 273
    result = runner.invoke(app, ["info", str(msr), "--split", "nope"])
    assert isinstance(result.exception, AnnotationError) and "xsub_train, xsub_test" in str(result.exception)
    penn = _info_json(data_dir / "datasets/penn_action/penn_action_train_gt13_2d.pkl")
    assert penn["num_samples"] == 1258 and penn["keypoints_per_person"] == 13
    # the highest label is no class count: only a label map or a config gives one
    assert penn["num_classes"] is None and penn["highest_label"] == 14 and penn["labels_present"] == 15
    assert penn["class_counts"]["3"] == 135  # bowl, train column of data/README
    kinect = _info_json(data_dir / "datasets/utkinect_action3d/utkinect_kinect20_proj2d.pkl")
    assert kinect["keypoints_per_person"] == 20 and len(kinect["splits"]) == 20
    index = _info_json(data_dir / "skeleton/mmaction2_k400_kpfile_index_sample.pkl")
    assert index["kind"] == "kpfile_index" and index["keypoints_per_person"] is None
    assert index["splits"] == {"train": 100} and index["dtypes"]["frame_inds"] == "int16"
    scores = _info_json(data_dir / "skeleton/fusion_scores/joint.pkl")
    assert scores["kind"] == "scores" and scores["num_classes"] == 120 and "score file" in scores["description"]


def test_info_table(data_dir):
    result = runner.invoke(app, ["info", str(data_dir / "skeleton/k400_mediapipe_coco17_samples.pkl")])
    assert result.exit_code == 0
    for text in ("samples", "val 3", "17 (COCO-17)", "300 / 300 / 300", "samples per class", "346"):
        assert text in result.stdout


def test_info_table_prints_names_with_brackets_as_they_are(tmp_path):
    """Class names and split names are user data: "[red]" or "[/]" in them is text, not rich markup."""
    kp = np.zeros((1, 4, 17, 2), np.float32)
    samples = [dict(frame_dir=f"s{i}", label=i % 2, total_frames=4, img_shape=(64, 64), keypoint=kp) for i in range(3)]
    path = tmp_path / "odd[names].pkl"
    path.write_bytes(pickle.dumps(dict(split={"[red]train": ["s0", "s1"], "val[/]": ["s2"]}, annotations=samples)))
    names = tmp_path / "labels.txt"
    names.write_text("[bold]wave\nclap [/]\n")
    result = runner.invoke(app, ["info", str(path), "--label-map", str(names)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in ("odd[names].pkl", "[red]train 2", "val[/] 1", "[bold]wave", "clap [/]"):
        assert text in result.stdout, (text, result.stdout)


def _broken_files(data_dir, tmp_path):
    src = data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl"
    data = src.read_bytes()
    (tmp_path / "truncated.pkl").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[11:60] = b"\xff" * 49
    (tmp_path / "corrupt.pkl").write_bytes(bytes(corrupt))
    with open(src, "rb") as f:
        raw = pickle.load(f)
    raw["annotations"][2]["keypoint_score"] = raw["annotations"][2]["keypoint_score"][:, :10]
    (tmp_path / "mismatch.pkl").write_bytes(pickle.dumps(raw))
    raw = pickle.loads(src.read_bytes())
    raw["annotations"][0]["keypoint"][0, 5, 3, 0] = np.nan
    (tmp_path / "nan.pkl").write_bytes(pickle.dumps(raw))
    return {"truncated.pkl": "truncated or corrupt", "corrupt.pkl": "truncated or corrupt",
            "mismatch.pkl": "sample 2 (frame_dir 'pyskl_ntu_sample'): keypoint_score shape",
            "nan.pkl": "sample 0 (frame_dir 'S001C001P001R001A001'): keypoint contains NaN"}


def test_info_errors_on_broken_files(data_dir, tmp_path):
    for name, needle in _broken_files(data_dir, tmp_path).items():
        result = runner.invoke(app, ["info", str(tmp_path / name), "--json"])
        assert isinstance(result.exception, AnnotationError), name
        assert needle in str(result.exception) and name in str(result.exception)


def test_info_cli_prints_one_line_and_exits_1(data_dir, tmp_path):
    _broken_files(data_dir, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "posec3d", "info", str(tmp_path / "mismatch.pkl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "mismatch.pkl" in lines[0]
    assert "Traceback" not in proc.stderr


def test_info_label_map(data_dir, tmp_path):
    penn = data_dir / "datasets/penn_action"
    result = runner.invoke(app, ["info", str(penn / "penn_action_train_gt13_2d.pkl"), "--json",
                                 "--label-map", str(penn / "label_map_penn_action.txt")])
    doc = json.loads(result.stdout)
    names = doc["class_names"]
    assert names["0"] == "baseball_pitch" and names["14"] == "tennis_serve"
    assert doc["num_classes"] == 15 and doc["num_classes_from"] == "label map"
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    result = runner.invoke(app, ["info", str(penn / "penn_action_train_gt13_2d.pkl"), "--label-map", str(short)])
    assert isinstance(result.exception, AnnotationError) and "2 class names" in str(result.exception)


def test_info_describes_a_kpfile(tmp_path):
    packs = {f"vid{i}": {"keypoint": np.zeros((5 + i, 17, 3), np.float16)} for i in range(3)}
    (tmp_path / "kp.pkl").write_bytes(pickle.dumps(packs))
    info = _info_json(tmp_path / "kp.pkl")
    assert info["kind"] == "kpfile" and info["num_samples"] == 3 and info["keypoints_per_person"] == 17
    assert info["frames"] == {"min": 5, "median": 6.0, "max": 7}
    table = runner.invoke(app, ["info", str(tmp_path / "kp.pkl")])
    assert table.exit_code == 0 and "K400 kpfile" in table.stdout


def test_info_table_for_every_kind(data_dir):
    for rel in ("skeleton/fusion_scores/bone.pkl", "skeleton/mmaction2_k400_kpfile_index_sample.pkl",
                "datasets/utkinect_action3d/utkinect_kinect20_proj2d.pkl"):
        result = runner.invoke(app, ["info", str(data_dir / rel)])
        assert result.exit_code == 0, (rel, result.exception)


def test_info_class_count_from_label_map_or_config_not_the_highest_label(data_dir, tmp_path):
    # NTU samples with labels 0 and 54 only: NTU60 has 60 classes, not 55
    ntu = data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl"
    assert _info_json(ntu)["num_classes"] is None and _info_json(ntu)["highest_label"] == 54
    with_map = runner.invoke(app, ["info", str(ntu), "--json", "--label-map",
                                   str(data_dir / "label_maps/label_map_ntu60.txt")])
    assert json.loads(with_map.stdout)["num_classes"] == 60
    config = "configs/compat/slowonly_r50_ntu60_xsub_joint_pyskl.py"
    with_cfg = runner.invoke(app, ["info", str(ntu), "--json", "--config", config])
    assert with_cfg.exit_code == 0, with_cfg.output
    assert json.loads(with_cfg.stdout)["num_classes"] == 60 and json.loads(with_cfg.stdout)["num_classes_from"] == "config"
    table = runner.invoke(app, ["info", str(ntu)])
    assert "unknown: 2 labels present, highest 54" in table.stdout


def test_info_reads_the_score_dumps_test_writes(tmp_path):
    from posec3d.engine.tester import dump_scores

    rng = np.random.default_rng(0)
    scores = [rng.random(7).astype(np.float32) for _ in range(4)]
    for name in ("s.pkl", "s.json"):
        dump_scores(tmp_path / name, scores)
        doc = _info_json(tmp_path / name)
        assert doc["kind"] == "scores" and doc["num_samples"] == 4 and doc["num_classes"] == 7, name
        table = runner.invoke(app, ["info", str(tmp_path / name)])
        assert table.exit_code == 0 and "per-video score vectors" in table.stdout
    (tmp_path / "bad.json").write_text("[[1, 2], [3]]")
    result = runner.invoke(app, ["info", str(tmp_path / "bad.json")])
    assert isinstance(result.exception, AnnotationError) and "not a score dump" in str(result.exception)
