"""Converters: NTU .skeleton, Goyang Taekwondo JSON and CSV tables -> pyskl pickles.

Fixtures are written here from the format descriptions; expected values are worked out by hand.
"""
from __future__ import annotations

import json
import pickle
import unicodedata

import numpy as np
import pytest
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.data.annotations import load_annotations
from posec3d.data.formats.csv_table import convert_csv
from posec3d.data.formats.ntu_skeleton import convert_ntu_skeletons, read_skeleton_file
from posec3d.data.formats.taekwondo import KOREAN_COCO17, convert_taekwondo
from posec3d.errors import AnnotationError

runner = CliRunner()


# ----------------------------------------------------------------------------------- NTU
def ntu_joints(seed: float, state: int = 2) -> np.ndarray:
    """25 joints x 12 values with colorX = 100*seed + 10*j, colorY = 50*seed + j."""
    j = np.arange(25)
    rows = np.zeros((25, 12))
    rows[:, 0:3] = 0.1 * j[:, None]          # x y z (metres, unused)
    rows[:, 3:5] = 7.0                       # depthX depthY (unused)
    rows[:, 5] = 100 * seed + 10 * j         # colorX
    rows[:, 6] = 50 * seed + j               # colorY
    rows[:, 7:11] = 0.5                      # orientation (unused)
    rows[:, 11] = state
    return rows


def write_skeleton(path, frames: list[list[tuple[int, np.ndarray]]]) -> None:
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, joints in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.1 -0.2 2")
            lines.append("25")
            lines += [" ".join(f"{v:.6g}" for v in row[:11]) + f" {int(row[11])}" for row in joints]
    path.write_text("\n".join(lines) + "\n")


def test_ntu_skeleton_values_persons_and_scores(tmp_path):
    a = ntu_joints(1.0)
    a[6, 11] = 1   # left wrist inferred -> 0.5
    a[10, 11] = 0  # right wrist not tracked -> 0
    b = ntu_joints(2.0)
    frames = [[(72057594037931101, a)], [], [(72057594037931101, a), (72057594037931200, b)]]
    f = tmp_path / "S002C003P004R001A023.skeleton"
    write_skeleton(f, frames)
    s = read_skeleton_file(f)
    assert s["frame_dir"] == "S002C003P004R001A023" and s["label"] == 22
    assert s["img_shape"] == (1080, 1920) and s["total_frames"] == 3
    assert s["keypoint"].shape == (2, 3, 17, 2) and s["keypoint_score"].shape == (2, 3, 17)
    # nose <- Kinect joint 3 (head): colorX = 100 + 30, colorY = 50 + 3
    np.testing.assert_array_equal(s["keypoint"][0, 0, 0], [130, 53])
    # left shoulder <- 4, right ankle <- 18
    np.testing.assert_array_equal(s["keypoint"][0, 0, 5], [140, 54])
    np.testing.assert_array_equal(s["keypoint"][0, 2, 16], [280, 68])
    np.testing.assert_array_equal(s["keypoint"][1, 2, 12], [360, 116])  # body b, r_hip <- 16
    # eyes / ears absent; frame 1 empty; body b absent in frame 0
    assert not s["keypoint"][:, :, 1:5].any() and not s["keypoint_score"][:, :, 1:5].any()
    assert not s["keypoint"][:, 1].any() and not s["keypoint"][1, 0].any()
    assert s["keypoint_score"][0, 0, 9] == 0.5 and s["keypoint_score"][0, 0, 10] == 0.0
    assert s["keypoint_score"][0, 0, 0] == 1.0


def test_ntu_close_body_ids_above_2_53_stay_two_persons(tmp_path):
    # Real Kinect IDs are ~7.2e16; as floats, IDs closer than 16 collapse into one value.
    id_a, id_b = 72057594037944738, 72057594037944739
    assert float(id_a) == float(id_b)  # the precondition of the bug this guards against
    a, b = ntu_joints(1.0), ntu_joints(2.0)
    f = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(f, [[(id_a, a), (id_b, b)], [(id_a, a), (id_b, b)]])
    s = read_skeleton_file(f)
    assert s["keypoint"].shape == (2, 2, 17, 2)
    # nose <- head (joint 3): colorX = 100 * seed + 30 for each body, both frames
    np.testing.assert_array_equal(s["keypoint"][:, :, 0, 0], [[130, 130], [230, 230]])
    assert (s["keypoint_score"][:, :, 0] == 1.0).all()


