"""Batched pseudo-heatmaps in torch (CPU or GPU): the same maps as ``data.heatmap``, for a batch.

Moving heatmap generation off the data loader: ``split_pipeline`` cuts a pipeline config before
GeneratePoseTarget and ends the loader part with ``PackPoses`` (keypoints, scores and img_shape as
fixed-size tensors, persons padded to ``max_persons``); ``BatchHeatmaps`` then turns a collated
batch into the (B, views, C, T, H, W) volume that GeneratePoseTarget + FormatShape would have made.

Every window cell is scattered with ``scatter_reduce(amax)``: duplicates (several persons on one
plane) resolve to the max, and cells outside a window carry the value 0, which is a no-op on a
zero-initialised non-negative canvas, so no data-dependent compaction is needed.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from posec3d.data import skeletons as layouts
from posec3d.data.heatmap import EPS_MMACTION2, Layout, draw_joints, draw_limbs, flip_permutation
from posec3d.errors import ConfigError


def _trunc(x: torch.Tensor) -> torch.Tensor:
    """Python ``int()`` semantics (toward zero), with bounds computed in float64 as mmaction2 did."""
    return torch.trunc(x).long()


class _Target:
    """Flat offsets of the (b, t, c) planes of the output volume, and of their mirrored copies."""

    def __init__(self, batch: int, frames: int, channels: int, h: int, w: int, device,
                 views: tuple[int, int] | None, flip_perm: np.ndarray | None):
        num_clips, clip_len = views if views is not None else (1, frames)
        if num_clips * clip_len != frames:
            raise ConfigError(f"BatchHeatmaps: {frames} frames do not split into {num_clips} clips "
                              f"of {clip_len}")
        crops = 2 if flip_perm is not None else 1
        size = h * w
        per_sample = crops * num_clips * channels * clip_len * size
        t = torch.arange(frames, device=device)
        clip, step = t // clip_len, t % clip_len
        ch = torch.arange(channels, device=device)
        b = torch.arange(batch, device=device)[:, None, None] * per_sample

        def planes(chan: torch.Tensor) -> torch.Tensor:  # (B, T, C)
            return b + ((clip[:, None] * channels + chan[None, :]) * clip_len + step[:, None]) * size

        self.plane = planes(ch)
        self.mirror = None
        if flip_perm is not None:
            perm = torch.as_tensor(flip_perm, device=device)
            self.mirror = planes(perm) + num_clips * channels * clip_len * size
        self.shape = (batch, crops * num_clips, channels, clip_len, h, w)
        self.h, self.w = h, w
        if torch.device(device).type == "cpu":
            # calloc'd memory: pages are zeroed lazily by the kernel, only where something is drawn
            # (torch.zeros would memset the whole ~300 MB volume up front).
            self.out = torch.from_numpy(np.zeros(batch * per_sample, np.float32))
        else:
            self.out = torch.zeros(batch * per_sample, dtype=torch.float32, device=device)

    def scatter(self, plane_idx: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, vals: torch.Tensor) -> None:
        """Max-combine ``vals`` at (flat plane index into (B, T, C), y, x); any shapes that broadcast."""
        for table, x in ((self.plane, xs), (self.mirror, (self.w - 1) - xs)):
            if table is None:
                continue
            idx = table.reshape(-1)[plane_idx] + ys * self.w + x
            idx = idx.expand_as(vals) if idx.shape != vals.shape else idx
            self.out.scatter_reduce_(0, idx.reshape(-1), vals.reshape(-1), "amax")

    def result(self) -> torch.Tensor:
        return self.out.view(self.shape)


def _joint_cells(cx, cy, value, sigma: float, h: int, w: int):
    """Window cells (N, P, P) of joints centred at (cx, cy): y, x indices and values (0 outside)."""
    size = int(6 * sigma) + 2
    grid = torch.arange(size, device=cx.device)
    x0 = _trunc(cx.double() - 3 * sigma).clamp(min=0)
    x1 = (_trunc(cx.double() + 3 * sigma) + 1).clamp(max=w)
    y0 = _trunc(cy.double() - 3 * sigma).clamp(min=0)
    y1 = (_trunc(cy.double() + 3 * sigma) + 1).clamp(max=h)
    xs = x0[:, None] + grid
    ys = y0[:, None] + grid
    two_s2 = 2 * sigma * sigma
    gx = torch.exp(-(xs.float() - cx[:, None]).square() / two_s2)
    gy = torch.exp(-(ys.float() - cy[:, None]).square() / two_s2)
    valid = (ys < y1[:, None])[:, :, None] & (xs < x1[:, None])[:, None, :]
    vals = torch.where(valid, (gy * value[:, None])[:, :, None] * gx[:, None, :], 0.0)
    # Invalid cells are parked on a legal pixel with value 0.
    ys_c = torch.where(valid, ys[:, :, None], 0).clamp(max=h - 1)
    xs_c = torch.where(valid, xs[:, None, :], 0).clamp(max=w - 1)
    return ys_c, xs_c, vals


def _draw_joints(target: _Target, kp: torch.Tensor, value: torch.Tensor, sigma: float, eps: float) -> None:
    bsz, m, t, v = kp.shape[:4]
    plane = torch.arange(t * v, device=kp.device).view(1, 1, t, v).expand(bsz, m, t, v)
    plane = plane + torch.arange(bsz, device=kp.device).view(bsz, 1, 1, 1) * (t * v)
    keep = value >= eps
    cx, cy, val, pid = kp[..., 0][keep], kp[..., 1][keep], value[keep], plane[keep]
    if cx.numel() == 0:
        return
    ys, xs, vals = _joint_cells(cx, cy, val, sigma, target.h, target.w)
    target.scatter(pid[:, None, None].expand_as(vals), ys, xs, vals)


def _draw_limbs(target: _Target, kp: torch.Tensor, value: torch.Tensor, limbs: torch.Tensor,
                sigma: float, eps: float) -> None:
    bsz, m, t, v = kp.shape[:4]
    nl = len(limbs)
    h, w = target.h, target.w
    a, b = kp[..., limbs[:, 0], :], kp[..., limbs[:, 1], :]  # (B, M, T, L, 2)
    sa = value[..., limbs[:, 0]]
    lv = torch.minimum(sa, value[..., limbs[:, 1]])
    plane = torch.arange(t * nl, device=kp.device).view(1, 1, t, nl).expand(bsz, m, t, nl)
    plane = plane + torch.arange(bsz, device=kp.device).view(bsz, 1, 1, 1) * (t * nl)
    a64, b64 = a.double(), b.double()
    x0 = _trunc(torch.minimum(a64[..., 0], b64[..., 0]) - 3 * sigma).clamp(min=0)
    x1 = (_trunc(torch.maximum(a64[..., 0], b64[..., 0]) + 3 * sigma) + 1).clamp(max=w)
    y0 = _trunc(torch.minimum(a64[..., 1], b64[..., 1]) - 3 * sigma).clamp(min=0)
    y1 = (_trunc(torch.maximum(a64[..., 1], b64[..., 1]) + 3 * sigma) + 1).clamp(max=h)
    d2ab = (a[..., 0] - b[..., 0]).square() + (a[..., 1] - b[..., 1]).square()
    live = (lv >= eps) & (x1 > x0) & (y1 > y0)
    short = live & (d2ab < 1)  # degenerate limb: joint map at endpoint a with peak s_a
    seg = live & ~short
    if short.any():
        ys, xs, vals = _joint_cells(a[..., 0][short], a[..., 1][short], sa[short], sigma, h, w)
        target.scatter(plane[short][:, None, None].expand_as(vals), ys, xs, vals)
    if not seg.any():
        return
    wx, wy = (x1 - x0)[seg], (y1 - y0)[seg]
    order = torch.argsort(wx * wy, stable=True)
    f = dict(x0=x0[seg][order], y0=y0[seg][order], wx=wx[order], wy=wy[order], a=a[seg][order],
             b=b[seg][order], d2ab=d2ab[seg][order], value=lv[seg][order], plane=plane[seg][order])
    # Sorted by area, so equal-count chunks hold windows of similar size; within a chunk only the
    # cells inside each window are evaluated.
    n = len(order)
    for idx in torch.tensor_split(torch.arange(n, device=kp.device), min(max(n // 512, 1), 64)):
        _draw_segments(target, {k: v_[idx] for k, v_ in f.items()}, sigma)


def _draw_segments(target: _Target, f: dict, sigma: float) -> None:
    """A chunk of limb windows on a grid padded to its largest window; coordinates relative to
    endpoint a so per-axis terms are computed on (N, X) / (N, Y) and combined once."""
    dev = f["wx"].device
    gx = torch.arange(int(f["wx"].max()), device=dev)
    gy = torch.arange(int(f["wy"].max()), device=dev)
    xs = (f["x0"][:, None] + gx)[:, None, :]  # (N, 1, X)
    ys = (f["y0"][:, None] + gy)[:, :, None]  # (N, Y, 1)
    a, b = f["a"], f["b"]
    dx = xs.float() - a[:, 0, None, None]
    dy = ys.float() - a[:, 1, None, None]
    ex = (b[:, 0] - a[:, 0])[:, None, None]
    ey = (b[:, 1] - a[:, 1])[:, None, None]
    d2a = dx.square() + dy.square()
    d2b = (dx - ex).square() + (dy - ey).square()
    dab = f["d2ab"][:, None, None]
    proj = (d2a - d2b + dab) / 2 / dab
    # Squared distance to the projection a + t (b - a), used where 0 < t < 1.
    d2 = (dx - proj * ex).square() + (dy - proj * ey).square()
    d2 = torch.where(proj <= 0, d2a, torch.where(proj >= 1, d2b, d2))
    valid = (gy[None, :, None] < f["wy"][:, None, None]) & (gx[None, None, :] < f["wx"][:, None, None])
    vals = torch.where(valid, torch.exp(d2 / (-2 * sigma * sigma)) * f["value"][:, None, None], 0.0)
    # Cells outside a window are parked on the window's first pixel with value 0 (a no-op).
    ys_c = torch.where(valid, ys, f["y0"][:, None, None])
    xs_c = torch.where(valid, xs, f["x0"][:, None, None])
    target.scatter(f["plane"][:, None, None].expand_as(vals), ys_c, xs_c, vals)


def _numpy_batch(kp: torch.Tensor, value: torch.Tensor, h: int, w: int, limbs, sigma: float,
                 eps: float, views: tuple[int, int], flip_perm: np.ndarray | None) -> torch.Tensor:
    """CPU batches: the numpy per-sample drawing (faster there than one big scatter), written into
    slices of one batch volume."""
    bsz, t = kp.shape[0], kp.shape[2]
    channels = kp.shape[3] if limbs is None else len(limbs)
    crops = 2 if flip_perm is not None else 1
    out = np.zeros((bsz, crops * views[0], channels, views[1], h, w), np.float32)
    kp_np, value_np = kp.numpy(), value.numpy()
    for b in range(bsz):
        layout = Layout.views(views[0], views[1], channels, h, w, flip_perm, out=out[b])
        if limbs is None:
            draw_joints(layout, kp_np[b], value_np[b], sigma, eps)
        else:
            draw_limbs(layout, kp_np[b], value_np[b], limbs, sigma, eps)
    return torch.from_numpy(out)


def batch_heatmaps(keypoint: torch.Tensor, score: torch.Tensor | None, h: int, w: int, *,
                   limbs: Sequence[Sequence[int]] | None = None, sigma: float = 0.6,
                   eps: float = EPS_MMACTION2, views: tuple[int, int] | None = None,
                   flip_perm: np.ndarray | None = None, backend: str = "auto") -> torch.Tensor:
    """Heatmaps of a batch: keypoints (B, M, T, V, 2), scores (B, M, T, V) or None (all ones).

    ``backend='auto'`` draws CPU batches with the numpy per-sample code and other devices with
    one torch scatter; 'torch' / 'numpy' force one. Joint maps unless ``limbs`` is given. Returns (B, views, C, L, H, W): views = clips of
    ``views=(clips, L)`` (default one clip of all T frames), twice as many with ``flip_perm`` (the
    mirrored views last); without ``views`` and ``flip_perm`` simply (B, C, T, H, W).
    """
    if backend not in ("auto", "torch", "numpy"):
        raise ConfigError(f"batch_heatmaps: backend must be 'auto', 'torch' or 'numpy', got {backend!r}")
    kp = keypoint.float()
    bsz, m, t, v = kp.shape[:4]
    value = torch.ones(kp.shape[:4], device=kp.device) if score is None else score.float()
    if backend == "numpy" or (backend == "auto" and kp.device.type == "cpu"):
        if kp.device.type != "cpu":
            raise ConfigError("batch_heatmaps: the numpy backend needs CPU tensors")
        out = _numpy_batch(kp.contiguous(), value.contiguous(), h, w, limbs, sigma, eps,
                           views or (1, t), flip_perm)
        return out[:, 0] if views is None and flip_perm is None else out
    channels = v if limbs is None else len(limbs)
    target = _Target(bsz, t, channels, h, w, kp.device, views, flip_perm)
    if limbs is None:
        _draw_joints(target, kp, value, sigma, eps)
    else:
        limb_t = torch.as_tensor(np.asarray(limbs, dtype=np.int64).reshape(-1, 2), device=kp.device)
        _draw_limbs(target, kp, value, limb_t, sigma, eps)
    out = target.result()
    return out[:, 0] if views is None and flip_perm is None else out


class BatchHeatmaps(nn.Module):
    """GeneratePoseTarget (+ FormatShape('NCTHW_Heatmap')) for a collated batch from ``PackPoses``.

    ``forward(keypoint (B, M, T, V, 2), keypoint_score (B, M, T, V), img_shape (B, 2),
    person_mask (B, M) or None, num_clips=1)`` -> (B, views, C, L, H, W), views = clips (×2 with
    ``double``). Runs wherever the inputs are (CPU or GPU); no parameters.
    """

    def __init__(self, sigma: float = 0.6, use_score: bool = True, with_kp: bool = True,
                 with_limb: bool = False, skeletons=None, double: bool = False,
                 left_kp=layouts.COCO17_LEFT_KP, right_kp=layouts.COCO17_RIGHT_KP,
                 left_limb=layouts.DEFAULT_LEFT_LIMB, right_limb=layouts.DEFAULT_RIGHT_LIMB,
                 scaling: float = 1.0, eps: float = EPS_MMACTION2, backend: str = "auto"):
        super().__init__()
        self.backend = backend  # see batch_heatmaps
        if with_kp == with_limb:
            raise ConfigError("BatchHeatmaps: set exactly one of with_kp / with_limb")
        self.sigma, self.use_score, self.with_kp = float(sigma), use_score, with_kp
        self.limbs = None if with_kp else [tuple(l_) for l_ in (skeletons or layouts.DEFAULT_LIMBS)]
        self.double = double
        self.left, self.right = (left_kp, right_kp) if with_kp else (left_limb, right_limb)
        self.scaling, self.eps = float(scaling), eps

    @classmethod
    def from_config(cls, cfg: dict) -> "BatchHeatmaps":
        args = copy.deepcopy(cfg)
        if args.pop("type", "GeneratePoseTarget") != "GeneratePoseTarget":
            raise ConfigError(f"BatchHeatmaps needs a GeneratePoseTarget config, got {cfg!r}")
        try:
            return cls(**args)
        except TypeError as e:
            raise ConfigError(f"cannot build BatchHeatmaps from {cfg!r}: {e}") from e

    def forward(self, keypoint: torch.Tensor, keypoint_score: torch.Tensor, img_shape: torch.Tensor,
                person_mask: torch.Tensor | None = None, num_clips: int = 1) -> torch.Tensor:
        shapes = torch.as_tensor(img_shape).reshape(-1, 2)
        if not bool((shapes == shapes[0]).all()):
            raise ConfigError("BatchHeatmaps: samples of one batch must share img_shape (end the "
                              f"loader pipeline with a fixed-size Resize/CenterCrop); got {shapes.tolist()}")
        h, w = (int(s) for s in shapes[0].tolist())
        h, w = int(h * self.scaling + 0.5), int(w * self.scaling + 0.5)
        kp = keypoint[..., :2].float()
        if self.scaling != 1.0:
            kp = kp * self.scaling
        value = keypoint_score.float() if self.use_score else torch.ones_like(kp[..., 0])
        if person_mask is not None:  # padded persons never draw, even with use_score=False
            value = value * person_mask[:, :, None, None].to(value.dtype)
        channels = kp.shape[3] if self.with_kp else len(self.limbs)
        perm = flip_permutation(channels, self.left, self.right) if self.double else None
        t = kp.shape[2]
        return batch_heatmaps(kp, value, h, w, limbs=self.limbs, sigma=self.sigma, eps=self.eps,
                              views=(num_clips, t // num_clips), flip_perm=perm, backend=self.backend)


def split_pipeline(pipeline: Sequence[dict], max_persons: int = 2) -> tuple[list[dict], BatchHeatmaps]:
    """Cut a pipeline config into (loader part ending in PackPoses, BatchHeatmaps).

    Everything up to GeneratePoseTarget stays in the loader; GeneratePoseTarget and the
    FormatShape('NCTHW_Heatmap') after it move into ``BatchHeatmaps``; the packing steps after
    them (Collect/ToTensor/PackActionInputs) are replaced by ``PackPoses``.
    """
    types = [step.get("type") for step in pipeline]
    if "GeneratePoseTarget" not in types:
        raise ConfigError("split_pipeline: the pipeline has no GeneratePoseTarget step")
    i = types.index("GeneratePoseTarget")
    rest = types[i + 1:]
    allowed = {"FormatShape", "Collect", "ToTensor", "PackActionInputs"}
    if any(t not in allowed for t in rest):
        raise ConfigError(f"split_pipeline: cannot move steps {rest} after GeneratePoseTarget "
                          "off the loader")
    for step in pipeline[i + 1:]:
        if step.get("type") == "FormatShape" and step.get("input_format") != "NCTHW_Heatmap":
            raise ConfigError(f"split_pipeline: unsupported FormatShape {step!r}")
    loader = [copy.deepcopy(s) for s in pipeline[:i]] + [dict(type="PackPoses", max_persons=max_persons)]
    return loader, BatchHeatmaps.from_config(pipeline[i])
