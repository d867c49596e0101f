"""Pseudo-heatmaps (SPEC §2.8), vectorised numpy, one sample at a time.

Semantics match mmaction2's GeneratePoseTarget exactly: a Gaussian of peak ``score`` around each
keypoint (or along each limb segment) evaluated in float32 at integer pixel centres, only inside
the window ``[int(c - 3σ), int(c + 3σ) + 1)`` (``int`` truncates toward zero, so windows are
asymmetric) clipped to the canvas; persons combine by element-wise max.

Instead of looping over persons × frames × joints, every window is evaluated at once on a small
fixed-size grid, the cells outside each window are masked away, and the rest is scattered into
the canvas with one fancy-index max per person (indices within one person never collide: each
(frame, channel) gets one window per person).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

EPS_MMACTION2 = 1e-4  # mmaction2 skips peaks below this; pyskl uses 1e-3
# Limb windows are evaluated in chunks of similar size so that padding wastes little work.
_LIMB_CHUNK_ITEMS = 256


def _trunc_int(a: np.ndarray) -> np.ndarray:
    """Python ``int()`` on each element: truncation toward zero."""
    return np.trunc(a).astype(np.int64)


def _scatter_max(canvas_flat: np.ndarray, idx: np.ndarray, val: np.ndarray, first: bool) -> None:
    if first:  # an all-zero canvas: max(0, v) == v because v >= 0
        canvas_flat[idx] = val
    else:
        canvas_flat[idx] = np.maximum(canvas_flat[idx], val)


def _joint_windows(cx: np.ndarray, cy: np.ndarray, value: np.ndarray, sigma: float,
                   h: int, w: int):
    """Patches of all joint windows: (flat pixel offset within a channel plane, value), masked.

    ``cx``, ``cy``, ``value``: (N,) float32. Returns (plane_offset (N, P, P), patch (N, P, P),
    valid (N, P, P)).
    """
    size = int(6 * sigma) + 2  # the widest a truncated window can be
    grid = np.arange(size)
    # Window bounds as mmaction2 computes them under numpy 1.x: float32 centre minus a Python
    # float gives a float64 scalar.
    cx64, cy64 = cx.astype(np.float64), cy.astype(np.float64)
    x0 = np.maximum(_trunc_int(cx64 - 3 * sigma), 0)
    x1 = np.minimum(_trunc_int(cx64 + 3 * sigma) + 1, w)
    y0 = np.maximum(_trunc_int(cy64 - 3 * sigma), 0)
    y1 = np.minimum(_trunc_int(cy64 + 3 * sigma) + 1, h)
    xs = x0[:, None] + grid  # (N, P)
    ys = y0[:, None] + grid
    two_s2 = np.float32(2 * sigma * sigma)
    gx = np.exp(-np.square(xs.astype(np.float32) - cx[:, None]) / two_s2)
    gy = np.exp(-np.square(ys.astype(np.float32) - cy[:, None]) / two_s2)
    patch = (gy * value[:, None])[:, :, None] * gx[:, None, :]
    valid = (ys < y1[:, None])[:, :, None] & (xs < x1[:, None])[:, None, :]
    offset = ys[:, :, None] * w + xs[:, None, :]
    return offset, patch, valid


def joint_heatmaps(keypoint: np.ndarray, score: np.ndarray | None, h: int, w: int,
                   sigma: float = 0.6, eps: float = EPS_MMACTION2,
                   out: np.ndarray | None = None) -> np.ndarray:
    """Joint maps (T, V, h, w) float32 from keypoints (M, T, V, 2) and scores (M, T, V) or None."""
    kp = np.asarray(keypoint, dtype=np.float32)
    m, t, v = kp.shape[:3]
    if out is None:
        out = np.zeros((t, v, h, w), np.float32)
    flat = out.reshape(-1)
    sc = np.ones((m, t, v), np.float32) if score is None else np.asarray(score, np.float32)
    plane = (np.arange(t)[:, None] * v + np.arange(v)) * (h * w)  # (T, V) channel-plane starts
    first = True
    for p in range(m):
        keep = sc[p] >= eps
        if not keep.any():
            continue
        cx, cy, val = kp[p, ..., 0][keep], kp[p, ..., 1][keep], sc[p][keep]
        offset, patch, valid = _joint_windows(cx, cy, val, sigma, h, w)
        idx = (plane[keep][:, None, None] + offset)[valid]
        _scatter_max(flat, idx, patch[valid], first)
        first = False
    return out


def limb_heatmaps(keypoint: np.ndarray, score: np.ndarray | None, limbs: Sequence[Sequence[int]],
                  h: int, w: int, sigma: float = 0.6, eps: float = EPS_MMACTION2,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Limb maps (T, L, h, w) float32: Gaussian of the distance to each segment (a, b)."""
    kp = np.asarray(keypoint, dtype=np.float32)
    m, t, v = kp.shape[:3]
    limbs = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    nl = len(limbs)
    if out is None:
        out = np.zeros((t, nl, h, w), np.float32)
    flat = out.reshape(-1)
    sc = np.ones((m, t, v), np.float32) if score is None else np.asarray(score, np.float32)
    plane = (np.arange(t)[:, None] * nl + np.arange(nl)) * (h * w)  # (T, L)
    two_s2 = np.float32(2 * sigma * sigma)
    first = True
    for p in range(m):
        a, b = kp[p][:, limbs[:, 0]], kp[p][:, limbs[:, 1]]  # (T, L, 2)
        sa, sb = sc[p][:, limbs[:, 0]], sc[p][:, limbs[:, 1]]
        value = np.minimum(sa, sb)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        x0 = np.maximum(_trunc_int(np.minimum(a64[..., 0], b64[..., 0]) - 3 * sigma), 0)
        x1 = np.minimum(_trunc_int(np.maximum(a64[..., 0], b64[..., 0]) + 3 * sigma) + 1, w)
        y0 = np.maximum(_trunc_int(np.minimum(a64[..., 1], b64[..., 1]) - 3 * sigma), 0)
        y1 = np.minimum(_trunc_int(np.maximum(a64[..., 1], b64[..., 1]) + 3 * sigma) + 1, h)
        d2ab = np.square(a[..., 0] - b[..., 0]) + np.square(a[..., 1] - b[..., 1])
        live = (value >= eps) & (x1 > x0) & (y1 > y0)
        short = live & (d2ab < 1)  # degenerate limb: a joint map at endpoint a, peak s_a
        seg = live & ~short
        idx_parts, val_parts = [], []
        if short.any():
            offset, patch, valid = _joint_windows(a[..., 0][short], a[..., 1][short], sa[short],
                                                  sigma, h, w)
            idx_parts.append((plane[short][:, None, None] + offset)[valid])
            val_parts.append(patch[valid])
        if seg.any():
            wx, wy = x1 - x0, y1 - y0
            order = np.argsort((wx * wy)[seg], kind="stable")
            fields = [arr[seg][order] for arr in (x0, y0, wx, wy, d2ab, value, plane)]
            aa, bb = a[seg][order], b[seg][order]
            # Sorted by area, so equal-count chunks hold windows of similar size.
            n_chunks = min(max(len(order) // _LIMB_CHUNK_ITEMS, 1), 16)
            for sl in np.array_split(np.arange(len(order)), n_chunks):
                i_part, v_part = _segment_windows(
                    *(f[sl] for f in fields[:4]), aa[sl], bb[sl], *(f[sl] for f in fields[4:]),
                    w, two_s2)
                idx_parts.append(i_part)
                val_parts.append(v_part)
        if idx_parts:
            _scatter_max(flat, np.concatenate(idx_parts), np.concatenate(val_parts), first)
            first = False
    return out


def _segment_windows(x0, y0, wx, wy, a, b, d2ab, value, plane, w, two_s2):
    """Evaluate a chunk of limb windows padded to the chunk's largest window."""
    gx = np.arange(int(wx.max()))
    gy = np.arange(int(wy.max()))
    xs = (x0[:, None] + gx).astype(np.float32)  # (N, X)
    ys = (y0[:, None] + gy).astype(np.float32)  # (N, Y)
    dxa = np.square(xs - a[:, 0:1])[:, None, :]
    dya = np.square(ys - a[:, 1:2])[:, :, None]
    dxb = np.square(xs - b[:, 0:1])[:, None, :]
    dyb = np.square(ys - b[:, 1:2])[:, :, None]
    d2a = dya + dxa  # (N, Y, X)
    d2b = dyb + dxb
    d2ab_ = d2ab[:, None, None]
    proj = (d2a - d2b + d2ab_) / np.float32(2) / d2ab_
    # Squared distance to the projection a + t (b - a) for 0 < t < 1.
    px = a[:, 0, None, None] + proj * (b[:, 0] - a[:, 0])[:, None, None]
    py = a[:, 1, None, None] + proj * (b[:, 1] - a[:, 1])[:, None, None]
    d2seg = np.square(xs[:, None, :] - px) + np.square(ys[:, :, None] - py)
    d2 = np.where(proj <= 0, d2a, np.where(proj >= 1, d2b, d2seg))
    patch = np.exp(-d2 / two_s2) * value[:, None, None]
    valid = (gy[None, :, None] < wy[:, None, None]) & (gx[None, None, :] < wx[:, None, None])
    offset = (y0[:, None, None] + gy[None, :, None]) * w + (x0[:, None, None] + gx[None, None, :])
    return (plane[:, None, None] + offset)[valid], patch[valid]


def flip_heatmaps(heatmap: np.ndarray, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
    """(T, C, H, W) maps mirrored along W with left/right channels swapped (test-time flip)."""
    perm = list(range(heatmap.shape[1]))
    for l_, r_ in zip(left, right):
        perm[l_], perm[r_] = r_, l_
    return heatmap[:, perm, :, ::-1]
