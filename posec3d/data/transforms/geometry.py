"""Spatial transforms on keypoints (and, for RGBPose, on RGB frames): SPEC §2.3-2.7.

Frames, when present, are ``results['imgs']``: a list of (H, W, 3) uint8 arrays. Keypoints and
frames always move together, so RGBPose pipelines reuse these classes unchanged.
"""
from __future__ import annotations

import math
import random

import numpy as np

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


def _frames(results: dict) -> list[np.ndarray] | None:
    """RGB frames of the sample, or None for pose-only samples (whose ``imgs`` is absent)."""
    imgs = results.get("imgs")
    if isinstance(imgs, list) and imgs and isinstance(imgs[0], np.ndarray) and imgs[0].ndim == 3:
        return imgs
    return None


def _compose_quadruple(old, x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """Express a crop given relative to the current image in the original image's units."""
    ox, oy, ow, oh = (float(v) for v in old)
    return (ox + ow * x, oy + oh * y, ow * w, oh * h)


def resize_frames(frames: list[np.ndarray], size_wh: tuple[int, int], interpolation: str = "bilinear") -> list[np.ndarray]:
    """Resize HxWxC uint8 frames like cv2 (half-pixel centres, no antialiasing), via torch."""
    import torch
    import torch.nn.functional as F

    new_w, new_h = size_wh
    if not frames:
        return frames
    batch = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float()
    mode = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}.get(interpolation)
    if mode is None:
        raise ConfigError(f"Resize: unsupported interpolation {interpolation!r}")
    kw = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(batch, size=(new_h, new_w), mode=mode, **kw)
    out = out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return list(out)


def _crop_frames(results: dict, left: int, top: int, right: int, bottom: int) -> None:
    frames = _frames(results)
    if frames is not None:
        results["imgs"] = [f[top:bottom, left:right] for f in frames]


def _crop_keypoints(results: dict, left: int, top: int) -> None:
    # float32 minus an int64 array is float64: mmaction2 keeps that dtype, so do we.
    if "keypoint" in results:
        results["keypoint"] = results["keypoint"] - np.array([left, top])


@TRANSFORMS.register()
class PoseCompact:
    """Crop to the box around all non-zero keypoints (all persons, all sampled frames), padded."""

    def __init__(self, padding: float = 0.25, threshold: int = 10, hw_ratio=None, allow_imgpad: bool = True):
        self.padding = padding
        self.threshold = threshold
        if hw_ratio is not None and not isinstance(hw_ratio, (tuple, list)):
            hw_ratio = (hw_ratio, hw_ratio)
        self.hw_ratio = None if hw_ratio is None else tuple(float(r) for r in hw_ratio)
        self.allow_imgpad = allow_imgpad

    def box(self, kp: np.ndarray, img_shape) -> tuple[int, int, int, int] | None:
        """The integer crop box (x0, y0, x1, y1), or None when the pose is too small to crop."""
        h, w = img_shape
        xs, ys = kp[..., 0], kp[..., 1]
        xs, ys = xs[xs != 0], ys[ys != 0]
        if xs.size == 0 or ys.size == 0:
            return None
        min_x, max_x, min_y, max_y = xs.min(), xs.max(), ys.min(), ys.max()
        if max_x - min_x < self.threshold or max_y - min_y < self.threshold:
            return None
        # float32 sums and differences, then float64 from the halving on (as under numpy 1.x).
        cx = float(np.float32(max_x + min_x)) / 2
        cy = float(np.float32(max_y + min_y)) / 2
        half_w = float(np.float32(max_x - min_x)) / 2 * (1 + self.padding)
        half_h = float(np.float32(max_y - min_y)) / 2 * (1 + self.padding)
        if self.hw_ratio is not None:
            half_h = max(self.hw_ratio[0] * half_w, half_h)
            half_w = max(half_h / self.hw_ratio[1], half_w)
        x0, x1, y0, y1 = cx - half_w, cx + half_w, cy - half_h, cy + half_h
        if not self.allow_imgpad:
            x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
            y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
        return int(x0), int(y0), int(x1), int(y1)

    def __call__(self, results: dict) -> dict:
        h, w = results["img_shape"]
        kp = results["keypoint"]
        kp[np.isnan(kp)] = 0.0
        box = self.box(kp, (h, w))
        if box is None:
            return results
        x0, y0, x1, y1 = box
        xs, ys = kp[..., 0], kp[..., 1]
        # Only real keypoints move; 0 keeps meaning "missing".
        xs[xs != 0] -= x0
        ys[ys != 0] -= y0
        results["img_shape"] = (y1 - y0, x1 - x0)
        old = results.get("crop_quadruple", (0.0, 0.0, 1.0, 1.0))
        results["crop_quadruple"] = _compose_quadruple(old, x0 / w, y0 / h, (x1 - x0) / w, (y1 - y0) / h)
        return results