def test_ntu_non_finite_colour_coordinates_become_missing(tmp_path):
    f = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(f, [[(1, ntu_joints(1.0))]])
    lines = f.read_text().splitlines()
    head = 4 + 3  # frame count, body count, body info, joint count, joints 0-2; line of joint 3 (head)
    fields = lines[head].split()
    fields[5], fields[6] = "NaN", "-inf"
    lines[head] = " ".join(fields)
    f.write_text("\n".join(lines) + "\n")
    s = read_skeleton_file(f)
    np.testing.assert_array_equal(s["keypoint"][0, 0, 0], [0, 0])
    assert s["keypoint_score"][0, 0, 0] == 0 and s["keypoint_score"][0, 0, 5] == 1


def test_ntu_keeps_the_two_longest_bodies(tmp_path):
    f = tmp_path / "S001C001P001R001A001.skeleton"
    short, long1, long2 = ntu_joints(3.0), ntu_joints(1.0), ntu_joints(2.0)
    write_skeleton(f, [[(5, short), (1, long1)], [(1, long1), (2, long2)], [(1, long1), (2, long2)]])
    s = read_skeleton_file(f, max_persons=2)
    assert s["keypoint"].shape[0] == 2
    assert s["keypoint"][0, 0, 0, 0] == 130 and s["keypoint"][1, 1, 0, 0] == 230  # body 1 then 2


def test_ntu_directory_splits_and_cli(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    names = ["S001C001P001R001A001", "S001C002P003R002A010", "S005C003P002R001A060"]
    for n in names:
        write_skeleton(src / f"{n}.skeleton", [[(1, ntu_joints(1.0))]] * 4)
    write_skeleton(src / "S001C001P007R001A002.skeleton", [[], []])  # no body at all: skipped
    annos, split, skipped = convert_ntu_skeletons(src)
    assert [a["frame_dir"] for a in annos] == names and skipped == ["S001C001P007R001A002.skeleton"]
    assert split == {
        "xsub_train": ["S001C001P001R001A001", "S005C003P002R001A060"],
        "xsub_val": ["S001C002P003R002A010"],
        "xview_train": ["S001C002P003R002A010", "S005C003P002R001A060"],
        "xview_val": ["S001C001P001R001A001"],
    }
    out = tmp_path / "ntu.pkl"
    r = runner.invoke(app, ["convert", "ntu-skeleton", str(src), "-o", str(out)])
    assert r.exit_code == 0, r.output
    loaded = load_annotations(out, split="xview_train")
    assert [a["label"] for a in loaded] == [9, 59]


def test_ntu120_adds_xset(tmp_path):
    for n in ("S018C001P045R001A061", "S019C001P046R001A001"):
        write_skeleton(tmp_path / f"{n}.skeleton", [[(1, ntu_joints(1.0))]])
    _, split, _ = convert_ntu_skeletons(tmp_path)
    assert split["xset_train"] == ["S018C001P045R001A061"] and split["xset_val"] == ["S019C001P046R001A001"]
    assert split["xsub_train"] == ["S018C001P045R001A061", "S019C001P046R001A001"]


@pytest.mark.parametrize("damage, line, message", [
    (lambda ls: ls[:10], 11, "file ends early"),
    (lambda ls: ls[:5] + ["1 2 three 4 5 6 7 8 9 10 11 2"] + ls[6:], 6, "non-numeric"),
    (lambda ls: ls[:4] + ["1 2 3"] + ls[5:], 5, "expected 12 value"),
    (lambda ls: ls[:3] + ["24"] + ls[4:], 4, "expected 25 joints"),
])
def test_ntu_malformed_names_file_and_line(tmp_path, damage, line, message):
    f = tmp_path / "S001C001P001R001A001.skeleton"
    write_skeleton(f, [[(1, ntu_joints(1.0))]])
    f.write_text("\n".join(damage(f.read_text().splitlines())) + "\n")
    with pytest.raises(AnnotationError, match=rf"S001C001P001R001A001\.skeleton: line {line}: .*{message}"):
        read_skeleton_file(f)


def test_ntu_bad_name_and_cli_error(tmp_path):
    f = tmp_path / "foo.skeleton"
    f.write_text("0\n")
    with pytest.raises(AnnotationError, match="foo.skeleton.*NTU RGB"):
        read_skeleton_file(f)
    r = runner.invoke(app, ["convert", "ntu-skeleton", str(tmp_path / "nope"), "-o", str(tmp_path / "o.pkl")])
    assert r.exit_code != 0 and isinstance(r.exception, AnnotationError)


# ----------------------------------------------------------------------------- Taekwondo
def tkd_frame(path, shift: float, view=2, drop: tuple[str, ...] = (), size=None) -> None:
    """A frame JSON whose joint j sits at (shift + j, 2*shift + j)."""
    loc = {name: {"x": shift + j, "y": 2 * shift + j, "view": view}
           for j, name in enumerate(KOREAN_COCO17) if name not in drop}
    loc["머리 위"] = {"x": 1, "y": 1, "view": 2}  # a non-COCO joint, ignored
    label = {"pose": {"location": loc}}
    if size is not None:
        label["images"] = {"width": size[1], "height": size[0]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"labelingInfo": [label]}, ensure_ascii=False), encoding="utf-8")


