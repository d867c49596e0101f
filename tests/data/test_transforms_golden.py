"""Every transform against the real mmaction2 outputs in shared/golden/transforms (README §2)."""
from __future__ import annotations

import numpy as np
import pytest

from posec3d.data import skeletons as S
from posec3d.data.pipeline import Compose
from posec3d.data.transforms import UniformSampleFrames

CASES = ["p2_f100", "p1_f60", "p2_f30_short", "p2_f100_partial_edge"]
STEPS = [
    ("1_UniformSampleFrames", None),  # filled per num_clips
    ("2_PoseDecode", dict(type="PoseDecode")),
    ("3_PoseCompact", dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True)),
    ("4_Resize", dict(type="Resize", scale=(-1, 64))),
    ("5_CenterCrop", dict(type="CenterCrop", crop_size=64)),
]
EXACT = {"frame_inds", "img_shape", "crop_bbox"}
LIMB_CFG = dict(with_kp=False, with_limb=True, skeletons=[list(p) for p in S.CONFIG_LIMBS])
GPT_VARIANTS = {
    "kp": (dict(), 1e-6),
    "kp_double": (dict(double=True, left_kp=list(S.COCO17_LEFT_KP), right_kp=list(S.COCO17_RIGHT_KP)), 1e-6),
    "limb": (LIMB_CFG, 1e-5),
    "limb_double": (dict(LIMB_CFG, double=True, left_limb=list(S.CONFIG_LEFT_LIMB),
                         right_limb=list(S.CONFIG_RIGHT_LIMB)), 1e-5),
    "limb_double_classdefaults": (dict(with_kp=False, with_limb=True, double=True), 1e-5),
    "kp_noscore": (dict(use_score=False), 1e-6),
}


@pytest.fixture(scope="module", params=CASES)
def case(request, golden):
    with np.load(golden / "transforms" / f"pose_{request.param}.npz") as z:
        return request.param, {k: z[k] for k in z.files}


def _input(z: dict) -> dict:
    return dict(keypoint=z["input/keypoint"].copy(), keypoint_score=z["input/keypoint_score"].copy(),
                img_shape=tuple(int(v) for v in z["input/img_shape"]),
                total_frames=int(z["input/total_frames"]), start_index=0)


def _check(z: dict, prefix: str, results: dict) -> int:
    checked = 0
    for name in z:
        if not name.startswith(prefix + "/"):
            continue
        key = name[len(prefix) + 1:]
        want, got = z[name], np.asarray(results[key])
        assert got.shape == want.shape, name
        if key in EXACT:
            assert np.array_equal(got, want), f"{name}: {got} != {want}"
        else:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-4, err_msg=name)
        if key == "keypoint":  # dtype follows mmaction2 (float64 after a crop)
            assert got.dtype == want.dtype, name
        checked += 1
    return checked


@pytest.mark.parametrize("num_clips", [1, 10])
def test_pipeline_steps_match_golden(case, num_clips):
    name, z = case
    results = _input(z)
    sampler = dict(type="UniformSampleFrames", clip_len=48, num_clips=num_clips, test_mode=True)
    checked = 0
    for step, cfg in STEPS:
        results = Compose([cfg or sampler])(results)
        checked += _check(z, f"nc{num_clips}/{step}", results)
    assert checked >= 12


def _after_crop(z: dict) -> dict:
    pipe = [dict(type="UniformSampleFrames", clip_len=48, num_clips=1, test_mode=True)] + \
        [cfg for _, cfg in STEPS[1:]]
    return Compose(pipe)(_input(z))


@pytest.mark.parametrize("variant", list(GPT_VARIANTS))
def test_generate_pose_target_matches_golden(case, variant):
    name, z = case
    key = f"nc1/6_GeneratePoseTarget_{variant}/imgs"
    if key not in z:
        assert variant in ("limb_double_classdefaults", "kp_noscore") and name != "p2_f100"
        return
    kw, atol = GPT_VARIANTS[variant]
    out = Compose([dict(type="GeneratePoseTarget", sigma=0.6, **kw)])(_after_crop(z))["imgs"]
    assert out.dtype == np.float32 and out.shape == z[key].shape
    np.testing.assert_allclose(out, z[key], rtol=0, atol=atol)


def test_format_shape_after_double(case):
    _, z = case
    kw = GPT_VARIANTS["kp_double"][0]
    pipe = Compose([dict(type="GeneratePoseTarget", **kw), dict(type="FormatShape", input_format="NCTHW_Heatmap")])
    out = pipe(_after_crop(z))["imgs"]
    assert list(out.shape) == z["nc1/7_FormatShape_kp_double/shape"].tolist()
    # Fused layout == plain GeneratePoseTarget output reshaped: views 0 original, 1 flipped.
    frames = z["nc1/6_GeneratePoseTarget_kp_double/imgs"]
    np.testing.assert_allclose(out[1], frames[48:].transpose(1, 0, 2, 3), atol=1e-6)
    np.testing.assert_allclose(out[0], frames[:48].transpose(1, 0, 2, 3), atol=1e-6)


