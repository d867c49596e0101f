"""PoseDataset / RepeatDataset on the real pickles with the SPEC §3 pipelines as written."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from posec3d.data import skeletons as S
from posec3d.data.annotations import load_annotation_file, load_annotations
from posec3d.data.dataset import PoseDataset, RepeatDataset
from posec3d.errors import AnnotationError, ConfigError
from posec3d.registry import DATASETS

LEFT, RIGHT = list(S.COCO17_LEFT_KP), list(S.COCO17_RIGHT_KP)
LIMBS = [list(p) for p in S.CONFIG_LIMBS]

# mmaction2 slowonly_r50_8xb16-u48-240e_ntu60-xsub-limb.py, as written (SPEC §3.1).
M_TRAIN = [
    dict(type="UniformSampleFrames", clip_len=48), dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True), dict(type="Resize", scale=(-1, 64)),
    dict(type="RandomResizedCrop", area_range=(0.56, 1.0)), dict(type="Resize", scale=(56, 56), keep_ratio=False),
    dict(type="Flip", flip_ratio=0.5, left_kp=LEFT, right_kp=RIGHT),
    dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=False, with_limb=True, skeletons=LIMBS),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"), dict(type="PackActionInputs"),
]
M_TEST = [
    dict(type="UniformSampleFrames", clip_len=48, num_clips=10, test_mode=True), dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True), dict(type="Resize", scale=(-1, 64)),
    dict(type="CenterCrop", crop_size=64),
    dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=True, with_limb=False, double=True,
         left_kp=LEFT, right_kp=RIGHT),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"), dict(type="PackActionInputs"),
]
# pyskl configs/posec3d/slowonly_r50_ntu60_xsub/joint.py val pipeline.
P_VAL = [
    dict(type="UniformSampleFrames", clip_len=48, num_clips=1), dict(type="PoseDecode"),
    dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True), dict(type="Resize", scale=(64, 64), keep_ratio=False),
    dict(type="GeneratePoseTarget", with_kp=True, with_limb=False),
    dict(type="FormatShape", input_format="NCTHW_Heatmap"),
    dict(type="Collect", keys=["imgs", "label"], meta_keys=[]), dict(type="ToTensor", keys=["imgs"]),
]


@pytest.fixture(scope="module")
def ntu(data_dir):
    return data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl"


@pytest.mark.slow
def test_mmaction2_test_pipeline_items(ntu):
    ds = PoseDataset(ntu, M_TEST, split="xsub_val", test_mode=True, num_classes=60)
    assert len(ds) == 3 and ds.labels == [0, 54, 54]
    item = ds[1]
    assert item["imgs"].dtype == torch.float32 and tuple(item["imgs"].shape) == (20, 17, 48, 64, 64)
    assert item["label"] == 54
    # Deterministic in test mode; views 10..19 are the mirrored views 0..9.
    again = ds[1]["imgs"]
    assert torch.equal(again, item["imgs"])
    swap = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    torch.testing.assert_close(item["imgs"][10:, swap].flip(-1), item["imgs"][:10], atol=0, rtol=0)


def test_train_pipeline_and_repeat_dataset(ntu):
    cfg = dict(type="RepeatDataset", times=4,
               dataset=dict(type="PoseDataset", ann_file=str(ntu), pipeline=M_TRAIN, split="xsub_val"))
    ds = DATASETS.build(cfg)
    assert isinstance(ds, RepeatDataset) and len(ds) == 12 and ds.labels == [0, 54, 54] * 4
    np.random.seed(0)
    item = ds[5]
    assert tuple(item["imgs"].shape) == (1, 17, 48, 56, 56) and item["label"] == 54
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert tuple(batch["imgs"].shape) == (2, 1, 17, 48, 56, 56) and batch["label"].tolist() == [0, 54]


def test_pyskl_val_pipeline_reads_test_mode_from_the_dataset(ntu):
    ds = PoseDataset(ntu, P_VAL, split="xsub_val", test_mode=True, box_thr=0.5, memcached=False)
    a, b = ds[0], ds[0]
    assert tuple(a["imgs"].shape) == (1, 17, 48, 64, 64) and a["label"] == 0
    assert torch.equal(a["imgs"], b["imgs"])  # seeded: pyskl's test_mode comes from the sample
    train = PoseDataset(ntu, P_VAL, split="xsub_val", test_mode=False)
    np.random.seed(1)
    assert not torch.equal(train[0]["imgs"], a["imgs"])


def test_dataset_errors(ntu, tmp_path):
    with pytest.raises(ConfigError, match="unknown arguments"):
        PoseDataset(ntu, [], bogus=1)
    with pytest.raises(AnnotationError, match="xview_val"):
        PoseDataset(ntu, [], split="xview_val")
    with pytest.raises(AnnotationError, match="out of range for 50 classes"):
        PoseDataset(ntu, [], num_classes=50)


def test_k400_index_valid_ratio_and_kpfiles(data_dir, tmp_path):
    """pyskl's box_thr/valid_ratio filter on the real index, then skeletons from a kpfile."""
    index = data_dir / "skeleton/mmaction2_k400_kpfile_index_sample.pkl"
    items = load_annotations(index, "train")
    want = [a["frame_dir"] for a in items if a["valid"][0.7] / a["total_frames"] >= 0.5]
    assert 0 < len(want) < len(items)
    ds = PoseDataset(index, [], split="train", box_thr=0.7, valid_ratio=0.5)
    assert [a["frame_dir"] for a in ds.video_infos] == want
    assert all((a["anno_inds"] == (a["box_score"] >= 0.7)).all() for a in ds.video_infos)

    # A kpfile for the first three videos, referenced through `raw_file` (pyskl layout).
    rng = np.random.default_rng(0)
    raw = load_annotation_file(index)
    packs = {a["frame_dir"]: {"keypoint": rng.uniform(1, 300, (len(a["frame_inds"]), 17, 3)).astype(np.float16)}
             for a in raw["annotations"][:3]}
    kpfile = tmp_path / "kp.pkl"
    kpfile.write_bytes(pickle.dumps(packs))
    for a in raw["annotations"][:3]:
        a["raw_file"] = str(kpfile)
    raw["annotations"] = raw["annotations"][:3]
    raw["split"] = {"train": [a["frame_dir"] for a in raw["annotations"]]}
    ann = tmp_path / "k400_index.pkl"
    ann.write_bytes(pickle.dumps(raw))
    pipe = [dict(type="DecompressPose", squeeze=True, max_person=10)] + P_VAL[:3] + \
        [dict(type="Resize", scale=(32, 32), keep_ratio=False)] + P_VAL[4:]
    ds = PoseDataset(ann, pipe, split="train", test_mode=True)
    item = ds[2]
    assert tuple(item["imgs"].shape) == (1, 17, 48, 32, 32) and item["label"] == raw["annotations"][2]["label"]
    # mmaction2 layout: one <frame_dir>.pkl per video under data_prefix['skeleton'].
    skel = tmp_path / "skel"
    skel.mkdir()
    for name, pack in packs.items():
        (skel / f"{name}.pkl").write_bytes(pickle.dumps(pack))
    for a in raw["annotations"]:
        del a["raw_file"]
    ann.write_bytes(pickle.dumps(raw))
    ds = PoseDataset(ann, pipe, split="train", test_mode=True, data_prefix=dict(skeleton=str(skel)))
    assert torch.equal(ds[2]["imgs"], item["imgs"])


