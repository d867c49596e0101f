"""Temporal sampling and decoding: UniformSampleFrames, PoseDecode, DecompressPose (SPEC §1.3, §2.1-2.2)."""
from __future__ import annotations

import numpy as np

from posec3d.errors import AnnotationError, ConfigError, short_repr
from posec3d.registry import TRANSFORMS


def _sample_name(results: dict) -> str:
    return repr(results.get("frame_dir", results.get("filename", "<sample>")))


def clip_indices(num_frames: int, clip_len: int, test_mode: bool, clip_idx: int,
                 num_clips: int, rng=np.random) -> np.ndarray:
    """Frame indices of one clip (before wrapping mod T), drawing from ``rng``.

    ``rng`` is numpy's legacy global RNG (the module) or a ``RandomState``: the exact calls (and
    their order) are part of the contract: seeded test sampling must give the same indices as
    pyskl / mmaction2.
    """
    t, length = num_frames, clip_len
    if t < length:
        if test_mode:
            start = clip_idx if t < num_clips else clip_idx * t // num_clips
        else:
            start = rng.randint(0, t)
        return np.arange(start, start + length)
    if t < 2 * length:
        # Spread T-L one-frame skips over the L+1 gaps between consecutive frames.
        skips = np.zeros(length + 1, dtype=np.int64)
        skips[rng.choice(length + 1, t - length, replace=False)] = 1
        return np.arange(length) + np.cumsum(skips)[:-1]
    bounds = np.arange(length + 1, dtype=np.int64) * t // length  # exact integer k*t//L
    return bounds[:-1] + rng.randint(np.diff(bounds))


@TRANSFORMS.register("UniformSample")  # pyskl's GCN configs spell it so
class UniformSampleFrames:
    """Split the video into ``clip_len`` segments and take one frame from each, ``num_clips`` times.

    Two RNG streams (SPEC §2.1): ``seeding='pyskl'`` draws one extra ``np.random.rand()`` per clip
    (pyskl's ``p_interval`` code) and reads test mode from ``results['test_mode']``;
    ``seeding='mmaction2'`` takes test mode from the ``test_mode`` argument. By default the
    mmaction2 stream is used when ``test_mode`` is given (mmaction2 configs pass it) and the pyskl
    stream otherwise (pyskl configs never do).
    """

    def __init__(self, clip_len: int, num_clips: int = 1, seed: int = 255, p_interval=1,
                 test_mode: bool | None = None, seeding: str | None = None,
                 out_of_bound_opt: str = "loop", **deprecated):
        if seeding is None:
            seeding = "mmaction2" if test_mode is not None else "pyskl"
        if seeding not in ("pyskl", "mmaction2"):
            raise ConfigError(f"UniformSampleFrames: seeding must be 'pyskl' or 'mmaction2', got {seeding!r}")
        if out_of_bound_opt not in ("loop", "repeat_last"):
            raise ConfigError(f"UniformSampleFrames: unknown out_of_bound_opt {out_of_bound_opt!r}")
        if isinstance(p_interval, (int, float)):
            p_interval = (float(p_interval), float(p_interval))
        for name, value in (("clip_len", clip_len), ("num_clips", num_clips)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"UniformSampleFrames: {name} must be a positive integer, got "
                                  f"{short_repr(value)}")
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.seed = seed
        self.p_interval = tuple(p_interval)
        self.test_mode = test_mode
        self.seeding = seeding
        self.out_of_bound_opt = out_of_bound_opt
        self._test_rng = np.random.RandomState()

    def _is_test(self, results: dict) -> bool:
        if self.seeding == "mmaction2" or self.test_mode is not None:
            return bool(self.test_mode)
        return bool(results.get("test_mode", False))  # pyskl: set by the dataset

    def sample(self, num_frames: int, test_mode: bool) -> np.ndarray:
        """All clips' indices concatenated, wrapped into 0..T-1."""
        rng = np.random  # training draws from the global stream the loader's workers seed
        if test_mode:
            # Both codebases reseed numpy's global RNG with `seed` for every test sample. A private
            # RandomState reseeded the same way draws the identical stream without resetting the
            # caller's global RNG (a training loop that validates in-process would otherwise replay
            # the same augmentations after every validation).
            rng = self._test_rng
            rng.seed(self.seed)
        clips = []
        for i in range(self.num_clips):
            if self.seeding == "pyskl":
                # pyskl samples inside a random sub-window; with p_interval=1 the window is the whole
                # video, but the rand() (and a no-op randint(1)) still advance the stream.
                lo, hi = self.p_interval
                ratio = rng.rand() * (hi - lo) + lo
                sub = int(ratio * num_frames)
                off = rng.randint(num_frames - sub + 1)
                clips.append(clip_indices(sub, self.clip_len, test_mode, i, self.num_clips, rng) + off)
            else:
                clips.append(clip_indices(num_frames, self.clip_len, test_mode, i, self.num_clips, rng))
        inds = np.concatenate(clips)
        if self.out_of_bound_opt == "loop":
            return np.mod(inds, num_frames)
        return np.minimum(inds, num_frames - 1)

    def __call__(self, results: dict) -> dict:
        total = results.get("total_frames")
        kp = results.get("keypoint")
        if total is None:
            if kp is None:
                raise AnnotationError(f"sample {_sample_name(results)}: no total_frames and no keypoint")
            total = kp.shape[1]
        if kp is not None and "frame_inds" not in results and kp.ndim == 4 and kp.shape[1] != total:
            raise AnnotationError(f"sample {_sample_name(results)}: total_frames is {total} but "
                                  f"keypoint has {kp.shape[1]} frames")
        if total <= 0:
            raise AnnotationError(f"sample {_sample_name(results)}: has no frames")
        inds = self.sample(int(total), self._is_test(results))
        inds = inds + results.get("start_index", 0)
        results["frame_inds"] = inds.astype(np.int32)
        results["clip_len"] = self.clip_len
        results["frame_interval"] = None
        results["num_clips"] = self.num_clips
        return results

    def __repr__(self) -> str:
        return (f"UniformSampleFrames(clip_len={self.clip_len}, num_clips={self.num_clips}, "
                f"seed={self.seed}, seeding={self.seeding!r})")


