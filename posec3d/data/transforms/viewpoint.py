"""Train-time viewpoint and framing augmentation for skeletons (``RandomAffine``, ``FramingCut``).

Real footage differs from Penn Action's in the camera: rolled or tilted (rotation, shear), further
or closer (scale), and framed tightly, so that the head or the feet leave the picture. These two
transforms act on keypoints only, in image pixels, and go *before* ``PoseCompact`` so that the crop
to the person happens on the changed skeleton, exactly as it does at inference. Both keep the
pipeline's convention that a coordinate of exactly 0 means "missing". Registered in
``posec3d.registry.TRANSFORMS``; they use numpy's global RNG like the other train transforms.
"""
from __future__ import annotations

import math

import numpy as np

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


def _present(kp: np.ndarray) -> np.ndarray:
    """(..., V) bool: joints with a real position (either coordinate non-zero)."""
    return (kp != 0).any(axis=-1)


def affine_matrix(angle_deg: float, scale_xy: tuple[float, float], shear_deg: float) -> np.ndarray:
    """2x2 linear map ``R(angle) @ Shear_x(shear) @ diag(sx, sy)`` acting on column vectors (x, y)."""
    a, s = math.radians(angle_deg), math.tan(math.radians(shear_deg))
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    shear = np.array([[1.0, s], [0.0, 1.0]])
    return rot @ shear @ np.diag([float(scale_xy[0]), float(scale_xy[1])])


@TRANSFORMS.register()
class RandomAffine:
    """Rotate, scale (anisotropically) and shear every present joint about the pose's box centre.

    One random map per sample (all persons and frames move together, like a different camera):
    angle ~ U(-rotate, rotate) degrees, scale ~ U(*scale), x/y aspect ~ exp(U(log lo, log hi)) of
    ``aspect``, horizontal shear ~ U(-shear, shear) degrees, applied with probability ``p``.
    """

    def __init__(self, rotate: float = 15.0, scale=(0.9, 1.1), aspect=(0.85, 1.15), shear: float = 10.0,
                 p: float = 1.0):
        lo, hi = (float(v) for v in scale)
        alo, ahi = (float(v) for v in aspect)
        if not (0 < lo <= hi) or not (0 < alo <= ahi) or rotate < 0 or not (0 <= shear < 80) or not (0 <= p <= 1):
            raise ConfigError(f"RandomAffine: bad settings rotate={rotate}, scale={scale}, aspect={aspect}, "
                              f"shear={shear}, p={p}")
        self.rotate, self.scale, self.aspect, self.shear, self.p = float(rotate), (lo, hi), (alo, ahi), float(shear), float(p)

    def draw(self) -> np.ndarray:
        """The random 2x2 matrix of one sample."""
        angle = np.random.uniform(-self.rotate, self.rotate)
        s = np.random.uniform(*self.scale)
        r = math.exp(np.random.uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
        shear = np.random.uniform(-self.shear, self.shear)
        return affine_matrix(angle, (s * math.sqrt(r), s / math.sqrt(r)), shear)

    def __call__(self, results: dict) -> dict:
        if np.random.rand() >= self.p:
            return results
        kp = np.asarray(results["keypoint"], dtype=np.float32)
        present = _present(kp)
        if not present.any():
            return results
        mat = self.draw()
        pts = kp[present].astype(np.float64)
        centre = (pts.min(axis=0) + pts.max(axis=0)) / 2
        moved = (pts - centre) @ mat.T + centre
        moved[moved == 0] = 1e-3  # a real joint must not become "missing"
        out = kp.copy()
        out[present] = moved.astype(np.float32)
        results["keypoint"] = out
        return results

    def __repr__(self) -> str:
        return (f"RandomAffine(rotate={self.rotate}, scale={self.scale}, aspect={self.aspect}, "
                f"shear={self.shear}, p={self.p})")


@TRANSFORMS.register()
class FramingCut:
    """A close-up: with probability ``p`` the picture's edge moves into the body on one side.

    The side is top, bottom, left or right with probabilities ``side_weights``; the new edge lies
    ``cut`` ~ U(*cut) of the body's extent inside the body's box (all frames). The frame becomes
    the old frame with that side moved, keypoints are shifted into it, and joints that fall
    outside are put on its border (clipped to ``[0, size - 1]`` as the BlazePose estimator does)
    with their score multiplied by U(*outside_score) (BlazePose reports low visibility there).
    """

    SIDES = ("top", "bottom", "left", "right")

    def __init__(self, p: float = 0.3, cut=(0.1, 0.4), side_weights=(0.4, 0.3, 0.15, 0.15),
                 outside_score=(0.0, 0.3)):
        clo, chi = (float(v) for v in cut)
        slo, shi = (float(v) for v in outside_score)
        weights = np.asarray(side_weights, dtype=np.float64)
        if (not (0 <= p <= 1) or not (0 < clo <= chi < 1) or not (0 <= slo <= shi <= 1)
                or weights.shape != (4,) or (weights < 0).any() or weights.sum() <= 0):
            raise ConfigError(f"FramingCut: bad settings p={p}, cut={cut}, side_weights={side_weights}, "
                              f"outside_score={outside_score}")
        self.p, self.cut, self.outside_score = float(p), (clo, chi), (slo, shi)
        self.side_weights = weights / weights.sum()

    def __call__(self, results: dict) -> dict:
        if np.random.rand() >= self.p:
            return results
        kp = np.asarray(results["keypoint"], dtype=np.float32)
        present = _present(kp)
        if not present.any():
            return results
        side = self.SIDES[int(np.random.choice(4, p=self.side_weights))]
        frac = np.random.uniform(*self.cut)
        h, w = results["img_shape"]
        pts = kp[present]
        (x_min, y_min), (x_max, y_max) = pts.min(axis=0), pts.max(axis=0)
        x0, y0, x1, y1 = 0.0, 0.0, float(w), float(h)
        if side == "top":
            y0 = y_min + frac * (y_max - y_min)
        elif side == "bottom":
            y1 = y_max - frac * (y_max - y_min)
        elif side == "left":
            x0 = x_min + frac * (x_max - x_min)
        else:
            x1 = x_max - frac * (x_max - x_min)
        x0, y0 = math.floor(max(x0, 0.0)), math.floor(max(y0, 0.0))
        x1, y1 = math.ceil(min(x1, w)), math.ceil(min(y1, h))
        new_w, new_h = max(x1 - x0, 2), max(y1 - y0, 2)
        shifted = kp - np.array([x0, y0], np.float32)
        inside = ((shifted[..., 0] >= 0) & (shifted[..., 0] <= new_w - 1)
                  & (shifted[..., 1] >= 0) & (shifted[..., 1] <= new_h - 1))
        shifted[..., 0] = np.clip(shifted[..., 0], 0, new_w - 1)
        shifted[..., 1] = np.clip(shifted[..., 1], 0, new_h - 1)
        score = results.get("keypoint_score")
        score = np.ones(kp.shape[:-1], np.float32) if score is None else np.array(score, dtype=np.float32)
        outside = present & ~inside
        score[outside] *= np.random.uniform(*self.outside_score, size=int(outside.sum())).astype(np.float32)
        results["keypoint"] = np.where(present[..., None], shifted, 0).astype(np.float32)
        results["keypoint_score"] = score
        results["img_shape"] = (int(new_h), int(new_w))
        return results

    def __repr__(self) -> str:
        return (f"FramingCut(p={self.p}, cut={self.cut}, side_weights={self.side_weights.round(3).tolist()}, "
                f"outside_score={self.outside_score})")