def make_taekwondo(root):
    base = root / "01.데이터"
    tr = base / "1.Training" / "라벨링데이터"
    va = base / "2.Validation" / "라벨링데이터"
    # class folders deliberately created out of code-point order; one stored decomposed (NFD)
    seq = tr / "주춤서고 팔꿈치표적치기" / "P01_T01"
    for name, shift in [("A-E01", 40), ("A-M10", 30), ("A-M2", 20), ("A-S01", 10)]:
        tkd_frame(seq / f"{name}.json", shift)
    nfd = unicodedata.normalize("NFD", "기본준비")
    tkd_frame(tr / nfd / "P02" / "B-S1.json", 1, view=1)
    tkd_frame(tr / nfd / "P02" / "B-E1.json", 2, view=0, drop=("코",))
    tkd_frame(va / "내려헤쳐막기" / "P03" / "C-S1.json", 5)
    tkd_frame(va / "내려헤쳐막기" / "P03" / "C-E1.json", 6)
    # one motion filmed from two directions: two takes in one sequence folder -> two samples
    two = tr / "주춤서고 팔꿈치표적치기" / "P05"
    for take in ("V10", "V2"):
        tkd_frame(two / f"P05-{take}-S01.json", 1, size=(720, 1280) if take == "V2" else None)
        tkd_frame(two / f"P05-{take}-E01.json", 2, size=(720, 1280) if take == "V2" else None)
    tkd_frame(two / "P05-V2-M05.json", 3)
    (base / "1.Training" / "원천데이터").mkdir()  # images folder, unused
    return root


