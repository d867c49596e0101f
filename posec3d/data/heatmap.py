"""Pseudo-heatmaps (SPEC §2.8), vectorised numpy, one sample at a time.

Semantics match mmaction2's GeneratePoseTarget exactly: a Gaussian of peak ``score`` around each
keypoint (or along each limb segment) evaluated in float32 at integer pixel centres, only inside
the window ``[int(c - 3σ), int(c + 3σ) + 1)`` (``int`` truncates toward zero, so windows are
asymmetric) clipped to the canvas; persons combine by element-wise max.

Instead of looping over persons × frames × joints, all windows of one person are evaluated at once
on small padded grids; cells outside each window are masked away and the rest is scattered into
the output with one fancy-index max (within one person every (frame, channel) plane receives one
window, so indices never collide). The output layout is free (``Layout``): the test pipeline
writes straight into the final (views, C, T, H, W) volume, flipped copy included, which saves
several passes over a 270 MB array per sample.
"""
from __future__ import annotations

import functools
import sys
import threading
from typing import Sequence

import numpy as np

EPS_MMACTION2 = 1e-4  # mmaction2 skips peaks below this; pyskl uses 1e-3
# Limb windows are evaluated in chunks of similar size so that padding wastes little work.
_LIMB_CHUNK_ITEMS = 256


