"""The config zoo: every file loads, builds its model and pipelines, and matches SPEC §3 / §5.

Expected numbers below are typed in from the SPEC tables (not read from the configs), and the
val pipelines run on a real MediaPipe NTU sample (and on the shared small datasets).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from posec3d.data.annotations import load_annotations
from posec3d.data.pipeline import Compose
from posec3d.engine.config import (
    batch_size,
    class_prob,
    dataset_cfg,
    grad_clip_cfg,
    is_mmaction2_layout,
    load_config,
    lr_schedule_cfg,
    model_cfg,
    optimizer_cfg,
    pipeline_cfg,
    total_epochs,
    unwrap_dataset,
)
from posec3d.models import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# Helper scripts that live next to configs (e.g. penn_action/make_splits.py) are not configs.
ALL = sorted(p for p in CONFIGS.rglob("*.py") if "__main__" not in p.read_text(encoding="utf-8"))

# config: (classes, train split, test split, videos per GPU, lr, weight decay, epochs, repeat times)
SPEC_TABLE = {
    **{f"ntu60_{s}/{net}_{k}.py": (60, f"{s}_train", f"{s}_val", 32, 0.4, 3e-4, 24, 10)
       for s, nets in (("xsub", ("slowonly_r50", "c3d_light", "x3d_shallow")), ("xview", ("slowonly_r50",)))
       for net in nets for k in ("joint", "limb")},
    **{f"ntu120_{s}/slowonly_r50_{k}.py": (120, f"{s}_train", f"{s}_val", 32, 0.4, 3e-4, 24, 10)
       for s in ("xsub", "xset") for k in ("joint", "limb")},
    **{f"gym/{net}_{k}.py": (99, "train", "val", 32, 0.4, 3e-4, 24, 10)
       for net in ("slowonly_r50", "c3d_light", "x3d_shallow") for k in ("joint", "limb")},
    **{f"k400/slowonly_r50_{c}_{k}.py": (400, "train", "val", 32, 0.4, 1e-4, 24, 10)
       for c in ("346", "463") for k in ("joint", "limb")},
    "ucf101/slowonly_r50_k400p_s1_joint.py": (101, "train1", "test1", 16, 0.01, 3e-4, 12, 10),
    "hmdb51/slowonly_r50_k400p_s1_joint.py": (51, "train1", "test1", 16, 0.01, 1e-4, 12, 10),
    "diving48/slowonly_r50_joint.py": (48, "train", "test", 32, 0.4, 1e-4, 24, 10),
    "rgbpose_conv3d/rgbpose_conv3d.py": (60, "xsub_train", "xsub_val", 6, 0.0075, 1e-4, 20, 1),
    "rgbpose_conv3d/rgb_only.py": (60, "xsub_train", "xsub_val", 12, 0.15, 1e-4, 18, 10),
    "rgbpose_conv3d/pose_only.py": (60, "xsub_train", "xsub_val", 16, 0.2, 3e-4, 18, 10),
    "compat/slowonly_r50_ntu60_xsub_joint_pyskl.py": (60, "xsub_train", "xsub_val", 32, 0.4, 3e-4, 24, 10),
    "compat/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py": (60, "xsub_train", "xsub_val", 16, 0.2, 3e-4, 24, 10),
    # mmaction2 1.x layout, the configs of the released mmaction2 checkpoints (SPEC §3.2, "M" rows)
    "ntu60_xsub/slowonly_r50_8xb16-u48-240e_ntu60-xsub-limb.py": (60, "xsub_train", "xsub_val", 16, 0.2, 3e-4, 24, 10),
    **{f"gym/slowonly_r50_8xb16-u48-240e_gym-{k}.py": (99, "train", "val", 16, 0.2, 3e-4, 24, 10)
       for k in ("keypoint", "limb")},
    "k400/slowonly_r50_8xb32-u48-240e_k400-keypoint.py": (400, "train", "val", 32, 0.4, 1e-4, 24, 10),
    **{f"{d}/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_{d}-split1-keypoint.py":
       (n, "train1", "test1", 16, 0.01, 3e-4, 12, 10) for d, n in (("ucf101", 101), ("hmdb51", 51))},
    "msr_action3d/x3d_shallow_xsub.py": (20, "xsub_train", "xsub_test", 16, 0.05, 3e-4, 12, 10),
    "utkinect/x3d_shallow_liegroup1.py": (10, "liegroup1_train", "liegroup1_test", 16, 0.05, 3e-4, 12, 10),
    "jhmdb/x3d_shallow_split1.py": (14, "split1_train", "split1_test", 16, 0.05, 3e-4, 12, 10),
    "taekwondo/slowonly_r50_k400p_joint.py": (64, "train", "val", 32, 0.02, 3e-4, 12, 10),
}

# Parameter counts from SPEC §4.7 / the golden models (total with the head).
PARAMS = {
    "ntu60_xsub/slowonly_r50_joint.py": 2_024_860,
    "ntu60_xsub/c3d_light_joint.py": 3_404_892,
    "ntu60_xsub/x3d_shallow_joint.py": 254_508,
    "ucf101/slowonly_r50_k400p_s1_joint.py": 3_055_173,
    "hmdb51/slowonly_r50_k400p_s1_joint.py": 3_029_523,
    "k400/slowonly_r50_346_joint.py": 3_208_560,
    "rgbpose_conv3d/rgbpose_conv3d.py": 36_147_928,
    "rgbpose_conv3d/rgb_only.py": 31_634_496 + 2048 * 60 + 60,
    "compat/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py": 2_024_860,
    "ucf101/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_ucf101-split1-keypoint.py": 3_055_173,
    "hmdb51/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_hmdb51-split1-keypoint.py": 3_029_523,
    "k400/slowonly_r50_8xb32-u48-240e_k400-keypoint.py": 3_208_560,
}

# Val-pipeline output (views, C, T, H, W) on one sample.
NTU_VAL = (1, 17, 48, 64, 64)
# The Kinect-20 configs keep their native joints, so they run on their own data only (below).
NATIVE_KINECT20 = {"msr_action3d/x3d_shallow_xsub.py", "utkinect/x3d_shallow_liegroup1.py"}
VAL_SHAPES = {name: NTU_VAL for name in SPEC_TABLE if not name.startswith("rgbpose")}
VAL_SHAPES.update({
    "ucf101/slowonly_r50_k400p_s1_joint.py": (1, 17, 48, 56, 56),
    "hmdb51/slowonly_r50_k400p_s1_joint.py": (1, 17, 48, 56, 56),
    "ucf101/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_ucf101-split1-keypoint.py": (1, 17, 48, 56, 56),
    "hmdb51/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_hmdb51-split1-keypoint.py": (1, 17, 48, 56, 56),
    "rgbpose_conv3d/pose_only.py": (1, 17, 32, 64, 64),
    "msr_action3d/x3d_shallow_xsub.py": (1, 20, 32, 56, 56),
    "utkinect/x3d_shallow_liegroup1.py": (1, 20, 32, 56, 56),
    "jhmdb/x3d_shallow_split1.py": (1, 17, 32, 56, 56),
    "custom/template.py": NTU_VAL,
    # owned by the demo engineer, whose recipe may change: only the layout is checked
    "penn_action/x3d_shallow_penn_action.py": None,
    "penn_action/x3d_shallow_penn_action_finetune.py": None,
})
# config: (pickle under shared/data/datasets, joints, train + test samples from the data README)
SMALL_DATA = {
    "msr_action3d/x3d_shallow_xsub.py": ("msr_action3d/msr_action3d_kinect20_proj2d.pkl", 20, (284, 273)),
    "utkinect/x3d_shallow_liegroup1.py": ("utkinect_action3d/utkinect_kinect20_proj2d.pkl", 20, 199),
    "jhmdb/x3d_shallow_split1.py": ("jhmdb14_ddnet/jhmdb14_gt15_2d_pseudocanvas.pkl", 15, (433, 176)),
}


def rel(p: Path) -> str:
    return p.relative_to(CONFIGS).as_posix()


@pytest.fixture(scope="module")
def ntu_samples(data_dir):
    return load_annotations(data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl")


def as_dataset_item(sample: dict, test_mode: bool) -> dict:
    # What PoseDataset adds to every sample before the pipeline (SPEC §2).
    return dict(sample, test_mode=test_mode, modality="Pose", start_index=0)


def to_kpfile(sample: dict) -> dict:
    """The K400 "kpfile" layout of a dense sample: one (17, 3) row per detected person-frame."""
    kp, sc = sample["keypoint"], sample["keypoint_score"]
    rows, inds = [], []
    for t in range(kp.shape[1]):
        for m in range(kp.shape[0]):
            if sc[m, t].max() > 0:
                rows.append(np.concatenate([kp[m, t], sc[m, t, :, None]], axis=1))
                inds.append(t)
    out = {k: v for k, v in sample.items() if k not in ("keypoint", "keypoint_score")}
    return dict(out, keypoint=np.stack(rows).astype(np.float16), frame_inds=np.array(inds, np.int64),
                box_score=np.ones(len(inds), np.float32))


def test_every_config_is_covered():
    names = {rel(p) for p in ALL}
    extra = {"custom/template.py", "penn_action/x3d_shallow_penn_action.py",
             "penn_action/x3d_shallow_penn_action_finetune.py", "penn_action/x3d_shallow_penn_action_outliers.py",
             "penn_action/x3d_shallow_penn_action_t32_s48.py", "penn_action/x3d_shallow_penn_action_t32_s48_ft.py",
             "penn_action/x3d_shallow_penn_action_joints_and_limbs.py",
             "penn_action/x3d_shallow_penn_action_joints_and_limbs_finetune.py",
             "penn_action/x3d_shallow_penn_action_limbs_only.py",
             "penn_action/x3d_shallow_penn_action_windows.py", "penn_action/x3d_shallow_penn_action_windows_finetune.py",
             "penn_action/x3d_shallow_penn_action_windows_outliers.py",
             "penn_action/x3d_shallow_penn_action_joints_and_limbs_windows.py",
             "penn_action/x3d_shallow_penn_action_joints_and_limbs_windows_finetune.py",
             "msr_action3d/layout_study/coco17_mapped.py", "msr_action3d/layout_study/native_kinect20.py"}
    assert set(SPEC_TABLE) | extra == names


@pytest.mark.parametrize("path", ALL, ids=rel)
def test_loads_builds_model_and_pipelines(path):
    name = rel(path)
    cfg = load_config(path)
    model = build_model(model_cfg(cfg))
    if name in PARAMS:
        assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    for split in ("train", "val", "test"):
        assert len(Compose(pipeline_cfg(cfg, split)).transforms) >= 5


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_hyper_parameters_match_spec(name):
    classes, train_split, test_split, bs, lr, wd, epochs, times = SPEC_TABLE[name]
    cfg = load_config(CONFIGS / name)
    head = model_cfg(cfg)["cls_head"]
    assert head["num_classes"] == classes
    inner, repeat = unwrap_dataset(dataset_cfg(cfg, "train"))
    assert (inner["split"], repeat) == (train_split, times)
    assert unwrap_dataset(dataset_cfg(cfg, "val"))[0]["split"] == test_split
    assert unwrap_dataset(dataset_cfg(cfg, "test"))[0]["split"] == test_split
    assert batch_size(cfg, "train") == bs and batch_size(cfg, "test") == 1
    opt = optimizer_cfg(cfg)
    assert (opt["type"], opt["lr"], opt["momentum"], opt["weight_decay"]) == ("SGD", lr, 0.9, wd)
    assert not opt.get("nesterov", False)
    assert dict(grad_clip_cfg(cfg)) == {"max_norm": 40.0, "norm_type": 2.0}
    assert total_epochs(cfg) == epochs
    (phase,) = lr_schedule_cfg(cfg)
    if name.startswith(("ucf101", "hmdb51", "taekwondo")):
        assert (phase["type"], phase["milestones"], phase["gamma"]) == ("step", [9, 11], 0.1)
    elif name.startswith("rgbpose_conv3d/rgbpose"):
        assert (phase["type"], phase["milestones"]) == ("step", [12, 16])
    else:
        assert phase["type"] == "cosine" and phase["eta_min"] == 0
    expected_prob = [1] * 60 + [2] * 60 if name.startswith("ntu120_xsub") else None
    assert class_prob(cfg) == expected_prob


MMACTION2_LAYOUT = sorted(n for n in SPEC_TABLE if "_8xb" in n)  # mmaction2's file names


@pytest.mark.parametrize("name", sorted(n for n in SPEC_TABLE if n not in MMACTION2_LAYOUT))
def test_pyskl_layout_keys(name):
    cfg = load_config(CONFIGS / name)
    assert not is_mmaction2_layout(cfg)
    for key in ("model", "dataset_type", "ann_file", "train_pipeline", "val_pipeline", "test_pipeline",
                "data", "optimizer", "optimizer_config", "lr_config", "total_epochs", "checkpoint_config",
                "evaluation", "log_config", "load_from", "work_dir"):
        assert key in cfg, key
    assert {"videos_per_gpu", "workers_per_gpu", "test_dataloader", "train", "val", "test"} <= set(cfg.data)
    assert cfg.model.test_cfg == {"average_clips": "prob"}
    if name.startswith(("ucf101", "hmdb51")):
        assert cfg.load_from.endswith("k400_posec3d-041f49c6.pth")


def test_mmaction2_compat_layout():
    cfg = load_config(CONFIGS / "compat/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py")
    assert is_mmaction2_layout(cfg)
    assert cfg.train_cfg.max_epochs == 24 and cfg.model.data_preprocessor.type == "ActionDataPreprocessor"
    assert cfg.param_scheduler[0].type == "CosineAnnealingLR" and cfg.param_scheduler[0].T_max == 24
    assert cfg.default_hooks.checkpoint.interval == 1  # from the bundled default_runtime stand-in
    for split in ("train", "val", "test"):
        assert pipeline_cfg(cfg, split)[-1]["type"] == "PackActionInputs"


@pytest.mark.parametrize("name", MMACTION2_LAYOUT)
def test_mmaction2_layout_keys(name):
    cfg = load_config(CONFIGS / name)
    assert is_mmaction2_layout(cfg) and cfg.model.cls_head.average_clips == "prob"
    for split in ("train", "val", "test"):
        pipeline = pipeline_cfg(cfg, split)
        assert pipeline[-1]["type"] == "PackActionInputs"
        sampler = [t for t in pipeline if t["type"] == "UniformSampleFrames"][0]
        assert sampler.get("test_mode", False) == (split != "train")  # mmaction2's sampling stream
    if "kinetics400-pretrained" in name:
        assert cfg.load_from.endswith("/v1.0/skeleton/posec3d/k400_posec3d-041f49c6.pth")


def test_limb_configs_use_the_config_limb_list():
    limb_list = [[0, 5], [0, 6], [5, 7], [7, 9], [6, 8], [8, 10], [5, 11], [11, 13], [13, 15],
                 [6, 12], [12, 14], [14, 16], [0, 1], [0, 2], [1, 3], [2, 4], [11, 12]]
    for path in ALL:
        if not path.stem.endswith(("_limb", "-limb")):
            continue
        cfg = load_config(path)
        for split in ("train", "val", "test"):
            (target,) = [t for t in pipeline_cfg(cfg, split) if t["type"] == "GeneratePoseTarget"]
            assert target["with_limb"] and not target["with_kp"]
            assert [list(p) for p in target["skeletons"]] == limb_list, rel(path)
            if split == "test":
                assert target["double"] and target["left_limb"] == [0, 2, 3, 6, 7, 8, 12, 14]


@pytest.mark.parametrize("name", sorted(set(VAL_SHAPES) - NATIVE_KINECT20))
def test_val_pipeline_on_real_sample(name, ntu_samples):
    cfg = load_config(CONFIGS / name)
    pipeline = Compose(pipeline_cfg(cfg, "val"))
    sample = ntu_samples[1]  # two persons, 72 frames, label 54
    if name.startswith("k400/"):
        sample = to_kpfile(sample)
    out = pipeline(as_dataset_item(sample, test_mode=True))
    imgs = out["imgs"] if "imgs" in out else out["inputs"]
    if VAL_SHAPES[name] is None:
        assert imgs.ndim == 5 and tuple(imgs.shape[:2]) == (1, 17) and imgs.shape[3] == imgs.shape[4]
    else:
        assert tuple(imgs.shape) == VAL_SHAPES[name]
    assert torch.is_tensor(imgs) and imgs.dtype == torch.float32
    assert 0.5 < float(imgs.max()) <= 1.0  # heatmap peaks of confident joints


@pytest.mark.parametrize("name", sorted(SMALL_DATA))
def test_small_dataset_configs_on_their_own_data(name, data_dir, monkeypatch):
    from posec3d.data.dataset import build_dataset

    file, joints, counts = SMALL_DATA[name]
    cfg = load_config(CONFIGS / name)
    # ann_file is relative to the repository root and points into ../shared
    assert (CONFIGS.parent / cfg.ann_file).resolve() == (data_dir / "datasets" / file).resolve()
    samples = load_annotations(data_dir / "datasets" / file, split=unwrap_dataset(dataset_cfg(cfg, "val"))[0]["split"])
    sample = samples[0]
    assert sample["keypoint"].shape[2] == joints
    out = Compose(pipeline_cfg(cfg, "val"))(as_dataset_item(sample, test_mode=True))
    assert tuple(out["imgs"].shape) == VAL_SHAPES[name]
    if name in NATIVE_KINECT20:
        # one heatmap per Kinect joint; flip pairs swap each left joint with its right partner
        left = [[0, 4, 7, 9, 11, 13, 15, 17], [4, 5, 6, 7, 12, 13, 14, 15]][name.startswith("utkinect")]
        right = [[1, 5, 8, 10, 12, 14, 16, 18], [8, 9, 10, 11, 16, 17, 18, 19]][name.startswith("utkinect")]
        assert (cfg.left_kp, cfg.right_kp) == (left, right)
        assert cfg.model.backbone.in_channels == 20
        assert not any(t["type"] == "MapJoints" for t in pipeline_cfg(cfg, "train"))
    else:
        # mapped to COCO-17, eyes and ears dropped: their channels are empty, shoulders are not
        assert float(out["imgs"][0, 1:5].max()) == 0.0 and float(out["imgs"][0, 5:7].max()) > 0.5
    model = build_model(model_cfg(cfg)).eval()
    with torch.no_grad():
        scores = model.forward_test(out["imgs"][None])
    assert tuple(scores.shape) == (1, cfg.model.cls_head.num_classes)
    np.testing.assert_allclose(float(scores.sum()), 1.0, rtol=1e-5)  # averaged probabilities
    # the datasets build from the repository root as the config is written
    monkeypatch.chdir(CONFIGS.parent)
    train, test = build_dataset(dataset_cfg(cfg, "train")), build_dataset(dataset_cfg(cfg, "test"))
    assert len(train) % 10 == 0
    sizes = (len(train) // 10, len(test))
    assert sizes == counts if isinstance(counts, tuple) else sum(sizes) == counts


def test_train_pipeline_shapes_on_real_sample(ntu_samples):
    for name, size in (("ntu60_xsub/slowonly_r50_joint.py", 56), ("ucf101/slowonly_r50_k400p_s1_joint.py", 48),
                       ("jhmdb/x3d_shallow_split1.py", 48)):
        cfg = load_config(CONFIGS / name)
        out = Compose(pipeline_cfg(cfg, "train"))(as_dataset_item(ntu_samples[0], test_mode=False))
        clip = 32 if name.startswith("jhmdb") else 48
        assert tuple(out["imgs"].shape) == (1, 17, clip, size, size), name
        assert int(out["label"]) == 0


@pytest.mark.parametrize("name, shapes", [
    ("rgbpose_conv3d/rgbpose_conv3d.py", {"imgs": (1, 3, 8, 256, 256), "heatmap_imgs": (1, 17, 32, 64, 64)}),
    ("rgbpose_conv3d/rgb_only.py", {"imgs": (1, 3, 8, 224, 224)}),
])
def test_rgb_val_pipelines_on_the_real_ntu_video(name, shapes, ntu_samples, data_dir):
    # S001C001P001R001A001: keypoints extracted from this very 1920x1080 video
    sample = dict(ntu_samples[0], filename=str(data_dir / "videos/ntu/S001C001P001R001A001_rgb.avi"))
    out = Compose(pipeline_cfg(load_config(CONFIGS / name), "val"))(as_dataset_item(sample, test_mode=True))
    for key, shape in shapes.items():
        assert tuple(out[key].shape) == shape and out[key].dtype == torch.float32, key
    assert float(out["imgs"].abs().max()) < 3.0  # normalised with the ImageNet mean / std, not 0..255
    if "heatmap_imgs" in shapes:
        assert float(out["heatmap_imgs"].max()) > 0.5


@pytest.mark.parametrize("name, channels", [("penn_action/x3d_shallow_penn_action_joints_and_limbs.py", 17 + 14),
                                            ("penn_action/x3d_shallow_penn_action_limbs_only.py", 14)])
def test_penn_limb_configs_feed_their_network(name, channels, ntu_samples):
    """The round-4 Penn configs on a real MediaPipe sample: 17 joint and/or 14 limb maps, which the
    network's stem accepts; the flip view (test) has the same layout, mirrored."""
    cfg = load_config(CONFIGS / name)
    model = build_model(model_cfg(cfg)).eval()
    sample = as_dataset_item(ntu_samples[1], test_mode=True)
    val = Compose(pipeline_cfg(cfg, "val"))(dict(sample))["imgs"]
    assert tuple(val.shape) == (1, channels, 16, 28, 28)
    assert float(val[:, channels - 14:].amax()) > 0.5  # the limbs are drawn (the last 14 channels)
    test = Compose(pipeline_cfg(cfg, "test"))(dict(sample))["imgs"]
    assert tuple(test.shape) == (20, channels, 16, 28, 28)  # 10 clips x flip
    with torch.inference_mode():
        assert tuple(model.forward_test(val[None]).shape) == (1, 15)