@TRANSFORMS.register()
class PoseDecode:
    """Gather the sampled frames of ``keypoint`` / ``keypoint_score`` as float32.

    A missing ``keypoint_score`` means every joint has score 1.
    """

    def __init__(self, **unused):
        pass

    def __call__(self, results: dict) -> dict:
        kp = results["keypoint"]
        if "total_frames" not in results:
            results["total_frames"] = kp.shape[1]
        inds = results.get("frame_inds")
        if inds is None:
            inds = np.arange(results["total_frames"])
        inds = np.asarray(inds) + results.get("offset", 0)
        score = results.get("keypoint_score")
        if score is None:
            score = np.ones(kp.shape[:-1], np.float32)
        results["keypoint"] = kp[:, inds].astype(np.float32)
        results["keypoint_score"] = score[:, inds].astype(np.float32)
        return results


@TRANSFORMS.register()
class DecompressPose:
    """Unpack the Kinetics-400 "kpfile" layout into dense (M, T, V, 2) / (M, T, V) arrays.

    Input: ``frame_inds`` (N,) and ``keypoint`` (N, V, 3) = one skeleton (x, y, score) per row,
    optionally ``anno_inds`` (rows to keep). ``squeeze`` drops frames without any skeleton.
    """

    def __init__(self, squeeze: bool = True, max_person: int = 10):
        self.squeeze = squeeze
        self.max_person = max_person

    def __call__(self, results: dict) -> dict:
        frame_inds = np.asarray(results["frame_inds"])
        packed = np.asarray(results["keypoint"])
        if packed.ndim != 3 or packed.shape[0] != len(frame_inds) or packed.shape[-1] != 3:
            raise AnnotationError(
                f"sample {_sample_name(results)}: kpfile keypoint must be (N, V, 3) with N = "
                f"len(frame_inds) = {len(frame_inds)}, got {packed.shape}")
        if "anno_inds" in results:
            keep = np.asarray(results.pop("anno_inds"))
            frame_inds, packed = frame_inds[keep], packed[keep]
        if np.any(np.diff(frame_inds) < 0):
            raise AnnotationError(f"sample {_sample_name(results)}: frame_inds must be non-decreasing")
        last = int(frame_inds.max()) + 1 if len(frame_inds) else 0
        total = max(int(results.get("total_frames", last)), last)  # K400 indices start at 1
        if self.squeeze:
            distinct, frame_inds = np.unique(frame_inds, return_inverse=True)
            total = len(distinct)
        num_v = packed.shape[1]
        # Slot of each row within its frame: 0 for the first skeleton of a frame, then 1, 2, ...
        firsts = np.searchsorted(frame_inds, frame_inds, side="left")
        slot = np.arange(len(frame_inds)) - firsts
        num_person = int(slot.max()) + 1 if len(slot) else 1
        kp = np.zeros((num_person, total, num_v, 2), np.float16)
        score = np.zeros((num_person, total, num_v), np.float16)
        kp[slot, frame_inds] = packed[..., :2]
        score[slot, frame_inds] = packed[..., 2]
        if num_person > self.max_person:
            # Keep the max_person most confident skeletons of each frame.
            order = np.argsort(-score.astype(np.float32).sum(-1), axis=0, kind="stable")[: self.max_person]
            kp = np.take_along_axis(kp, order[..., None, None], axis=0)
            score = np.take_along_axis(score, order[..., None], axis=0)
        results.pop("frame_inds")
        results["keypoint"] = kp
        results["keypoint_score"] = score
        results["total_frames"] = total
        return results