def flip_permutation(num_channels: int, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
    """Channel permutation of a horizontal flip: left[i] <-> right[i]."""
    perm = np.arange(num_channels)
    perm[list(left)], perm[list(right)] = list(right), list(left)
    return perm


class Layout:
    """Where the (frame, channel) planes of a heatmap volume live in one flat float32 buffer.

    ``plane[t, c]`` is the flat offset of plane (t, c); ``mirror[t, c]``, if set, is where the
    horizontally mirrored copy of that plane goes (test-time flip).
    """

    def __init__(self, shape_or_array: tuple[int, ...] | np.ndarray, plane: np.ndarray, h: int, w: int,
                 mirror: np.ndarray | None = None, canvas: "CanvasPool | None" = None):
        """A new zero volume of the given shape (from ``canvas`` when given), or an existing zero,
        C-contiguous float32 array."""
        self.written: list[np.ndarray] | None = None
        if canvas is not None and not isinstance(shape_or_array, np.ndarray):
            shape_or_array, self.written = canvas.take(tuple(shape_or_array))
        if isinstance(shape_or_array, np.ndarray):
            if not (shape_or_array.flags.c_contiguous and shape_or_array.dtype == np.float32):
                raise ValueError("Layout needs a C-contiguous float32 array")
            self.array = shape_or_array
        else:
            self.array = np.zeros(shape_or_array, np.float32)
        self.flat = self.array.reshape(-1)
        self.plane = plane
        self.mirror = mirror
        self.h, self.w = h, w

    @classmethod
    def frames(cls, t: int, c: int, h: int, w: int, flip_perm: np.ndarray | None = None,
               out: np.ndarray | None = None, canvas: "CanvasPool | None" = None) -> "Layout":
        """(T, C, H, W); with ``flip_perm`` (2T, C, H, W), the mirrored frames after the originals."""
        perm = None if flip_perm is None else tuple(int(p) for p in flip_perm)
        # (T, C, H, W) is the views layout with T clips of one frame: the same plane offsets.
        plane, mirror, shape = _view_tables(t, 1, c, h, w, perm)
        return cls(shape[:2] + shape[3:] if out is None else out, plane, h, w, mirror, canvas)

    @classmethod
    def views(cls, num_clips: int, clip_len: int, c: int, h: int, w: int,
              flip_perm: np.ndarray | None = None, out: np.ndarray | None = None,
              canvas: "CanvasPool | None" = None) -> "Layout":
        """(crops * clips, C, L, H, W), FormatShape('NCTHW_Heatmap')'s output, written directly."""
        perm = None if flip_perm is None else tuple(int(p) for p in flip_perm)
        plane, mirror, shape = _view_tables(num_clips, clip_len, c, h, w, perm)
        return cls(shape if out is None else out, plane, h, w, mirror, canvas)

    def scatter(self, planes: np.ndarray, y0: np.ndarray, x0: np.ndarray, vals: np.ndarray,
                valid: np.ndarray | None, assign: bool = False) -> None:
        """Max-combine N windows into the volume: window ``i`` covers rows ``y0[i] + 0..Y-1`` and
        columns ``x0[i] + 0..X-1`` of plane ``planes[i]`` (an index into ``plane.flat``), with the
        values ``vals[:, :, i]`` ((Y, X, N): the window index last, so that every numpy loop runs
        over N, not over a window's few cells).

        ``valid`` (Y, X, N) selects the cells to write; None means every cell lies on the canvas
        and the ones outside a window hold 0, which a max into non-negative maps leaves unchanged.
        ``assign``: the target cells are known to be zero (first person drawn), so plain stores do.
        Within one call every (plane, y, x) must occur at most once.
        """
        ny, nx = vals.shape[:2]
        if valid is not None:
            vals = vals[valid]
        down = np.arange(ny)[:, None, None] * self.w
        for table, step in ((self.plane, 1), (self.mirror, -1)):
            if table is None:
                continue
            # The test-time flip reverses pixel columns: x -> w - 1 - x.
            first = x0 if step == 1 else (self.w - 1) - x0
            start = table.reshape(-1)[planes] + y0 * self.w + first
            idx = (down + step * np.arange(nx)[None, :, None]) + start
            if valid is not None:
                idx = idx[valid]
            if self.written is not None:
                self.written.append(idx)
            if assign:
                self.flat[idx] = vals
            else:
                self.flat[idx] = np.maximum(self.flat[idx], vals)


# The plane offset tables depend only on the volume's geometry: made once per geometry (every
# sample of a pipeline shares it), read-only so that no caller can change a shared table.
@functools.lru_cache(maxsize=64)
def _view_tables(num_clips: int, clip_len: int, c: int, h: int, w: int, flip_perm: tuple[int, ...] | None):
    size = h * w
    t = np.arange(num_clips * clip_len)
    clip, step = t // clip_len, t % clip_len
    plane = ((clip[:, None] * c + np.arange(c)) * clip_len + step[:, None]) * size
    mirror = None
    if flip_perm is not None:
        mirror = num_clips * c * clip_len * size + (
            (clip[:, None] * c + np.asarray(flip_perm)[None, :]) * clip_len + step[:, None]) * size
    crops = 2 if flip_perm is not None else 1
    return _read_only(plane), _read_only(mirror), (crops * num_clips, c, clip_len, h, w)


def _read_only(a: np.ndarray | None) -> np.ndarray | None:
    if a is not None:
        a.flags.writeable = False
    return a


class CanvasPool:
    """Zero float32 volumes for heatmaps, reused from one sample to the next.

    A fresh volume costs its page faults: ~50 ms for the 267 MB NTU test volume (10 clips x flip,
    64x64), several times the drawing itself, and a calloc-sized memset for training volumes. A
    pooled volume is handed out again only when nothing but the pool refers to it any more (the
    sample was copied into a batch, or dropped), and then only the cells its last sample wrote are
    cleared, so it is all zeros again. This relies on what posec3d's pipelines do: after
    `Layout.scatter` the volume is only read, wrapped (``torch.from_numpy``) or copied, never
    written in place. Not pickled: a copied transform starts with an empty pool.
    """

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._volumes: list[np.ndarray] = []
        self._written: list[list[np.ndarray]] = []
        self._lock = threading.Lock()

    def take(self, shape: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        """A zero C-contiguous float32 volume of ``shape`` and the list its writes are recorded in."""
        with self._lock:
            for i in range(len(self._volumes)):
                # Two references when free: the pool's list and getrefcount's own argument (no
                # local name is bound to it before the check, which would count as a third).
                if self._volumes[i].shape == shape and sys.getrefcount(self._volumes[i]) == 2:
                    volume = self._volumes[i]
                    flat = volume.reshape(-1)
                    for idx in self._written[i]:
                        flat[idx] = 0.0
                    self._written[i] = []
                    return volume, self._written[i]
            volume = np.zeros(shape, np.float32)
            written: list[np.ndarray] = []
            if sum(v.nbytes for v in self._volumes) + volume.nbytes <= self.max_bytes:
                self._volumes.append(volume)
                self._written.append(written)
            return volume, written

    def __getstate__(self) -> dict:
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])


def _trunc_int(a: np.ndarray) -> np.ndarray:
    """Python ``int()`` on each element: truncation toward zero."""
    return np.trunc(a).astype(np.int64)


