"""``RandomRepeat``: a train-time tempo change, one clip played several times in a row.

Penn Action clips hold one or two repetitions of an exercise; a user's video of squats or push-ups
holds ten, and ``UniformSampleFrames`` squeezes whatever it gets into ``clip_len`` frames. So the
model meets a much faster-looking motion, sampled a frame or two per repetition. Tiling the clip
``k`` times along time before the sampler shows it the same, with labels that stay right.
Registered in ``posec3d.registry.TRANSFORMS``; uses numpy's global RNG like the other train transforms.
"""
from __future__ import annotations

import numpy as np

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


@TRANSFORMS.register()
class RandomRepeat:
    """Tile ``keypoint`` / ``keypoint_score`` ``k`` times along time, ``k`` drawn from ``repeats``
    with probabilities ``weights`` (uniform when omitted); ``total_frames`` follows. Goes before
    ``UniformSampleFrames``."""

    def __init__(self, repeats=(1, 2, 3), weights=None):
        self.repeats = [int(k) for k in repeats]
        if not self.repeats or min(self.repeats) < 1:
            raise ConfigError(f"RandomRepeat: repeats must be positive integers, got {repeats!r}")
        w = np.ones(len(self.repeats)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.repeats),) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"RandomRepeat: weights {weights!r} do not match repeats {repeats!r}")
        self.weights = w / w.sum()

    def __call__(self, results: dict) -> dict:
        k = self.repeats[int(np.random.choice(len(self.repeats), p=self.weights))]
        if k == 1:
            return results
        kp = np.asarray(results["keypoint"])
        results["keypoint"] = np.concatenate([kp] * k, axis=1)
        if results.get("keypoint_score") is not None:
            results["keypoint_score"] = np.concatenate([np.asarray(results["keypoint_score"])] * k, axis=1)
        results["total_frames"] = int(results.get("total_frames", kp.shape[1])) * k
        return results

    def __repr__(self) -> str:
        return f"RandomRepeat(repeats={self.repeats}, weights={self.weights.round(3).tolist()})"
