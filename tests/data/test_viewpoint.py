"""RandomAffine and FramingCut against hand-written references (plain trigonometry, hand-made frames)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from posec3d.data.pipeline import Compose
from posec3d.data.transforms import FramingCut, RandomAffine
from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


def _pose(seed=0, missing=((0, 1, 3),)):
    rng = np.random.default_rng(seed)
    kp = rng.uniform(50, 150, (1, 3, 5, 2)).astype(np.float32)
    for m, t, v in missing:
        kp[m, t, v] = 0
    return kp


def test_random_affine_matches_explicit_rotation_scale_shear():
    kp = _pose()
    t = RandomAffine(rotate=30, scale=(0.8, 1.2), aspect=(0.7, 1.4), shear=15, p=1.0)
    np.random.seed(3)
    # The draws, in the transform's order: p, angle, scale, aspect, shear.
    np.random.rand()
    angle = np.random.uniform(-30, 30)
    s = np.random.uniform(0.8, 1.2)
    r = math.exp(np.random.uniform(math.log(0.7), math.log(1.4)))
    sh = np.random.uniform(-15, 15)
    np.random.seed(3)
    out = t(dict(keypoint=kp.copy(), img_shape=(200, 200)))["keypoint"]

    present = (kp != 0).any(-1)
    pts = kp[present]
    cx = (pts[:, 0].min() + pts[:, 0].max()) / 2
    cy = (pts[:, 1].min() + pts[:, 1].max()) / 2
    sx, sy = s * math.sqrt(r), s / math.sqrt(r)
    a, k = math.radians(angle), math.tan(math.radians(sh))
    for (m, f, v), ok in np.ndenumerate(present):
        if not ok:
            continue
        x, y = kp[m, f, v] - [cx, cy]
        x, y = x * sx, y * sy                 # scale
        x = x + k * y                          # shear along x
        x, y = x * math.cos(a) - y * math.sin(a), x * math.sin(a) + y * math.cos(a)  # rotate
        np.testing.assert_allclose(out[m, f, v], [x + cx, y + cy], rtol=0, atol=1e-3)
    assert (out[~present] == 0).all()  # missing joints stay missing


def test_random_affine_identity_and_probability():
    kp = _pose(1)
    t = RandomAffine(rotate=0, scale=(1, 1), aspect=(1, 1), shear=0)
    np.testing.assert_allclose(t(dict(keypoint=kp.copy()))["keypoint"], kp, atol=1e-4)
    off = RandomAffine(rotate=45, p=0.0)
    np.testing.assert_array_equal(off(dict(keypoint=kp.copy()))["keypoint"], kp)
    with pytest.raises(ConfigError):
        RandomAffine(scale=(0, 1))


def test_framing_cut_top_hand_derived():
    # One frame, three joints: head at y=10, hip at y=50, foot at y=90, in a 100x200 (w x h) image.
    kp = np.array([[[[40, 10], [45, 50], [50, 90]]]], np.float32)
    score = np.array([[[0.9, 0.8, 0.7]]], np.float32)
    t = FramingCut(p=1.0, cut=(0.25, 0.25), side_weights=(1, 0, 0, 0), outside_score=(0.5, 0.5))
    out = t(dict(keypoint=kp.copy(), keypoint_score=score.copy(), img_shape=(200, 100)))
    # Body spans y 10..90, a quarter of it (20 px) is cut: the new top edge is y = 30.
    assert out["img_shape"] == (170, 100)
    np.testing.assert_allclose(out["keypoint"][0, 0], [[40, 0], [45, 20], [50, 60]])
    np.testing.assert_allclose(out["keypoint_score"][0, 0], [0.45, 0.8, 0.7])


def test_framing_cut_right_side_and_missing_joints():
    kp = np.array([[[[10, 10], [0, 0], [90, 40]]]], np.float32)
    t = FramingCut(p=1.0, cut=(0.5, 0.5), side_weights=(0, 0, 0, 1), outside_score=(0.0, 0.0))
    out = t(dict(keypoint=kp.copy(), img_shape=(60, 120)))
    # x spans 10..90; the right edge moves to 90 - 40 = 50: width 50, the far joint sits on x = 49.
    assert out["img_shape"] == (60, 50)
    np.testing.assert_allclose(out["keypoint"][0, 0], [[10, 10], [0, 0], [49, 40]])
    np.testing.assert_allclose(out["keypoint_score"][0, 0], [1, 1, 0])
    assert repr(t).startswith("FramingCut(")


def test_registered_and_run_in_a_pipeline():
    assert TRANSFORMS.get("RandomAffine") is RandomAffine and TRANSFORMS.get("FramingCut") is FramingCut
    np.random.seed(0)
    r = Compose([dict(type="RandomAffine"), dict(type="FramingCut", p=1.0),
                 dict(type="PoseCompact", hw_ratio=1., allow_imgpad=True)])(
        dict(keypoint=_pose(2), keypoint_score=np.ones((1, 3, 5), np.float32), img_shape=(200, 200)))
    assert r["keypoint"].shape == (1, 3, 5, 2) and r["keypoint"].dtype == np.float32
    with pytest.raises(ConfigError):
        FramingCut(cut=(0.5, 0.2))
