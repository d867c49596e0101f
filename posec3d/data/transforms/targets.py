"""GeneratePoseTarget: keypoints -> pseudo-heatmap volume (SPEC §2.8)."""
from __future__ import annotations

import numpy as np

from posec3d.data import skeletons as layouts
from posec3d.data.heatmap import EPS_MMACTION2, CanvasPool, Layout, draw_joints, draw_limbs, flip_permutation
from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


@TRANSFORMS.register()
class GeneratePoseTarget:
    """Draw joint (``with_kp``) and/or limb (``with_limb``) Gaussian maps, (T, C, H, W) float32.

    With both, the volume holds the V joint channels followed by the len(skeletons) limb channels
    (C = V + L), each drawn exactly as alone; the flip swaps left/right joints among the first V and
    left/right limbs among the last L. (mmaction2 also accepts both flags but draws the limbs into
    channels 0..L-1 over the joints and leaves the last L empty; pyskl refuses. Nothing released
    was trained that way, so the concatenation is the useful reading.)

    ``double=True`` appends the mirrored maps (W reversed, left/right channels swapped) after the
    originals: the test-time flip. ``scaling`` sizes the canvas relative to ``img_shape``.
    """

    def __init__(self, sigma: float = 0.6, use_score: bool = True, with_kp: bool = True,
                 with_limb: bool = False, skeletons=None, double: bool = False,
                 left_kp=layouts.COCO17_LEFT_KP, right_kp=layouts.COCO17_RIGHT_KP,
                 left_limb=layouts.DEFAULT_LEFT_LIMB, right_limb=layouts.DEFAULT_RIGHT_LIMB,
                 scaling: float = 1.0, eps: float = EPS_MMACTION2):
        if not (with_kp or with_limb):
            raise ConfigError("GeneratePoseTarget: set with_kp and/or with_limb (both are False)")
        self.sigma = float(sigma)
        self.use_score = use_score
        self.with_kp = with_kp
        self.with_limb = with_limb
        self.skeletons = tuple(tuple(int(j) for j in limb) for limb in (skeletons or layouts.DEFAULT_LIMBS))
        self.double = double
        self.left_kp, self.right_kp = tuple(left_kp), tuple(right_kp)
        self.left_limb, self.right_limb = tuple(left_limb), tuple(right_limb)
        self.scaling = float(scaling)
        self.eps = eps
        # Set by Compose when FormatShape('NCTHW_Heatmap') follows: write the final layout directly.
        self.format_views = False
        # Volumes reused once the previous sample is gone (see CanvasPool): no page faults per
        # sample. Off unless the owner of the samples turns it on (`Compose.reuse_heatmap_volumes`):
        # it is only safe when nothing writes into a volume after this transform.
        self.canvas: CanvasPool | None = None

    def canvas_shape(self, img_shape) -> tuple[int, int]:
        h, w = img_shape
        return int(h * self.scaling + 0.5), int(w * self.scaling + 0.5)

    def _check_layout(self, kind: str, joints: int, channels: int, left, right) -> None:
        """Flip pairs and limbs must fit the joint layout (COCO defaults on Penn Action do not)."""
        if kind == "limb":
            top = max((j for limb in self.skeletons for j in limb), default=-1)
            if top >= joints:
                raise ConfigError(f"GeneratePoseTarget: skeletons use joint {top} but keypoints have "
                                  f"{joints} joints")
        top = max((*left, *right), default=-1)
        if self.double and top >= channels:
            pairs = "left_kp/right_kp" if kind == "kp" else "left_limb/right_limb"
            raise ConfigError(f"GeneratePoseTarget: {pairs} name channel {top} but there are only "
                              f"{channels} {'joints' if kind == 'kp' else 'limbs'}; give the flip "
                              "pairs of this layout")

    def generate(self, keypoint: np.ndarray, score: np.ndarray | None, img_shape,
                 views: tuple[int, int] | None = None) -> np.ndarray:
        """Heatmaps (T, C, H, W) [(2T, ...) with double] from (M, T, V, 2) keypoints.

        ``views=(num_clips, clip_len)`` writes FormatShape('NCTHW_Heatmap')'s layout
        (crops * clips, C, L, H, W) directly instead.
        """
        h, w = self.canvas_shape(img_shape)
        # float32 copy, scaled: mmaction2 evaluates everything in float32 (SPEC §2.8).
        kp = np.asarray(keypoint, dtype=np.float32)[..., :2]
        if self.scaling != 1.0:
            kp = kp * self.scaling
        if not self.use_score:
            score = None
        kinds = [kind for kind, on in (("kp", self.with_kp), ("limb", self.with_limb)) if on]
        if len(kinds) == 1:
            return self._draw(kinds[0], kp, score, h, w, views, self.canvas)
        # Joints then limbs along the channel axis (axis 1 in both layouts); the pool's volumes
        # have one kind's shape, so the parts are drawn fresh and joined.
        return np.concatenate([self._draw(kind, kp, score, h, w, views, None) for kind in kinds], axis=1)

    def _draw(self, kind: str, kp: np.ndarray, score, h: int, w: int, views, canvas) -> np.ndarray:
        if kind == "kp":
            channels, left, right = kp.shape[2], self.left_kp, self.right_kp
        else:
            channels, left, right = len(self.skeletons), self.left_limb, self.right_limb
        self._check_layout(kind, kp.shape[2], channels, left, right)
        perm = flip_permutation(channels, left, right) if self.double else None
        if views is None:
            layout = Layout.frames(kp.shape[1], channels, h, w, perm, canvas=canvas)
        else:
            layout = Layout.views(views[0], views[1], channels, h, w, perm, canvas=canvas)
        if kind == "kp":
            draw_joints(layout, kp, score, self.sigma, self.eps)
        else:
            draw_limbs(layout, kp, score, self.skeletons, self.sigma, self.eps)
        return layout.array

    def __call__(self, results: dict) -> dict:
        key = "imgs" if "imgs" not in results else "heatmap_imgs"
        views = None
        if self.format_views and key == "imgs" and isinstance(results.get("clip_len"), int):
            views = (results["num_clips"], results["clip_len"])
            if views[0] * views[1] != results["keypoint"].shape[1]:
                views = None
        results[key] = self.generate(results["keypoint"], results.get("keypoint_score"),
                                     results["img_shape"], views)
        if views is not None:
            results["imgs_format"] = "NCTHW_Heatmap"  # FormatShape has nothing left to do
        return results

    def __repr__(self) -> str:
        kind = "+".join(k for k, on in (("kp", self.with_kp), (f"limb({len(self.skeletons)})", self.with_limb)) if on)
        return f"GeneratePoseTarget(sigma={self.sigma}, {kind}, double={self.double}, scaling={self.scaling})"