def test_taekwondo_order_labels_and_scores(tmp_path):
    annos, split, names = convert_taekwondo(make_taekwondo(tmp_path))
    assert names == ["기본준비", "내려헤쳐막기", "주춤서고 팔꿈치표적치기"]  # code-point order
    by = {a["frame_dir"]: a for a in annos}
    assert split == {"train": ["train/기본준비/P02", "train/주춤서고 팔꿈치표적치기/P01_T01",
                               "train/주춤서고 팔꿈치표적치기/P05/P05-V2", "train/주춤서고 팔꿈치표적치기/P05/P05-V10"],
                     "val": ["val/내려헤쳐막기/P03"]}
    v2, v10 = by["train/주춤서고 팔꿈치표적치기/P05/P05-V2"], by["train/주춤서고 팔꿈치표적치기/P05/P05-V10"]
    np.testing.assert_array_equal(v2["keypoint"][0, :, 0], [[1, 2], [3, 6], [2, 4]])  # S, M, E
    assert v2["img_shape"] == (720, 1280) and v10["img_shape"] == (1080, 1920)
    assert v10["total_frames"] == 2 and v10["label"] == 2
    s = by["train/주춤서고 팔꿈치표적치기/P01_T01"]
    assert s["label"] == 2 and s["total_frames"] == 4 and s["img_shape"] == (1080, 1920)
    assert s["keypoint"].shape == (1, 4, 17, 2) and s["keypoint_score"].shape == (1, 4, 17)
    # S, then M2 before M10 (natural order), then E; joint 5 at (shift + 5, 2*shift + 5)
    np.testing.assert_array_equal(s["keypoint"][0, :, 5], [[15, 25], [25, 45], [35, 65], [45, 85]])
    assert (s["keypoint_score"] == 1).all()  # view 2 clipped to 1
    b = by["train/기본준비/P02"]
    assert b["label"] == 0
    np.testing.assert_array_equal(b["keypoint_score"][0, :, 0], [1, 0])   # view 1; nose missing
    np.testing.assert_array_equal(b["keypoint_score"][0, 1, 1:], np.zeros(16))  # view 0
    np.testing.assert_array_equal(b["keypoint"][0, 1, 0], [0, 0])
    assert by["val/내려헤쳐막기/P03"]["label"] == 1