def test_penn_action_through_map_joints(data_dir):
    penn = data_dir / "datasets/penn_action/penn_action_train_gt13_2d.pkl"
    pipe = [dict(type="MapJoints", mappings={13: list(S.PENN_ACTION_TO_COCO17)}, drop=[1, 2, 3, 4])] + P_VAL
    ds = PoseDataset(penn, pipe, split="train", test_mode=True)
    assert len(ds) == 1258 and ds.class_counts()[3] == 135
    item = ds[10]
    assert tuple(item["imgs"].shape) == (1, 17, 48, 64, 64)
    assert float(item["imgs"][0, 1:5].max()) == 0.0 and float(item["imgs"][0, 5:].max()) > 0.5


@pytest.mark.parametrize("kind", ["kp", "limb"])
def test_test_pipeline_volumes_match_golden_model_inputs(golden, kind):
    """The golden model inputs are the NTU60 test pipeline's volumes (1 clip, flip) of two cases."""
    with np.load(golden / "models" / "inputs_pipeline.npz") as z:
        want = z[kind]
    pipe = [dict(p) for p in M_TEST]
    pipe[0] = dict(type="UniformSampleFrames", clip_len=48, num_clips=1, test_mode=True)
    if kind == "limb":
        pipe[5] = dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=False, with_limb=True,
                       skeletons=LIMBS, double=True, left_limb=list(S.CONFIG_LEFT_LIMB),
                       right_limb=list(S.CONFIG_RIGHT_LIMB))
    from posec3d.data.pipeline import Compose

    pipeline = Compose(pipe)
    for i, case in enumerate(["p2_f100", "p2_f100_partial_edge"]):
        with np.load(golden / "transforms" / f"pose_{case}.npz") as z:
            raw = dict(keypoint=z["input/keypoint"], keypoint_score=z["input/keypoint_score"],
                       img_shape=(1080, 1920), total_frames=int(z["input/total_frames"]), label=0)
        got = pipeline(raw)["imgs"].numpy()
        assert got.shape == want[i].shape
        np.testing.assert_allclose(got, want[i], rtol=0, atol=1e-5 if kind == "limb" else 1e-6)
