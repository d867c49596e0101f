"""Fast heatmaps (numpy per sample, torch batched) against a plain per-pixel reference.

The reference evaluates the SPEC §2.8 formula at every pixel of the canvas in float64, with the
window test written out literally; the fast paths must agree on randomised inputs (1-4 persons,
short and long clips, points outside the frame, zero and tiny scores, degenerate limbs).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posec3d.data import skeletons as S
from posec3d.data.heatmap import flip_heatmaps, joint_heatmaps, limb_heatmaps
from posec3d.data.heatmap_torch import BatchHeatmaps, batch_heatmaps, split_pipeline
from posec3d.data.pipeline import Compose
from posec3d.errors import ConfigError

SIGMA, EPS = 0.6, 1e-4


def _window(lo: float, hi: float, size: int) -> tuple[int, int]:
    return max(int(lo - 3 * SIGMA), 0), min(int(hi + 3 * SIGMA) + 1, size)


def ref_joints(kp, score, h, w):
    m, t, v = kp.shape[:3]
    out = np.zeros((t, v, h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for f in range(t):
        for j in range(v):
            for p in range(m):
                s = 1.0 if score is None else float(score[p, f, j])
                if s < EPS:
                    continue
                cx, cy = float(kp[p, f, j, 0]), float(kp[p, f, j, 1])
                x0, x1 = _window(cx, cx, w)
                y0, y1 = _window(cy, cy, h)
                inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
                val = s * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * SIGMA ** 2))
                out[f, j] = np.maximum(out[f, j], np.where(inside, val, 0))
    return out


def ref_limbs(kp, score, limbs, h, w):
    m, t, _ = kp.shape[:3]
    out = np.zeros((t, len(limbs), h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for f in range(t):
        for c, (ia, ib) in enumerate(limbs):
            for p in range(m):
                sa = 1.0 if score is None else float(score[p, f, ia])
                sb = 1.0 if score is None else float(score[p, f, ib])
                val = min(sa, sb)
                if val < EPS:
                    continue
                ax, ay = (float(q) for q in kp[p, f, ia])
                bx, by = (float(q) for q in kp[p, f, ib])
                x0, x1 = _window(min(ax, bx), max(ax, bx), w)
                y0, y1 = _window(min(ay, by), max(ay, by), h)
                if x0 >= x1 or y0 >= y1:
                    continue
                d2a = (xx - ax) ** 2 + (yy - ay) ** 2
                d2b = (xx - bx) ** 2 + (yy - by) ** 2
                d2ab = (ax - bx) ** 2 + (ay - by) ** 2
                if d2ab < 1:  # degenerate limb: joint map at a, window of the joint
                    jx0, jx1 = _window(ax, ax, w)
                    jy0, jy1 = _window(ay, ay, h)
                    inside = (xx >= jx0) & (xx < jx1) & (yy >= jy0) & (yy < jy1)
                    patch = sa * np.exp(-d2a / (2 * SIGMA ** 2))
                else:
                    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
                    tt = (d2a - d2b + d2ab) / (2 * d2ab)
                    px, py = ax + tt * (bx - ax), ay + tt * (by - ay)
                    d2 = np.where(tt <= 0, d2a, np.where(tt >= 1, d2b, (xx - px) ** 2 + (yy - py) ** 2))
                    patch = val * np.exp(-d2 / (2 * SIGMA ** 2))
                out[f, c] = np.maximum(out[f, c], np.where(inside, patch, 0))
    return out


def random_pose(rng, persons: int, frames: int, h: int, w: int, joints: int = 17):
    """Keypoints partly outside the frame, missing (0, 0) joints, zero/tiny scores, collapsed limbs."""
    kp = rng.uniform(-4, [w + 4, h + 4], size=(persons, frames, joints, 2)).astype(np.float32)
    # Compact skeletons around a centre, like real people, plus a few wild points.
    centre = rng.uniform(0, [w, h], size=(persons, frames, 1, 2))
    kp = np.where(rng.random((persons, frames, joints, 1)) < 0.8,
                  centre + rng.normal(0, w / 8, size=kp.shape), kp).astype(np.float32)
    kp[rng.random((persons, frames, joints)) < 0.05] = 0  # missing joints
    kp[:, :, 2] = kp[:, :, 0] + rng.uniform(-0.5, 0.5, size=(persons, frames, 2))  # d2ab < 1 limbs
    score = rng.uniform(0.2, 1.0, size=(persons, frames, joints)).astype(np.float32)
    score[rng.random(score.shape) < 0.1] = 0
    score[rng.random(score.shape) < 0.03] = 5e-5  # below eps: skipped
    return kp, score


@pytest.mark.parametrize("seed,persons,frames", [(0, 1, 1), (1, 2, 5), (2, 3, 3), (3, 4, 2), (4, 2, 40)])
def test_numpy_joints_match_reference(seed, persons, frames):
    rng = np.random.default_rng(seed)
    h, w = (20, 24) if frames < 40 else (12, 12)
    kp, score = random_pose(rng, persons, frames, h, w)
    got = joint_heatmaps(kp, score, h, w, SIGMA, EPS)
    assert got.shape == (frames, 17, h, w) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref_joints(kp, score, h, w), rtol=0, atol=1e-6)
    assert got.max() > 0.1  # something was drawn


@pytest.mark.parametrize("seed,persons,frames", [(10, 1, 2), (11, 2, 4), (12, 4, 2), (13, 2, 24)])
def test_numpy_limbs_match_reference(seed, persons, frames):
    rng = np.random.default_rng(seed)
    h, w = (22, 18) if frames < 24 else (12, 12)
    kp, score = random_pose(rng, persons, frames, h, w)
    limbs = list(S.CONFIG_LIMBS)  # (0, 2) is collapsed by random_pose: the d2ab < 1 fallback
    got = limb_heatmaps(kp, score, limbs, h, w, SIGMA, EPS)
    np.testing.assert_allclose(got, ref_limbs(kp, score, limbs, h, w), rtol=0, atol=1e-5)


@pytest.mark.parametrize("h,w", [(4, 4), (3, 9), (9, 5), (5, 5)])
def test_numpy_joints_on_canvases_about_as_small_as_a_window(h, w):
    # Below 5 pixels a padded window no longer fits on the canvas: the masked path draws.
    rng = np.random.default_rng(h * 10 + w)
    kp, score = random_pose(rng, 2, 6, h, w)
    np.testing.assert_allclose(joint_heatmaps(kp, score, h, w, SIGMA, EPS), ref_joints(kp, score, h, w),
                               rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # NaN to int: an empty window
def test_nan_keypoints_draw_nothing():
    rng = np.random.default_rng(8)
    kp, score = random_pose(rng, 2, 4, 20, 24)
    score[:] = np.maximum(score, 0.5)
    nan = kp.copy()
    nan[0, 1, 3, 0] = np.nan
    nan[1, 2, 5] = np.nan
    skipped = score.copy()
    skipped[0, 1, 3] = skipped[1, 2, 5] = 0  # what a NaN joint must amount to
    got = joint_heatmaps(nan, score, 20, 24, SIGMA, EPS)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref_joints(kp, skipped, 20, 24), rtol=0, atol=1e-6)


def test_no_score_draws_everything_including_missing_joints():
    rng = np.random.default_rng(5)
    kp, _ = random_pose(rng, 2, 3, 16, 16)
    kp[1, 2, 5] = 0  # a missing joint: still drawn, at the origin, when scores are ignored
    got = joint_heatmaps(kp, None, 16, 16, SIGMA, EPS)
    np.testing.assert_allclose(got, ref_joints(kp, None, 16, 16), atol=1e-6)
    assert got[2, 5, 0, 0] == 1.0


def test_known_values_of_one_joint():
    kp = np.zeros((1, 1, 1, 2), np.float32)
    kp[..., :] = 24
    out = joint_heatmaps(kp, np.ones((1, 1, 1), np.float32), 64, 64, SIGMA, EPS)[0, 0]
    # SPEC §2.8 example: row y=24 around x=24.
    np.testing.assert_allclose(out[24, 22:27], [0.003866, 0.249352, 1.0, 0.249352, 0.0], atol=2e-6)
    assert out.sum() == pytest.approx(out[22:26, 22:26].sum())  # asymmetric 4x4 window


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_torch_batch_matches_numpy_per_sample(backend):
    rng = np.random.default_rng(7)
    h, w, frames = 20, 20, 6
    samples = [random_pose(rng, p, frames, h, w) for p in (1, 3, 2)]
    kp = torch.zeros(3, 4, frames, 17, 2)
    sc = torch.zeros(3, 4, frames, 17)
    for i, (k, s) in enumerate(samples):
        kp[i, : len(k)], sc[i, : len(k)] = torch.from_numpy(k), torch.from_numpy(s)
    joints = batch_heatmaps(kp, sc, h, w, sigma=SIGMA, eps=EPS, backend=backend)
    limbs = batch_heatmaps(kp, sc, h, w, limbs=S.DEFAULT_LIMBS, sigma=SIGMA, eps=EPS, backend=backend)
    assert joints.shape == (3, 17, frames, h, w) and limbs.shape == (3, 17, frames, h, w)
    for i, (k, s) in enumerate(samples):
        np.testing.assert_allclose(joints[i].numpy(), joint_heatmaps(k, s, h, w).transpose(1, 0, 2, 3), atol=1e-6)
        np.testing.assert_allclose(limbs[i].numpy(), limb_heatmaps(k, s, S.DEFAULT_LIMBS, h, w).transpose(1, 0, 2, 3),
                                   atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
def test_torch_batch_on_gpu_matches_cpu():
    rng = np.random.default_rng(8)
    k, s = random_pose(rng, 2, 8, 32, 32)
    kp, sc = torch.from_numpy(k)[None], torch.from_numpy(s)[None]
    for limbs in (None, S.CONFIG_LIMBS):
        cpu = batch_heatmaps(kp, sc, 32, 32, limbs=limbs)
        gpu = batch_heatmaps(kp.cuda(), sc.cuda(), 32, 32, limbs=limbs).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=0)


def test_flip_is_mirror_with_swapped_channels():
    rng = np.random.default_rng(9)
    k, s = random_pose(rng, 2, 3, 16, 16)
    maps = joint_heatmaps(k, s, 16, 16)
    flipped = flip_heatmaps(maps, S.COCO17_LEFT_KP, S.COCO17_RIGHT_KP)
    np.testing.assert_array_equal(flipped[:, 1], maps[:, 2, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 0], maps[:, 0, :, ::-1])


@pytest.mark.parametrize("views", [None, (2, 3)])
def test_joints_and_limbs_in_one_volume(views):
    """with_kp + with_limb: the 17 joint maps, then one map per limb, each as the reference draws it;
    the test-time flip mirrors both parts and swaps left/right joints and left/right limbs."""
    from posec3d.data.transforms import GeneratePoseTarget

    h, w = 16, 18
    rng = np.random.default_rng(31)
    kp, score = random_pose(rng, 2, 6, h, w)
    limbs = [(0, 5), (0, 6), (5, 7), (6, 8), (11, 12)]
    left_limb, right_limb = (0, 2), (1, 3)
    gpt = GeneratePoseTarget(sigma=SIGMA, eps=EPS, with_kp=True, with_limb=True, skeletons=limbs, double=True,
                             left_limb=left_limb, right_limb=right_limb)
    got = gpt.generate(kp, score, (h, w), views)
    joints, lmaps = ref_joints(kp, score, h, w), ref_limbs(kp, score, limbs, h, w)
    want = np.concatenate([joints, lmaps], axis=1)  # (T, 17 + 5, H, W)
    # The flip by hand: columns reversed, left/right channels exchanged in each part.
    perm = list(range(17 + len(limbs)))
    for a, b in list(zip(S.COCO17_LEFT_KP, S.COCO17_RIGHT_KP)) + [(17 + a, 17 + b) for a, b in zip(left_limb, right_limb)]:
        perm[a], perm[b] = b, a
    want = np.concatenate([want, want[:, perm, :, ::-1]])
    if views is not None:  # FormatShape's (crops * clips, C, L, H, W)
        want = want.reshape(2 * views[0], views[1], *want.shape[1:]).transpose(0, 2, 1, 3, 4)
    assert got.shape == want.shape and got.shape[1] == 22  # channels: axis 1 in both layouts
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert got[:, 17:].max() > 0.1 and got[:, :17].max() > 0.1  # both parts drawn


def _pipeline(gpt: dict, num_clips: int) -> list[dict]:
    return [dict(type="UniformSampleFrames", clip_len=16, num_clips=num_clips, test_mode=True),
            dict(type="PoseDecode"), dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
            dict(type="Resize", scale=(-1, 32)), dict(type="CenterCrop", crop_size=32), gpt,
            dict(type="FormatShape", input_format="NCTHW_Heatmap"), dict(type="PackActionInputs")]


@pytest.mark.parametrize("backend", ["torch", "auto"])
@pytest.mark.parametrize("gpt", [
    dict(type="GeneratePoseTarget", double=True, left_kp=list(S.COCO17_LEFT_KP), right_kp=list(S.COCO17_RIGHT_KP)),
    dict(type="GeneratePoseTarget", with_kp=False, with_limb=True, skeletons=[list(p) for p in S.CONFIG_LIMBS],
         double=True, left_limb=list(S.CONFIG_LEFT_LIMB), right_limb=list(S.CONFIG_RIGHT_LIMB)),
    dict(type="GeneratePoseTarget", use_score=False),
])
def test_split_pipeline_equals_loader_pipeline(gpt, backend, golden):
    with np.load(golden / "transforms" / "pose_p2_f100_partial_edge.npz") as z:
        raw = dict(keypoint=z["input/keypoint"], keypoint_score=z["input/keypoint_score"],
                   img_shape=(1080, 1920), total_frames=100, label=4)
    pipe = _pipeline(gpt, num_clips=2)
    want = Compose(pipe)(dict(raw))["imgs"]
    loader, heatmaps = split_pipeline(pipe, max_persons=3)
    heatmaps.backend = backend
    packed = Compose(loader)(dict(raw))
    assert packed["keypoint"].shape == (3, 32, 17, 2) and packed["person_mask"].tolist() == [True, True, False]
    batch = torch.utils.data.default_collate([packed, packed])
    got = heatmaps(batch["keypoint"], batch["keypoint_score"], batch["img_shape"], batch["person_mask"],
                   num_clips=2)
    assert got.shape == (2,) + tuple(want.shape)
    torch.testing.assert_close(got[1], want, atol=1e-5, rtol=0)
    assert batch["label"].tolist() == [4, 4]


def test_split_pipeline_rejects_what_it_cannot_move():
    with pytest.raises(ConfigError, match="no GeneratePoseTarget"):
        split_pipeline([dict(type="PoseDecode")])
    with pytest.raises(ConfigError, match="cannot move"):
        split_pipeline([dict(type="GeneratePoseTarget"), dict(type="Flip")])
    bh = BatchHeatmaps.from_config(dict(type="GeneratePoseTarget"))
    with pytest.raises(ConfigError, match="share img_shape"):
        bh(torch.zeros(2, 1, 4, 17, 2), torch.ones(2, 1, 4, 17), torch.tensor([[8, 8], [8, 9]]))


def test_golden_kp_volume_from_batch_module(golden):
    """BatchHeatmaps on the golden keypoints (after CenterCrop) reproduces the golden maps."""
    with np.load(golden / "transforms" / "pose_p1_f60.npz") as z:
        kp = torch.from_numpy(z["nc1/5_CenterCrop/keypoint"].astype(np.float32))[None]
        sc = torch.from_numpy(z["nc1/2_PoseDecode/keypoint_score"])[None]
        want = z["nc1/6_GeneratePoseTarget_kp_double/imgs"]
    bh = BatchHeatmaps(double=True, backend="torch")
    got = bh(kp, sc, torch.tensor([[64, 64]]))
    assert got.shape == (1, 2, 17, 48, 64, 64)
    np.testing.assert_allclose(got[0, 0].numpy(), want[:48].transpose(1, 0, 2, 3), atol=1e-6)
    np.testing.assert_allclose(got[0, 1].numpy(), want[48:].transpose(1, 0, 2, 3), atol=1e-6)
    assert math.isclose(float(got.max()), float(want.max()), abs_tol=1e-6)


@pytest.mark.parametrize("with_limb,double", [(False, True), (True, False)])
def test_pooled_volumes_are_all_zero_again_for_the_next_sample(with_limb, double):
    """GeneratePoseTarget reuses a volume once its sample is gone (CanvasPool): each later sample
    must equal the per-pixel reference on its own, with nothing left over from the one before,
    while a sample still held is never drawn over."""
    from posec3d.data.transforms import GeneratePoseTarget

    h, w, frames = 18, 20, 3
    from posec3d.data.heatmap import CanvasPool

    gpt = GeneratePoseTarget(sigma=SIGMA, eps=EPS, with_kp=not with_limb, with_limb=with_limb, double=double,
                             skeletons=S.CONFIG_LIMBS if with_limb else None)
    gpt.canvas = CanvasPool()  # what Compose.reuse_heatmap_volumes does for the engine's loaders
    rng = np.random.default_rng(21)
    poses = [random_pose(rng, persons, frames, h, w) for persons in (3, 1, 2, 1)]

    def expected(kp, score):
        maps = ref_limbs(kp, score, list(S.CONFIG_LIMBS), h, w) if with_limb else ref_joints(kp, score, h, w)
        if not double:
            return maps
        left, right = ((S.DEFAULT_LEFT_LIMB, S.DEFAULT_RIGHT_LIMB) if with_limb
                       else (S.COCO17_LEFT_KP, S.COCO17_RIGHT_KP))
        return np.concatenate([maps, flip_heatmaps(maps, left, right)])

    addresses = []
    for kp, score in poses:  # each output dropped before the next sample: the volume is reused
        got = gpt({"keypoint": kp, "keypoint_score": score, "img_shape": (h, w)})["imgs"]
        np.testing.assert_allclose(got, expected(kp, score), rtol=0, atol=1e-5)
        addresses.append(got.__array_interface__["data"][0])
        del got
    assert len(set(addresses)) == 1, "the volume was not reused"
    held = gpt({"keypoint": poses[0][0], "keypoint_score": poses[0][1], "img_shape": (h, w)})["imgs"]
    before = held.copy()
    other = gpt({"keypoint": poses[1][0], "keypoint_score": poses[1][1], "img_shape": (h, w)})["imgs"]
    assert other.__array_interface__["data"][0] != held.__array_interface__["data"][0]
    np.testing.assert_array_equal(held, before)
    np.testing.assert_allclose(other, expected(*poses[1]), rtol=0, atol=1e-5)


def test_volumes_are_pooled_only_where_nothing_writes_into_them_later():
    """Off by default (a sample handed to user code may be edited in place); a pipeline turns it on
    only when every step after GeneratePoseTarget leaves the volume alone; the engine's loaders do."""
    from posec3d.data.pipeline import Compose

    gen = dict(type="GeneratePoseTarget", sigma=SIGMA, with_kp=True, with_limb=False)
    sample = {"keypoint": np.full((1, 2, 17, 2), 5.0, np.float32), "keypoint_score": np.ones((1, 2, 17), np.float32),
              "img_shape": (12, 12), "num_clips": 1, "clip_len": 2, "label": 0}
    plain = Compose([gen, dict(type="FormatShape", input_format="NCTHW_Heatmap"),
                     dict(type="PackActionInputs")])
    assert plain.transforms[0].canvas is None
    assert plain.reuse_heatmap_volumes() and plain.transforms[0].canvas is not None

    class Centre:  # a user's step that writes into the volume (normalises in place)
        def __call__(self, results):
            results["imgs"] -= 0.5
            return results

    custom = Compose([gen, Centre(), dict(type="FormatShape", input_format="NCTHW_Heatmap")])
    assert not custom.reuse_heatmap_volumes() and custom.transforms[0].canvas is None
    first = custom(dict(sample))["imgs"].copy()
    np.testing.assert_array_equal(custom(dict(sample))["imgs"], first)
    # Why: pooled anyway, the shifted cells outside the next sample's writes would stay behind.
    from posec3d.data.heatmap import CanvasPool

    custom.transforms[0].canvas = CanvasPool()
    custom(dict(sample))
    shifted = dict(sample, keypoint=sample["keypoint"] + 4)
    stale = custom(dict(shifted))["imgs"].copy()
    custom.transforms[0].canvas = None
    assert not np.array_equal(stale, custom(dict(shifted))["imgs"])


def test_the_engine_loaders_pool_their_datasets_volumes(tmp_path):
    from posec3d.data.dataset import PoseDataset, RepeatDataset, reuse_heatmap_volumes
    from posec3d.data.pipeline import Compose

    ann = tmp_path / "a.pkl"
    import pickle
    kp = np.full((1, 4, 17, 2), 5.0, np.float32)
    ann.write_bytes(pickle.dumps([{"frame_dir": "x", "label": 0, "total_frames": 4, "img_shape": (12, 12),
                                   "original_shape": (12, 12), "keypoint": kp,
                                   "keypoint_score": np.ones((1, 4, 17), np.float32)}]))
    pipeline = [dict(type="UniformSampleFrames", clip_len=4), dict(type="PoseDecode"),
                dict(type="GeneratePoseTarget", sigma=SIGMA), dict(type="FormatShape", input_format="NCTHW_Heatmap"),
                dict(type="PackActionInputs")]
    ds = RepeatDataset(PoseDataset(str(ann), pipeline), times=2)
    assert ds.dataset.pipeline.transforms[2].canvas is None
    assert reuse_heatmap_volumes(ds)
    assert isinstance(ds.dataset.pipeline, Compose) and ds.dataset.pipeline.transforms[2].canvas is not None