def test_train56_branch(golden):
    with np.load(golden / "transforms" / "pose_p2_f100.npz") as f:
        z = {k: f[k] for k in f.files}
    r = Compose([dict(type="UniformSampleFrames", clip_len=48, num_clips=1, test_mode=True),
                 dict(type="PoseDecode"), dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
                 dict(type="Resize", scale=(-1, 64))])(_input(z))
    r = Compose([dict(type="Resize", scale=(56, 56), keep_ratio=False)])(r)
    assert _check(z, "train56/a_Resize56", r) == 3  # scale_factor accumulates over both resizes
    r = Compose([dict(type="Flip", flip_ratio=1.0, left_kp=list(S.COCO17_LEFT_KP),
                      right_kp=list(S.COCO17_RIGHT_KP))])(r)
    assert _check(z, "train56/b_Flip", r) == 3
    out = Compose([dict(type="GeneratePoseTarget", sigma=0.6)])(r)["imgs"]
    np.testing.assert_allclose(out, z["train56/c_GeneratePoseTarget_kp/imgs"], atol=1e-6)


def test_rgbpose256_and_nocompact_branches(golden):
    with np.load(golden / "transforms" / "pose_p2_f100.npz") as f:
        z = {k: f[k] for k in f.files}
    head = [dict(type="UniformSampleFrames", clip_len=48, num_clips=1, test_mode=True), dict(type="PoseDecode")]
    r = Compose(head + [dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
                        dict(type="Resize", scale=(256, 256), keep_ratio=False)])(_input(z))
    assert _check(z, "rgbpose256/a_Resize256", r) == 3
    out = Compose([dict(type="GeneratePoseTarget", sigma=0.7, scaling=0.25)])(r)["imgs"]
    np.testing.assert_allclose(out, z["rgbpose256/b_GeneratePoseTarget_kp_scaling0.25/imgs"], atol=1e-6)

    r = Compose(head + [dict(type="Resize", scale=(-1, 64))])(_input(z))
    assert _check(z, "nocompact/a_Resize", r) == 3
    r = Compose([dict(type="CenterCrop", crop_size=64)])(r)
    assert r["crop_bbox"].tolist() == [25, 0, 89, 64]
    assert _check(z, "nocompact/b_CenterCrop", r) == 4
    out = Compose([dict(type="GeneratePoseTarget", sigma=0.6)])(r)["imgs"]
    np.testing.assert_allclose(out, z["nocompact/c_GeneratePoseTarget_kp/imgs"], atol=1e-6)


def test_format_shape_toy(golden):
    with np.load(golden / "transforms" / "formatshape_ncthw_heatmap_toy.npz") as z:
        imgs_in, imgs_out = z["imgs_in"], z["imgs_out"]
    r = Compose([dict(type="FormatShape", input_format="NCTHW_Heatmap")])(
        dict(imgs=imgs_in, num_clips=2, clip_len=3))
    np.testing.assert_array_equal(r["imgs"], imgs_out)


# SPEC §2.1 test vectors (seed 0, clip_len 8), for both RNG streams.
M_VECTORS = {
    (64, 1): [4, 15, 21, 24, 35, 43, 51, 63],
    (15, 1): [0, 2, 4, 6, 8, 9, 11, 13],
    (7, 1): [0, 1, 2, 3, 4, 5, 6, 0],
    (64, 4): [4, 15, 21, 24, 35, 43, 51, 63, 1, 11, 21, 26, 36, 47, 54, 56,
              0, 12, 18, 25, 38, 47, 55, 62, 0, 9, 21, 25, 37, 40, 49, 60],
}
P_VECTORS = {
    (64, 1): [5, 8, 19, 27, 35, 47, 49, 59],
    (64, 4): [5, 8, 19, 27, 35, 47, 49, 59, 4, 15, 22, 24, 32, 44, 50, 57,
              7, 14, 16, 25, 37, 41, 53, 56, 3, 8, 19, 29, 38, 47, 55, 56],
}


@pytest.mark.parametrize("key", list(M_VECTORS))
def test_uniform_sample_frames_mmaction2_vectors(key):
    t, n = key
    u = UniformSampleFrames(clip_len=8, num_clips=n, seed=0, test_mode=True)
    out = u(dict(total_frames=t, start_index=0))
    assert out["frame_inds"].tolist() == M_VECTORS[key]


@pytest.mark.parametrize("key", list(P_VECTORS))
def test_uniform_sample_frames_pyskl_vectors(key):
    t, n = key
    u = UniformSampleFrames(clip_len=8, num_clips=n, seed=0)  # pyskl: test mode from the sample
    out = u(dict(total_frames=t, start_index=0, test_mode=True))
    assert out["frame_inds"].tolist() == P_VECTORS[key]


def test_uniform_sample_frames_short_clip_starts():
    u = UniformSampleFrames(clip_len=8, num_clips=10, seed=0, test_mode=True)
    inds = u(dict(total_frames=5, start_index=0))["frame_inds"].reshape(10, 8)
    assert [row[0] for row in inds] == [i % 5 for i in range(10)]
    assert all(((row - row[0]) % 5 == np.arange(8) % 5).all() for row in inds)
    u = UniformSampleFrames(clip_len=8, num_clips=3, seed=0, test_mode=True)
    inds = u(dict(total_frames=7, start_index=0))["frame_inds"].reshape(3, 8)
    assert inds[:, 0].tolist() == [0, 2, 4]


def test_uniform_sample_frames_train_mode_is_random_but_in_range():
    u = UniformSampleFrames(clip_len=48)
    np.random.seed(1)
    a = u(dict(total_frames=100, start_index=0))["frame_inds"].copy()
    b = u(dict(total_frames=100, start_index=0))["frame_inds"]
    assert not np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < 100 and (np.diff(a) > 0).all()