def rescale_size(old_wh: tuple[int, int], scale, keep_ratio: bool) -> tuple[int, int]:
    """New (w, h) for ``Resize``: mmcv semantics, incl. ``(-1, S)`` = short side S."""
    w, h = old_wh
    if isinstance(scale, (int, float)) and not isinstance(scale, bool):
        if scale <= 0:
            raise ConfigError(f"Resize: scale must be positive, got {scale}")
        return int(w * float(scale) + 0.5), int(h * float(scale) + 0.5)
    scale = tuple(scale)
    if len(scale) != 2:
        raise ConfigError(f"Resize: scale must be a number or a pair, got {scale!r}")
    if not keep_ratio:
        return int(scale[0]), int(scale[1])
    long_max, short_max = max(scale), min(scale)
    if short_max == -1:
        long_max, short_max = math.inf, long_max
    factor = min(long_max / max(h, w), short_max / min(h, w))
    return int(w * factor + 0.5), int(h * factor + 0.5)


@TRANSFORMS.register()
class Resize:
    """Resize keypoints (and frames) to ``scale``; ``(-1, S)`` keeps the ratio with short side S,
    ``(w, h)`` with ``keep_ratio=False`` is exact (width first)."""

    def __init__(self, scale, keep_ratio: bool = True, interpolation: str = "bilinear", lazy: bool = False):
        if isinstance(scale, (list, tuple)):
            scale = tuple(scale)
            if -1 not in scale and min(scale) <= 0:
                raise ConfigError(f"Resize: invalid scale {scale!r}")
        self.scale = scale
        self.keep_ratio = keep_ratio
        self.interpolation = interpolation

    def __call__(self, results: dict) -> dict:
        h, w = results["img_shape"]
        new_w, new_h = rescale_size((w, h), self.scale, self.keep_ratio)
        factor = np.array([new_w / w, new_h / h], dtype=np.float32)
        prev = results.get("scale_factor")
        results["scale_factor"] = factor if prev is None else np.asarray(prev, np.float32) * factor
        if "keypoint" in results:
            results["keypoint"] = results["keypoint"] * factor
        frames = _frames(results)
        if frames is not None:
            results["imgs"] = resize_frames(frames, (new_w, new_h), self.interpolation)
        results["img_shape"] = (new_h, new_w)
        results["keep_ratio"] = self.keep_ratio
        return results


def random_crop_box(img_shape, area_range, aspect_ratio_range, max_attempts: int = 10):
    """(left, top, right, bottom) of a random crop; exact RNG calls of mmaction2 (SPEC §2.5)."""
    h, w = img_shape
    lo, hi = aspect_ratio_range
    aspects = np.exp(np.random.uniform(np.log(lo), np.log(hi), size=max_attempts))
    areas = np.random.uniform(*area_range, size=max_attempts) * h * w
    crop_ws = np.round(np.sqrt(areas * aspects)).astype(np.int32)
    crop_hs = np.round(np.sqrt(areas / aspects)).astype(np.int32)
    for cw, ch in zip(crop_ws.tolist(), crop_hs.tolist()):
        if cw <= w and ch <= h:
            x = random.randint(0, w - cw)
            y = random.randint(0, h - ch)
            return x, y, x + cw, y + ch
    side = min(h, w)  # nothing fitted: a centred square
    x, y = (w - side) // 2, (h - side) // 2
    return x, y, x + side, y + side


def _apply_crop(results: dict, left: int, top: int, right: int, bottom: int) -> None:
    h, w = results["img_shape"]
    old = results.get("crop_quadruple", np.array([0, 0, 1, 1], dtype=np.float32))
    q = _compose_quadruple(old, left / w, top / h, (right - left) / w, (bottom - top) / h)
    results["crop_quadruple"] = np.array(q, dtype=np.float32)
    results["crop_bbox"] = np.array([left, top, right, bottom])
    _crop_keypoints(results, left, top)
    _crop_frames(results, left, top, right, bottom)
    results["img_shape"] = (bottom - top, right - left)