def _joint_windows(cx: np.ndarray, cy: np.ndarray, value: np.ndarray, sigma: float, h: int, w: int):
    """Padded windows of joints centred at (cx, cy) (N,), for `Layout.scatter`: y0 (N,), x0 (N,),
    vals (P, P, N) and valid (P, P, N), or valid None when every padded window fits on the canvas
    (then the cells outside a window hold 0 and no mask is needed)."""
    size = int(6 * sigma) + 2  # the widest a truncated window can be
    grid = np.arange(size)[:, None]
    # Window bounds as mmaction2 computes them under numpy 1.x: a float32 centre minus a Python
    # float gives a float64 scalar.
    cx64, cy64 = cx.astype(np.float64), cy.astype(np.float64)
    x0 = np.maximum(_trunc_int(cx64 - 3 * sigma), 0)
    x1 = np.minimum(_trunc_int(cx64 + 3 * sigma) + 1, w)
    y0 = np.maximum(_trunc_int(cy64 - 3 * sigma), 0)
    y1 = np.minimum(_trunc_int(cy64 + 3 * sigma) + 1, h)
    fits = size <= w and size <= h
    lo_x, lo_y = x0, y0
    if fits:
        # Slide each padded window inside the canvas; its cells outside [x0, x1) x [y0, y1) get 0.
        x0, y0 = np.minimum(lo_x, w - size), np.minimum(lo_y, h - size)
    xs = grid + x0  # (P, N)
    ys = grid + y0
    two_s2 = np.float32(2 * sigma * sigma)
    gx = np.exp(-np.square(xs.astype(np.float32) - cx) / two_s2)
    gy = np.exp(-np.square(ys.astype(np.float32) - cy) / two_s2) * value
    if not fits:
        valid = (ys < y1)[:, None, :] & (xs < x1)[None, :, :]
        return y0, x0, gy[:, None, :] * gx[None, :, :], valid
    # np.where, not a product with the mask: a NaN centre must give 0, as its empty window does.
    gx = np.where((xs >= lo_x) & (xs < x1), gx, np.float32(0))
    gy = np.where((ys >= lo_y) & (ys < y1), gy, np.float32(0))
    return y0, x0, gy[:, None, :] * gx[None, :, :], None


def draw_joints(layout: Layout, keypoint: np.ndarray, score: np.ndarray | None,
                sigma: float = 0.6, eps: float = EPS_MMACTION2) -> None:
    """Joint maps of (M, T, V, 2) float32 keypoints into ``layout`` (C = V)."""
    m, t, v = keypoint.shape[:3]
    sc = np.ones((m, t, v), np.float32) if score is None else np.asarray(score, np.float32)
    plane_ids = np.arange(t * v).reshape(t, v)
    assign = True
    for p in range(m):
        keep = sc[p] >= eps
        if not keep.any():
            continue
        windows = _joint_windows(keypoint[p, ..., 0][keep], keypoint[p, ..., 1][keep], sc[p][keep],
                                 sigma, layout.h, layout.w)
        layout.scatter(plane_ids[keep], *windows, assign=assign)
        assign = False


