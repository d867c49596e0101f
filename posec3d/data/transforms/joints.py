"""MapJoints: bring other joint layouts (Penn Action, Kinect-20, JHMDB, ...) to COCO-17."""
from __future__ import annotations

import numpy as np

from posec3d.errors import AnnotationError, ConfigError
from posec3d.registry import TRANSFORMS


@TRANSFORMS.register()
class MapJoints:
    """Re-index joints: ``mappings={V_in: [source index or -1 per output joint]}``.

    -1 (no such joint in the source) gives zero coordinates and score 0. An input that already has
    the output joint count passes through unchanged. ``drop`` zeroes the listed output joints in
    every sample (e.g. face points that one layout lacks), so all sources look alike.
    """

    def __init__(self, mappings: dict, drop=(), num_joints: int | None = None):
        self.mappings = {}
        for v_in, idx in (mappings or {}).items():
            idx = np.asarray(idx, dtype=np.int64)
            if idx.ndim != 1 or (idx >= int(v_in)).any() or (idx < -1).any():
                raise ConfigError(f"MapJoints: mapping for {v_in} joints must list indices in "
                                  f"-1..{int(v_in) - 1}, got {idx.tolist()}")
            self.mappings[int(v_in)] = idx
        sizes = {len(i) for i in self.mappings.values()} | ({num_joints} if num_joints else set())
        if len(sizes) > 1:
            raise ConfigError(f"MapJoints: mappings disagree on the output joint count: {sorted(sizes)}")
        self.num_joints = sizes.pop() if sizes else 17
        self.drop = [int(d) for d in drop]
        if any(not 0 <= d < self.num_joints for d in self.drop):
            raise ConfigError(f"MapJoints: drop indices must be in 0..{self.num_joints - 1}, got {self.drop}")

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        v_in = kp.shape[-2]
        score = results.get("keypoint_score")
        if score is None:
            score = np.ones(kp.shape[:-1], np.float32)
        if v_in in self.mappings:
            idx = self.mappings[v_in]
            missing = idx < 0
            kp = kp[..., np.where(missing, 0, idx), :]
            score = score[..., np.where(missing, 0, idx)]
            kp[..., missing, :] = 0
            score[..., missing] = 0
        elif v_in != self.num_joints:
            name = results.get("frame_dir", results.get("filename", "<sample>"))
            raise AnnotationError(f"sample {name!r}: {v_in} joints, but MapJoints knows layouts with "
                                  f"{sorted(self.mappings)} joints (output {self.num_joints})")
        else:
            kp, score = kp.copy(), score.copy()
        if self.drop:
            kp[..., self.drop, :] = 0
            score[..., self.drop] = 0
        results["keypoint"] = kp
        results["keypoint_score"] = score
        return results
