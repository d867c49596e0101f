"""Transform behaviour beyond the golden cases: hand-derived values, RGB frames, other layouts."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from posec3d.data import skeletons as S
from posec3d.data.annotations import load_annotations
from posec3d.data.pipeline import Compose
from posec3d.data.transforms import DecompressPose, MapJoints
from posec3d.errors import AnnotationError, ConfigError
from posec3d.registry import TRANSFORMS


def test_resize_sizes_hand_derived():
    def run(scale, keep_ratio=True, shape=(1080, 1920)):
        r = Compose([dict(type="Resize", scale=scale, keep_ratio=keep_ratio)])(
            dict(img_shape=shape, keypoint=np.array([[[[1920.0, 1080.0], [0.0, 0.0]]]], np.float32)))
        return r["img_shape"], r["keypoint"][0, 0]
    shape, kp = run((-1, 64))
    assert shape == (64, 114)  # int(1920 * 64 / 1080 + 0.5) = 114
    np.testing.assert_allclose(kp, [[114, 64], [0, 0]], atol=1e-3)
    assert run((64, 64))[0] == (36, 64)  # keep ratio, long side 64: int(1080 * 64 / 1920 + .5) = 36
    assert run((56, 48), keep_ratio=False)[0] == (48, 56)  # (w, h)
    assert run(0.5)[0] == (540, 960)
    with pytest.raises(ConfigError):
        TRANSFORMS.build(dict(type="Resize", scale=(0, 10)))


def test_flip_moves_only_real_points_and_swaps_sides():
    kp = np.zeros((1, 1, 17, 2), np.float32)
    kp[0, 0, 5] = [10, 20]  # left shoulder
    kp[0, 0, 6] = [30, 21]  # right shoulder
    score = np.zeros((1, 1, 17), np.float32)
    score[0, 0, 5], score[0, 0, 6] = 0.9, 0.4
    r = Compose([dict(type="Flip", flip_ratio=1.0, left_kp=list(S.COCO17_LEFT_KP),
                      right_kp=list(S.COCO17_RIGHT_KP))])(dict(img_shape=(64, 56), keypoint=kp, keypoint_score=score))
    assert r["flip"] is True
    np.testing.assert_array_equal(r["keypoint"][0, 0, 5], [56 - 30, 21])  # the old right, mirrored
    np.testing.assert_array_equal(r["keypoint"][0, 0, 6], [56 - 10, 20])
    assert r["keypoint_score"][0, 0, 5] == pytest.approx(0.4)
    assert (r["keypoint"][0, 0, 0] == 0).all()  # missing stays missing
    r = Compose([dict(type="Flip", flip_ratio=0.0)])(dict(img_shape=(8, 8), keypoint=kp.copy()))
    assert r["flip"] is False and np.array_equal(r["keypoint"], kp)


def test_pose_compact_leaves_tiny_poses_alone():
    kp = np.full((1, 4, 17, 2), 100, np.float32)
    kp[..., 0] += np.arange(17) * 0.5  # 8 px wide < threshold 10
    r = Compose([dict(type="PoseCompact", hw_ratio=1.0)])(dict(img_shape=(200, 300), keypoint=kp.copy()))
    assert r["img_shape"] == (200, 300) and np.array_equal(r["keypoint"], kp)


def test_random_resized_crop_replays_the_exact_rng_calls():
    np.random.seed(3)
    random.seed(4)
    r = Compose([dict(type="RandomResizedCrop", area_range=(0.56, 1.0))])(
        dict(img_shape=(64, 80), keypoint=np.ones((1, 2, 17, 2), np.float32) * 40))
    # Independent replay of SPEC §2.5: 10 log-aspects, 10 areas, then Python random for x and y.
    np.random.seed(3)
    random.seed(4)
    aspect = np.exp(np.random.uniform(np.log(3 / 4), np.log(4 / 3), size=10))
    area = np.random.uniform(0.56, 1.0, size=10) * 64 * 80
    cw, ch = np.round(np.sqrt(area * aspect)).astype(int), np.round(np.sqrt(area / aspect)).astype(int)
    i = next(k for k in range(10) if cw[k] <= 80 and ch[k] <= 64)
    x, y = random.randint(0, 80 - cw[i]), random.randint(0, 64 - ch[i])
    assert r["crop_bbox"].tolist() == [x, y, x + cw[i], y + ch[i]]
    assert r["img_shape"] == (ch[i], cw[i])
    np.testing.assert_allclose(r["keypoint"][0, 0, 0], [40 - x, 40 - y])
    assert r["keypoint"].dtype == np.float64


def _frames_with_marker(h, w, x, y, n=3):
    frames = []
    for _ in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[y, x] = 255
        frames.append(f)
    return frames


def test_rgb_frames_move_with_keypoints():
    h, w, x, y = 60, 80, 50, 20
    kp = np.zeros((1, 3, 17, 2), np.float32)
    kp[..., 9, :] = [x, y]
    r = dict(img_shape=(h, w), keypoint=kp, keypoint_score=np.ones((1, 3, 17), np.float32),
             imgs=_frames_with_marker(h, w, x, y))
    r = Compose([dict(type="CenterCrop", crop_size=(60, 40))])(r)  # (w, h): left 10, top 10
    assert r["imgs"][0].shape == (40, 60, 3) and r["img_shape"] == (40, 60)
    cx, cy = r["keypoint"][0, 0, 9]
    assert r["imgs"][1][int(cy), int(cx)].max() == 255
    r = Compose([dict(type="Flip", flip_ratio=1.0, left_kp=list(S.COCO17_LEFT_KP),
                      right_kp=list(S.COCO17_RIGHT_KP))])(r)
    fx, fy = r["keypoint"][0, 0, 10]  # wrist moved to the right-side slot
    # Keypoints use W - x, pixels W - 1 - x (SPEC §11): the marker sits one pixel left of W - x.
    assert r["imgs"][2][int(fy), int(fx) - 1].max() == 255
    r = Compose([dict(type="Resize", scale=(120, 80), keep_ratio=False)])(r)
    assert r["imgs"][0].shape == (80, 120, 3) and r["img_shape"] == (80, 120)
    np.random.seed(0)
    random.seed(0)
    r = Compose([dict(type="RandomResizedCrop")])(r)
    box = r["crop_bbox"]
    assert r["imgs"][0].shape[:2] == (box[3] - box[1], box[2] - box[0]) == r["img_shape"]


def _decompress_reference(frame_inds, packed, squeeze, max_person):
    """Obvious loop version of SPEC §1.3."""
    frames = sorted(set(frame_inds.tolist())) if squeeze else list(range(int(frame_inds.max()) + 1))
    where = {f: i for i, f in enumerate(frames)}
    per_frame: dict = {}
    for f, row in zip(frame_inds.tolist(), packed):
        per_frame.setdefault(f, []).append(row)
    m = max(len(v) for v in per_frame.values())
    kp = np.zeros((m, len(frames), packed.shape[1], 2), np.float32)
    sc = np.zeros((m, len(frames), packed.shape[1]), np.float32)
    for f, rows in per_frame.items():
        for p, row in enumerate(rows):
            kp[p, where[f]], sc[p, where[f]] = row[:, :2], row[:, 2]
    if m > max_person:
        order = np.argsort(-sc.sum(-1), axis=0, kind="stable")[:max_person]
        kp = np.take_along_axis(kp, order[..., None, None], 0)
        sc = np.take_along_axis(sc, order[..., None], 0)
    return kp, sc


@pytest.mark.parametrize("squeeze,max_person", [(True, 10), (False, 10), (True, 2)])
def test_decompress_pose_on_the_real_k400_index(data_dir, squeeze, max_person):
    item = load_annotations(data_dir / "skeleton/mmaction2_k400_kpfile_index_sample.pkl", "train")[3]
    rng = np.random.default_rng(1)
    n = len(item["frame_inds"])
    packed = rng.uniform(0, 300, (n, 17, 3)).astype(np.float16)
    packed[..., 2] = rng.uniform(0, 1, (n, 17))
    want_kp, want_sc = _decompress_reference(item["frame_inds"], packed.astype(np.float32), squeeze, max_person)
    out = DecompressPose(squeeze=squeeze, max_person=max_person)(
        dict(frame_inds=item["frame_inds"], keypoint=packed, total_frames=item["total_frames"]))
    assert out["keypoint"].dtype == np.float16
    np.testing.assert_array_equal(out["keypoint"].astype(np.float32), want_kp)
    np.testing.assert_array_equal(out["keypoint_score"].astype(np.float32), want_sc)
    if squeeze:
        assert out["total_frames"] == len(set(item["frame_inds"].tolist()))
    else:
        assert out["total_frames"] >= item["total_frames"]


def test_decompress_pose_respects_anno_inds_and_rejects_unsorted():
    inds = np.array([0, 0, 1, 3])
    packed = np.ones((4, 17, 3), np.float16)
    out = DecompressPose()(dict(frame_inds=inds, keypoint=packed, anno_inds=np.array([True, False, True, True])))
    assert out["keypoint"].shape == (1, 3, 17, 2)
    with pytest.raises(AnnotationError, match="non-decreasing"):
        DecompressPose()(dict(frame_inds=np.array([2, 1]), keypoint=np.ones((2, 17, 3), np.float16)))


def test_map_joints_on_real_layouts(data_dir):
    for rel, idx in [("datasets/penn_action/penn_action_train_gt13_2d.pkl", S.PENN_ACTION_TO_COCO17),
                     ("datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl", S.MSR_ACTION3D_TO_COCO17),
                     ("datasets/jhmdb14_ddnet/jhmdb14_gt15_2d_pseudocanvas.pkl", S.JHMDB_TO_COCO17)]:
        (sample,) = load_annotations(data_dir / rel)[:1]
        v_in = sample["keypoint"].shape[2]
        mj = TRANSFORMS.build(dict(type="MapJoints", mappings={v_in: list(idx)}, drop=[1, 2]))
        out = mj(dict(sample))
        assert out["keypoint"].shape[2] == 17
        for j, src in enumerate(idx):
            if src < 0 or j in (1, 2):
                assert (out["keypoint"][..., j, :] == 0).all() and (out["keypoint_score"][..., j] == 0).all()
            else:
                np.testing.assert_array_equal(out["keypoint"][..., j, :], sample["keypoint"][..., src, :])
        assert (sample["keypoint"][..., 0, :] == load_annotations(data_dir / rel)[0]["keypoint"][..., 0, :]).all()
    # COCO-17 input passes through (only `drop` applies); unknown layouts are an error.
    coco = dict(frame_dir="x", keypoint=np.ones((1, 2, 17, 2), np.float32))
    out = MapJoints({13: list(S.PENN_ACTION_TO_COCO17)}, drop=list(S.COCO17_FACE))(coco)
    assert (out["keypoint"][..., :5, :] == 0).all() and (out["keypoint"][..., 5:, :] == 1).all()
    assert (out["keypoint_score"][..., 5:] == 1).all()
    with pytest.raises(AnnotationError, match="'odd'.*25 joints"):
        MapJoints({13: list(S.PENN_ACTION_TO_COCO17)})(dict(frame_dir="odd", keypoint=np.ones((1, 2, 25, 2))))
    with pytest.raises(ConfigError):
        MapJoints({13: [0, 13] + [0] * 15})


def test_kinect20_pipeline_with_its_own_flip_pairs_and_limbs(data_dir):
    """A non-COCO layout trains as is when the config gives flip pairs and limbs."""
    left, right = S.flip_pairs(S.KINECT20_NAMES)
    assert len(left) == 8 and S.KINECT20_NAMES[left[0]].startswith("left_")
    limbs = [(0, 1), (1, 2), (2, 3), (2, 4), (4, 5), (5, 6), (2, 8), (8, 9), (9, 10), (0, 12), (12, 13), (0, 16), (16, 17)]
    pipe = Compose([
        dict(type="UniformSampleFrames", clip_len=12), dict(type="PoseDecode"),
        dict(type="PoseCompact", hw_ratio=1.0), dict(type="Resize", scale=(-1, 32)),
        dict(type="RandomResizedCrop", area_range=(0.56, 1.0)), dict(type="Resize", scale=(28, 28), keep_ratio=False),
        dict(type="Flip", flip_ratio=0.5, left_kp=list(left), right_kp=list(right)),
        dict(type="GeneratePoseTarget", with_kp=False, with_limb=True, skeletons=limbs),
        dict(type="FormatShape", input_format="NCTHW_Heatmap"),
        dict(type="Collect", keys=["imgs", "label"], meta_keys=[]), dict(type="ToTensor", keys=["imgs"]),
    ])
    sample = load_annotations(data_dir / "datasets/utkinect_action3d/utkinect_kinect20_proj2d.pkl", "liegroup1_test")[0]
    out = pipe(dict(sample))
    assert tuple(out["imgs"].shape) == (1, len(limbs), 12, 28, 28) and isinstance(out["label"], int)
    assert float(out["imgs"].max()) > 0.5


def test_pyskl_p_interval_samples_inside_a_sub_window():
    u = TRANSFORMS.build(dict(type="UniformSampleFrames", clip_len=8, num_clips=1, p_interval=(0.5, 0.5)))
    np.random.seed(5)
    inds = u(dict(total_frames=100, start_index=0))["frame_inds"]
    # Replay: ratio 0.5 -> a 50-frame window at offset randint(51), then segment sampling in it.
    np.random.seed(5)
    np.random.rand()
    off = np.random.randint(51)
    assert inds.min() >= off and inds.max() < off + 50 and (np.diff(inds) > 0).all()


@pytest.mark.parametrize("seeding,total", [("pyskl", 100), ("mmaction2", 100), ("pyskl", 30), ("mmaction2", 7)])
def test_seeded_test_sampling_leaves_the_global_rng_alone(seeding, total):
    """Test-mode draws equal the codebases' reseed-the-global-RNG replay, and the caller's global
    stream goes on where it was (100 frames: one draw per segment; 30: the skip path; 7: short)."""
    u = TRANSFORMS.build(dict(type="UniformSampleFrames", clip_len=16, num_clips=3, seed=7, seeding=seeding,
                              test_mode=True if seeding == "mmaction2" else None))
    np.random.seed(123)
    expected_next = np.random.RandomState(123).rand(4)
    inds = u(dict(total_frames=total, start_index=0, test_mode=True))["frame_inds"]
    assert np.array_equal(np.random.rand(4), expected_next)
    # The legacy behaviour, replayed by hand: reseed the global RNG, then the same calls.
    np.random.seed(7)
    replay = []
    for i in range(3):
        if seeding == "pyskl":
            sub = int(np.random.rand() * 0 + 1 * total)
            off = np.random.randint(total - sub + 1)
        else:
            sub, off = total, 0
        if sub < 16:
            start = i if sub < 3 else i * sub // 3
            clip = np.arange(start, start + 16)
        elif sub < 32:
            skips = np.zeros(17, dtype=np.int64)
            skips[np.random.choice(17, sub - 16, replace=False)] = 1
            clip = np.arange(16) + np.cumsum(skips)[:-1]
        else:
            bounds = np.arange(17, dtype=np.int64) * sub // 16
            clip = bounds[:-1] + np.random.randint(np.diff(bounds))
        replay.append(clip + off)
    assert np.array_equal(inds, np.mod(np.concatenate(replay), total))


def test_format_shape_rgb_and_heatmap_imgs_and_packing():
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(2 * 3)]  # 2 clips x 3 frames
    heat = np.arange(2 * 12 * 17 * 2 * 2, dtype=np.float32).reshape(2 * 12, 17, 2, 2)  # 2 clips x 12
    r = dict(imgs=frames, heatmap_imgs=heat, num_clips=2, clip_len=dict(RGB=3, Pose=12), label=7)
    r = Compose([dict(type="FormatShape", input_format="NCTHW")])(r)
    assert r["imgs"].shape == (2, 3, 3, 4, 6) and r["imgs"][1, 0, 2, 0, 0] == 5  # clip 1, frame 2
    assert r["heatmap_imgs"].shape == (2, 17, 12, 2, 2)
    np.testing.assert_array_equal(r["heatmap_imgs"][1, :, 0], heat[12])
    packed = Compose([dict(type="PackActionInputs", collect_keys=("imgs", "heatmap_imgs"))])(r)
    assert set(packed) == {"imgs", "heatmap_imgs", "label"} and packed["label"] == 7
    assert packed["imgs"].dtype == packed["heatmap_imgs"].dtype == torch.float32


def test_generate_pose_target_config_errors():
    with pytest.raises(ConfigError, match="with_kp and/or with_limb"):
        TRANSFORMS.build(dict(type="GeneratePoseTarget", with_kp=False, with_limb=False))
    with pytest.raises(ConfigError, match="unknown transform type 'NoSuchStep'"):
        Compose([dict(type="NoSuchStep")])


def test_coco_flip_pairs_on_another_layout_is_a_clear_error():
    sample = dict(img_shape=(32, 32), keypoint=np.full((1, 2, 13, 2), 5, np.float32),
                  keypoint_score=np.ones((1, 2, 13), np.float32))
    with pytest.raises(ConfigError, match="13 joints"):
        Compose([dict(type="Flip", flip_ratio=1.0, left_kp=list(S.COCO17_LEFT_KP),
                      right_kp=list(S.COCO17_RIGHT_KP))])(dict(sample))
    with pytest.raises(ConfigError, match="only 13 joints"):
        Compose([dict(type="GeneratePoseTarget", double=True)])(dict(sample))
    with pytest.raises(ConfigError, match="13 joints"):
        Compose([dict(type="GeneratePoseTarget", with_kp=False, with_limb=True)])(dict(sample))
    penn_left, penn_right = S.flip_pairs(S.PENN_ACTION_NAMES)
    out = Compose([dict(type="GeneratePoseTarget", double=True, left_kp=list(penn_left),
                        right_kp=list(penn_right))])(dict(sample))
    assert out["imgs"].shape == (4, 13, 32, 32)