def draw_limbs(layout: Layout, keypoint: np.ndarray, score: np.ndarray | None,
               limbs: Sequence[Sequence[int]], sigma: float = 0.6, eps: float = EPS_MMACTION2) -> None:
    """Limb maps (Gaussian of the distance to each segment a-b) into ``layout`` (C = len(limbs))."""
    m, t, v = keypoint.shape[:3]
    limbs = np.asarray(limbs, dtype=np.int64).reshape(-1, 2)
    nl = len(limbs)
    h, w = layout.h, layout.w
    sc = np.ones((m, t, v), np.float32) if score is None else np.asarray(score, np.float32)
    plane_ids = np.arange(t * nl).reshape(t, nl)
    two_s2 = np.float32(2 * sigma * sigma)
    assign = True
    for p in range(m):
        a, b = keypoint[p][:, limbs[:, 0]], keypoint[p][:, limbs[:, 1]]  # (T, L, 2)
        sa = sc[p][:, limbs[:, 0]]
        value = np.minimum(sa, sc[p][:, limbs[:, 1]])
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        x0 = np.maximum(_trunc_int(np.minimum(a64[..., 0], b64[..., 0]) - 3 * sigma), 0)
        x1 = np.minimum(_trunc_int(np.maximum(a64[..., 0], b64[..., 0]) + 3 * sigma) + 1, w)
        y0 = np.maximum(_trunc_int(np.minimum(a64[..., 1], b64[..., 1]) - 3 * sigma), 0)
        y1 = np.minimum(_trunc_int(np.maximum(a64[..., 1], b64[..., 1]) + 3 * sigma) + 1, h)
        d2ab = np.square(a[..., 0] - b[..., 0]) + np.square(a[..., 1] - b[..., 1])
        live = (value >= eps) & (x1 > x0) & (y1 > y0)
        short = live & (d2ab < 1)  # degenerate limb: a joint map at endpoint a, peak s_a
        seg = live & ~short
        if short.any():
            windows = _joint_windows(a[..., 0][short], a[..., 1][short], sa[short], sigma, h, w)
            layout.scatter(plane_ids[short], *windows, assign=assign)
        if seg.any():
            wx, wy = x1 - x0, y1 - y0
            order = np.argsort((wx * wy)[seg], kind="stable")
            f = {k: arr[seg][order] for k, arr in dict(x0=x0, y0=y0, wx=wx, wy=wy, d2ab=d2ab,
                                                         value=value, a=a, b=b, pid=plane_ids).items()}
            # Sorted by area, so equal-count chunks hold windows of similar size.
            n_chunks = min(max(len(order) // _LIMB_CHUNK_ITEMS, 1), 16)
            for sl in np.array_split(np.arange(len(order)), n_chunks):
                chunk = {k: arr[sl] for k, arr in f.items()}
                layout.scatter(chunk["pid"], *_segment_windows(chunk, two_s2), assign=assign)
        if live.any():
            assign = False  # planes of one person are disjoint, so all its parts could assign


def _segment_windows(f: dict, two_s2: np.float32):
    """Cells of a chunk of limb windows, evaluated on a grid padded to the chunk's largest window;
    the window index is the last axis (see `Layout.scatter`).

    Coordinates are taken relative to endpoint a, so the per-axis parts are computed on (X, N) and
    (Y, N) arrays and only combined on the (Y, X, N) grid.
    """
    gx = np.arange(int(f["wx"].max()))[:, None]
    gy = np.arange(int(f["wy"].max()))[:, None]
    xs = gx + f["x0"]  # (X, N)
    ys = gy + f["y0"]  # (Y, N)
    a, b = f["a"], f["b"]
    dx = (xs.astype(np.float32) - a[:, 0])[None, :, :]  # (1, X, N)
    dy = (ys.astype(np.float32) - a[:, 1])[:, None, :]  # (Y, 1, N)
    ex = b[:, 0] - a[:, 0]
    ey = b[:, 1] - a[:, 1]
    d2a = np.square(dx) + np.square(dy)
    d2b = np.square(dx - ex) + np.square(dy - ey)
    d2ab = f["d2ab"]
    proj = (d2a - d2b + d2ab) / np.float32(2) / d2ab
    # Squared distance to the projection a + t (b - a), used where 0 < t < 1.
    d2 = np.square(dx - proj * ex) + np.square(dy - proj * ey)
    d2 = np.where(proj <= 0, d2a, np.where(proj >= 1, d2b, d2))
    vals = np.exp(d2 / -two_s2) * f["value"]
    valid = (gy < f["wy"])[:, None, :] & (gx < f["wx"])[None, :, :]
    return f["y0"], f["x0"], vals, valid


def joint_heatmaps(keypoint: np.ndarray, score: np.ndarray | None, h: int, w: int,
                   sigma: float = 0.6, eps: float = EPS_MMACTION2) -> np.ndarray:
    """Joint maps (T, V, h, w) float32 from keypoints (M, T, V, 2) and scores (M, T, V) or None."""
    kp = np.asarray(keypoint, dtype=np.float32)
    layout = Layout.frames(kp.shape[1], kp.shape[2], h, w)
    draw_joints(layout, kp, score, sigma, eps)
    return layout.array


def limb_heatmaps(keypoint: np.ndarray, score: np.ndarray | None, limbs: Sequence[Sequence[int]],
                  h: int, w: int, sigma: float = 0.6, eps: float = EPS_MMACTION2) -> np.ndarray:
    """Limb maps (T, L, h, w) float32."""
    kp = np.asarray(keypoint, dtype=np.float32)
    layout = Layout.frames(kp.shape[1], len(limbs), h, w)
    draw_limbs(layout, kp, score, limbs, sigma, eps)
    return layout.array


def flip_heatmaps(heatmap: np.ndarray, left: Sequence[int], right: Sequence[int]) -> np.ndarray:
    """(T, C, H, W) maps mirrored along W with left/right channels swapped (test-time flip)."""
    return heatmap[:, flip_permutation(heatmap.shape[1], left, right), :, ::-1]
