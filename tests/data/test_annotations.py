"""Annotation pickles: safe loading of every real file, splits, validation errors, atomic saving."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from posec3d.data.annotations import (
    load_annotation_file, load_annotations, save_annotations, validate_sample,
)
from posec3d.data.pipeline import Compose
from posec3d.errors import AnnotationError

ANNOTATION_FILES = [
    "skeleton/ntu60_mediapipe_coco17_samples.pkl",
    "skeleton/k400_mediapipe_coco17_samples.pkl",
    "skeleton/mmaction2_k400_kpfile_index_sample.pkl",
    "datasets/penn_action/penn_action_train_gt13_2d.pkl",
    "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl",
    "datasets/utkinect_action3d/utkinect_kinect20_proj2d.pkl",
    "datasets/jhmdb14_ddnet/jhmdb14_gt15_2d_pseudocanvas.pkl",
]


def _sample(frame_dir="v0", m=2, t=5, v=17, label=1, dtype=np.float32, **extra):
    rng = np.random.default_rng(0)
    s = dict(frame_dir=frame_dir, label=label, img_shape=(100, 120), original_shape=(100, 120),
             total_frames=t, keypoint=rng.uniform(1, 99, (m, t, v, 2)).astype(dtype),
             keypoint_score=rng.uniform(0, 1, (m, t, v)).astype(dtype))
    s.update(extra)
    return s


@pytest.mark.parametrize("rel", ANNOTATION_FILES)
def test_every_real_annotation_file_loads_and_validates(data_dir, rel):
    raw = load_annotation_file(data_dir / rel)
    assert set(raw) == {"split", "annotations"}
    everything = load_annotations(data_dir / rel)
    assert len(everything) == len(raw["annotations"]) > 0
    for name, ids in raw["split"].items():
        part = load_annotations(data_dir / rel, split=name, validate=False)
        assert [a["frame_dir"] for a in part] == [a["frame_dir"] for a in raw["annotations"]
                                                  if a["frame_dir"] in set(ids)]


def test_split_sizes_of_known_files(data_dir):
    assert len(load_annotations(data_dir / ANNOTATION_FILES[0], "xsub_val")) == 3
    assert len(load_annotations(data_dir / ANNOTATION_FILES[2], "train")) == 100
    msr = data_dir / "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl"
    assert (len(load_annotations(msr, "xsub_train")), len(load_annotations(msr, "xsub_test"))) == (284, 273)
    assert len(load_annotations(msr)) == 567  # 10 samples are in no split


def test_unknown_split_lists_the_available_ones(data_dir):
    with pytest.raises(AnnotationError) as e:
        load_annotations(data_dir / ANNOTATION_FILES[0], split="xview_val")
    msg = str(e.value)
    assert "ntu60_mediapipe_coco17_samples.pkl" in msg and "'xview_val'" in msg and "xsub_val" in msg


def test_fusion_score_files_hold_tensors_and_are_not_annotations(data_dir):
    scores = load_annotation_file(data_dir / "skeleton/fusion_scores/joint.pkl")
    assert isinstance(scores, list) and len(scores) == 60
    assert isinstance(scores[0]["pred_score"], torch.Tensor) and scores[0]["pred_score"].shape == (120,)
    assert float(scores[0]["pred_score"].sum()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(AnnotationError, match="score file"):
        load_annotations(data_dir / "skeleton/fusion_scores/bone.pkl")


def test_filename_identifiers_and_plain_lists(tmp_path):
    items = [_sample(f"d{i}", filename=f"videos/clip{i}.mp4") for i in range(3)]
    save_annotations(tmp_path / "a.pkl", items, split={"train": ["videos/clip0.mp4", "videos/clip2.mp4"]})
    got = load_annotations(tmp_path / "a.pkl", "train")
    assert [g["frame_dir"] for g in got] == ["d0", "d2"]  # selected by filename, file order kept
    save_annotations(tmp_path / "b.pkl", items)  # no split: a plain list
    assert isinstance(load_annotation_file(tmp_path / "b.pkl"), list)
    assert len(load_annotations(tmp_path / "b.pkl")) == 3
    with pytest.raises(AnnotationError, match="no splits"):
        load_annotations(tmp_path / "b.pkl", "train")


def test_float16_and_missing_scores_decode_to_float32_and_ones(tmp_path):
    s = _sample(dtype=np.float16)
    del s["keypoint_score"]
    save_annotations(tmp_path / "h.pkl", [s])
    (loaded,) = load_annotations(tmp_path / "h.pkl")
    assert loaded["keypoint"].dtype == np.float16
    out = Compose([dict(type="PoseDecode")])(loaded)
    assert out["keypoint"].dtype == np.float32 and out["keypoint_score"].dtype == np.float32
    assert (out["keypoint_score"] == 1).all() and out["keypoint_score"].shape == (2, 5, 17)


def test_save_roundtrip_is_exact_and_atomic(tmp_path):
    items = [_sample("a"), _sample("b", m=1, t=3)]
    path = tmp_path / "sub" / "ann.pkl"
    save_annotations(path, items, split={"val": ["b"]})
    raw = load_annotation_file(path)
    assert raw["split"] == {"val": ["b"]}
    for want, got in zip(items, raw["annotations"]):
        assert want.keys() == got.keys()
        np.testing.assert_array_equal(want["keypoint"], got["keypoint"])
    before = path.read_bytes()
    bad = [_sample("c", t=4, total_frames=9)]
    with pytest.raises(AnnotationError):
        save_annotations(path, bad)
    assert path.read_bytes() == before  # a failed save leaves the old file alone
    assert sorted(p.name for p in path.parent.iterdir()) == ["ann.pkl"]  # no temp files left
    with pytest.raises(AnnotationError, match="ids with no sample"):
        save_annotations(path, items, split={"val": ["zzz"]})


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: s.update(keypoint=s["keypoint"][..., 0]), "keypoint must be an array of shape"),
    (lambda s: s.update(keypoint_score=s["keypoint_score"][:, :, :5]), "does not match keypoint"),
    (lambda s: s.update(total_frames=7), "total_frames is 7 but keypoint has 5 frames"),
    (lambda s: s["keypoint"].__setitem__((1, 2, 3, 0), np.nan), "NaN or inf"),
    (lambda s: s["keypoint"].__setitem__((0, 0, 0, 1), np.inf), "NaN or inf"),
    (lambda s: s.update(label=60), "label 60 is out of range for 60 classes"),
    (lambda s: s.update(label=-1), "out of range"),
    (lambda s: s.update(label="run"), "label must be an int"),
    (lambda s: s.pop("frame_dir"), "neither 'frame_dir' nor 'filename'"),
    (lambda s: s.update(keypoint=s["keypoint"].astype(np.int32)), "float16/float32"),
])
def test_validation_errors_name_file_sample_and_problem(tmp_path, mutate, needle):
    items = [_sample("ok0"), _sample("S001C001P001R001A001"), _sample("ok2")]
    mutate(items[1])
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(split={"all": [i.get("frame_dir") for i in items]}, annotations=items), f)
    with pytest.raises(AnnotationError) as e:
        load_annotations(path, num_classes=60)
    msg = str(e.value)
    assert needle in msg and "bad.pkl" in msg and "sample 1" in msg and "\n" not in msg
    if "frame_dir" in items[1]:
        assert "S001C001P001R001A001" in msg


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.97])
def test_truncated_real_file_gives_one_line_error(data_dir, tmp_path, fraction):
    data = (data_dir / ANNOTATION_FILES[0]).read_bytes()
    path = tmp_path / "trunc.pkl"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(AnnotationError) as e:
        load_annotations(path)
    assert "trunc.pkl" in str(e.value) and "truncated or corrupt" in str(e.value)
    assert "\n" not in str(e.value)


def test_corrupt_and_malformed_files(tmp_path, data_dir):
    data = bytearray((data_dir / ANNOTATION_FILES[0]).read_bytes())
    data[11:60] = b"\xff" * 49  # not an opcode
    (tmp_path / "corrupt.pkl").write_bytes(bytes(data))
    (tmp_path / "text.pkl").write_text("frame_dir,label\nx,1\n")
    (tmp_path / "int.pkl").write_bytes(pickle.dumps(42))
    (tmp_path / "nokey.pkl").write_bytes(pickle.dumps({"split": {}, "items": []}))
    for name, needle in [("corrupt.pkl", "truncated or corrupt"), ("text.pkl", "truncated or corrupt"),
                         ("int.pkl", "got int"), ("nokey.pkl", "without an 'annotations' key")]:
        with pytest.raises(AnnotationError, match=needle) as e:
            load_annotations(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(AnnotationError, match="not found"):
        load_annotations(tmp_path / "missing.pkl")


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _EvalExploit:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    payload = dict(split={"a": ["x"]}, annotations=[dict(frame_dir="x", label=_Exploit(marker))])
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    with pytest.raises(AnnotationError, match="unsafe pickle") as e:
        load_annotations(path)
    assert "system" in str(e.value) and "evil.pkl" in str(e.value)
    assert not marker.exists()
    path.write_bytes(pickle.dumps([_EvalExploit()], protocol=protocol))
    with pytest.raises(AnnotationError, match="builtins.eval"):
        load_annotation_file(path)


def test_numpy_1x_and_2x_module_paths_both_load(tmp_path, data_dir):
    arr = np.arange(12, dtype=np.float16).reshape(3, 4)
    blob = pickle.dumps(dict(a=arr, s=np.float32(2.5), i=np.int64(7)), protocol=2)
    assert b"numpy._core" in blob or b"numpy.core" in blob
    for old, new in [(b"numpy._core", b"numpy.core"), (b"numpy.core", b"numpy._core")]:
        path = tmp_path / "np.pkl"
        path.write_bytes(blob.replace(old, new))
        got = load_annotation_file(path)
        np.testing.assert_array_equal(got["a"], arr)
        assert got["a"].dtype == np.float16 and got["s"] == np.float32(2.5) and got["i"] == 7
    # The real mmaction2 fixture was written by numpy 1.x (numpy.core paths).
    assert b"numpy.core.multiarray" in (data_dir / ANNOTATION_FILES[2]).read_bytes()[:4096]


def test_validate_sample_accepts_kpfile_index_items(data_dir):
    raw = load_annotation_file(data_dir / ANNOTATION_FILES[2])
    item = raw["annotations"][0]
    assert "keypoint" not in item and item["frame_inds"].shape == item["box_score"].shape
    validate_sample(item, 0, "idx.pkl")
    broken = dict(item, box_score=item["box_score"][:-1])
    with pytest.raises(AnnotationError, match="box_score shape"):
        validate_sample(broken, 0, "idx.pkl")