def test_taekwondo_cli_writes_pickle_and_label_map(tmp_path):
    out = tmp_path / "out" / "tkd.pkl"
    r = runner.invoke(app, ["convert", "taekwondo", str(make_taekwondo(tmp_path / "ds")), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert (out.parent / "tkd_label_map.txt").read_text(encoding="utf-8").splitlines() == [
        "기본준비", "내려헤쳐막기", "주춤서고 팔꿈치표적치기"]
    with open(out, "rb") as f:
        raw = pickle.load(f)
    assert set(raw) == {"split", "annotations"} and set(raw["split"]) == {"train", "val"}
    assert [a["label"] for a in load_annotations(out, split="val")] == [1]


def test_taekwondo_errors_name_the_file(tmp_path):
    root = make_taekwondo(tmp_path)
    bad = root / "01.데이터/2.Validation/라벨링데이터/내려헤쳐막기/P03/C-M1.json"
    bad.write_text('{"labelingInfo": [{"pose": {"location": {"코": {"x": 1}', encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"C-M1\.json: invalid JSON at line 1"):
        convert_taekwondo(root)
    bad.write_text('{"labelingInfo": []}', encoding="utf-8")
    with pytest.raises(AnnotationError, match=r"C-M1\.json: no labelingInfo"):
        convert_taekwondo(root)
    bad.unlink()
    tkd_frame(bad.with_name("C-X1.json"), 3)
    with pytest.raises(AnnotationError, match=r"C-X1\.json: cannot tell the frame role"):
        convert_taekwondo(root)
    with pytest.raises(AnnotationError, match="no 01.데이터/1.Training"):
        convert_taekwondo(tmp_path / "01.데이터" / "1.Training")


# ----------------------------------------------------------------------------------- CSV
CSV = """video,frame,person,joint,x,y,score,label,split
clipA,0,7,0,10.5,20,0.9,3,train
clipA,0,7,1,11,21,1.0,3,train
clipA,2,9,1,30,40,0.5,3,train
clipB,1,0,left_eye,100,200,1,5,val
"""


def test_csv_values_shapes_and_split(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text(CSV)
    annos, split = convert_csv(f, split_column="split")
    assert split == {"train": ["clipA"], "val": ["clipB"]}
    a, b = annos
    assert a["frame_dir"] == "clipA" and a["label"] == 3 and a["total_frames"] == 3
    assert a["keypoint"].shape == (2, 3, 2, 2)  # persons 7, 9; frames 0..2; joints 0..1 (V from the file)
    np.testing.assert_array_equal(a["keypoint"][0, 0], [[10.5, 20], [11, 21]])
    np.testing.assert_array_equal(a["keypoint"][1, 2, 1], [30, 40])
    np.testing.assert_allclose(a["keypoint_score"][:, :, 1], [[1, 0, 0], [0, 0, 0.5]])
    assert not a["keypoint"][:, 1].any()
    assert a["img_shape"] == (41, 31)  # inferred: ceil(max) + 1
    assert b["keypoint"].shape == (1, 2, 2, 2) and b["label"] == 5
    np.testing.assert_array_equal(b["keypoint"][0, 1, 1], [100, 200])


def test_csv_cli_round_trip(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("video,frame,person,joint,x,y\nv,0,0,16,1,2\nv,1,0,0,3,4\n")
    out = tmp_path / "t.pkl"
    r = runner.invoke(app, ["convert", "csv", str(f), "-o", str(out), "--img-shape", "480", "640"])
    assert r.exit_code == 0, r.output
    (s,) = load_annotations(out)
    assert s["img_shape"] == (480, 640) and s["keypoint"].shape == (1, 2, 17, 2)
    assert s["keypoint_score"][0, 0, 16] == 1 and s["keypoint_score"][0, 0, 0] == 0


@pytest.mark.parametrize("body, match", [
    ("video,frame,person,joint,x\nv,0,0,0,1\n", "missing column"),
    ("video,frame,person,joint,x,y\nv,0,0,0,1,2\nv,x,0,0,1,2\n", "line 3: column 'frame'"),
    ("video,frame,person,joint,x,y\nv,0,0,0,1,2\nv,1,0,nose2,1,2\n", "line 3: column 'joint'"),
    ("video,frame,person,joint,x,y,score\nv,0,0,0,1,2,1.5\n", "line 2: column 'score'"),
    ("video,frame,person,joint,x,y\nv,0,0,0,1,2\nv,0,0,0,5,6\n", "line 3: duplicate row"),
    ("video,frame,person,joint,x,y,label\nv,0,0,0,1,2,1\nv,1,0,0,1,2,2\n", "line 3: video 'v' has more than one 'label'"),
    ("video,frame,person,joint,x,y\nv,-1,0,0,1,2\n", "line 2: column 'frame'"),
])
def test_csv_errors_name_file_and_line(tmp_path, body, match):
    f = tmp_path / "bad.csv"
    f.write_text(body)
    with pytest.raises(AnnotationError, match=rf"bad\.csv: .*{match}"):
        convert_csv(f)


def test_converted_ntu_feeds_the_ntu60_val_pipeline(tmp_path):
    """A converted file runs through configs/ntu60_xsub/slowonly_r50_joint.py's val pipeline."""
    from pathlib import Path

    from posec3d.data.pipeline import Compose
    from posec3d.engine.config import load_config, pipeline_cfg

    rng = np.random.default_rng(0)
    frames = []
    for t in range(30):
        joints = ntu_joints(1.0)
        joints[:, 5:7] = [900, 400] + rng.normal(0, 3, (25, 2)) + np.arange(25)[:, None] * [2, 20]
        frames.append([(1, joints)])
    write_skeleton(tmp_path / "S001C001P001R001A010.skeleton", frames)
    out = tmp_path / "ntu.pkl"
    r = runner.invoke(app, ["convert", "ntu-skeleton", str(tmp_path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    (sample,) = load_annotations(out, split="xsub_train")
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs/ntu60_xsub/slowonly_r50_joint.py")
    result = Compose(pipeline_cfg(cfg, "val"))(dict(sample, test_mode=True, modality="Pose", start_index=0))
    assert tuple(result["imgs"].shape) == (1, 17, 48, 64, 64) and int(result["label"]) == 9
    assert float(result["imgs"][0, 0].max()) > 0.9 and float(result["imgs"][0, 1:5].max()) == 0  # no eyes/ears