@TRANSFORMS.register()
class RandomResizedCrop:
    """Crop a random area fraction / aspect ratio (the following Resize sets the output size)."""

    def __init__(self, area_range=(0.08, 1.0), aspect_ratio_range=(3 / 4, 4 / 3), lazy: bool = False):
        self.area_range = tuple(area_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        if not (0 < self.area_range[0] <= self.area_range[1] <= 1):
            raise ConfigError(f"RandomResizedCrop: area_range must lie in (0, 1], got {area_range!r}")

    def __call__(self, results: dict) -> dict:
        box = random_crop_box(results["img_shape"], self.area_range, self.aspect_ratio_range)
        _apply_crop(results, *box)
        return results


@TRANSFORMS.register()
class CenterCrop:
    """Crop ``crop_size`` (int, or (w, h)) from the centre; keypoints may leave the crop."""

    def __init__(self, crop_size, lazy: bool = False):
        if isinstance(crop_size, int):
            crop_size = (crop_size, crop_size)
        self.crop_w, self.crop_h = (int(c) for c in crop_size)

    def __call__(self, results: dict) -> dict:
        h, w = results["img_shape"]
        left, top = (w - self.crop_w) // 2, (h - self.crop_h) // 2
        _apply_crop(results, left, top, left + self.crop_w, top + self.crop_h)
        return results


@TRANSFORMS.register()
class Flip:
    """Mirror with probability ``flip_ratio``: x -> W - x for real keypoints, swap left/right."""

    def __init__(self, flip_ratio: float = 0.5, direction: str = "horizontal", left_kp=None,
                 right_kp=None, flip_label_map=None, lazy: bool = False):
        if direction not in ("horizontal", "vertical"):
            raise ConfigError(f"Flip: direction must be 'horizontal' or 'vertical', got {direction!r}")
        if (left_kp is None) != (right_kp is None) or (left_kp is not None and len(left_kp) != len(right_kp)):
            raise ConfigError("Flip: left_kp and right_kp must be given together, with equal lengths")
        self.flip_ratio = flip_ratio
        self.direction = direction
        self.left_kp = list(left_kp) if left_kp is not None else None
        self.right_kp = list(right_kp) if right_kp is not None else None
        # Labels whose meaning mirrors (e.g. "swipe left" <-> "swipe right").
        self.flip_label_map = {int(k): int(v) for k, v in (flip_label_map or {}).items()}

    def _perm(self, num_joints: int) -> list[int]:
        perm = list(range(num_joints))
        for l_, r_ in zip(self.left_kp or (), self.right_kp or ()):
            perm[l_], perm[r_] = r_, l_
        return perm

    def __call__(self, results: dict) -> dict:
        flip = np.random.rand() < self.flip_ratio  # always drawn: keeps the RNG stream aligned
        results["flip"] = bool(flip)
        results["flip_direction"] = self.direction
        if not flip:
            return results
        h, w = results["img_shape"]
        if self.flip_label_map and "label" in results:
            results["label"] = self.flip_label_map.get(int(results["label"]), results["label"])
        if "keypoint" in results:
            kp = results["keypoint"]
            axis, size = (0, w) if self.direction == "horizontal" else (1, h)
            coord = kp[..., axis]
            coord[coord != 0] = size - coord[coord != 0]
            if self.direction == "horizontal" and self.left_kp:
                if max(self.left_kp + self.right_kp) >= kp.shape[-2]:
                    raise ConfigError(f"Flip: left_kp/right_kp name joint {max(self.left_kp + self.right_kp)} "
                                      f"but keypoints have {kp.shape[-2]} joints; give this layout's pairs")
                perm = self._perm(kp.shape[-2])
                results["keypoint"] = kp[..., perm, :]
                if "keypoint_score" in results:
                    results["keypoint_score"] = results["keypoint_score"][..., perm]
        frames = _frames(results)
        if frames is not None:
            axis = 1 if self.direction == "horizontal" else 0
            results["imgs"] = [np.ascontiguousarray(np.flip(f, axis=axis)) for f in frames]
        return results
