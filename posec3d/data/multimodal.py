"""RGBPoseConv3D transforms (SPEC §2.11): sample, decode and crop RGB frames and poses together.

After these, the ordinary Resize / RandomResizedCrop / Flip / GeneratePoseTarget act on the
frames in ``results['imgs']`` (a list of (H, W, 3) uint8 RGB arrays) and the keypoints at once;
GeneratePoseTarget then writes ``heatmap_imgs`` and FormatShape('NCTHW') makes the views.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posec3d.errors import ConfigError, VideoError
from posec3d.registry import TRANSFORMS
from posec3d.data.transforms.geometry import PoseCompact
from posec3d.data.transforms.sampling import UniformSampleFrames


@TRANSFORMS.register()
class MMUniformSampleFrames:
    """UniformSampleFrames once per modality: ``clip_len=dict(RGB=8, Pose=32)`` → ``RGB_inds``, ``Pose_inds``.

    Test mode re-seeds before each modality, so each modality's indices equal what a
    single-modality UniformSampleFrames with that clip length would give.
    """

    def __init__(self, clip_len: dict, num_clips: int = 1, seed: int = 255, test_mode: bool | None = None,
                 p_interval=1, seeding: str | None = None):
        if not isinstance(clip_len, dict) or not clip_len or set(clip_len) - {"RGB", "Pose"}:
            raise ConfigError(f"MMUniformSampleFrames: clip_len must be a dict over 'RGB' / 'Pose', got {clip_len!r}")
        self.clip_len = dict(clip_len)
        self.num_clips = num_clips
        self.samplers = {mod: UniformSampleFrames(n, num_clips, seed=seed, p_interval=p_interval,
                                                  test_mode=test_mode, seeding=seeding)
                         for mod, n in self.clip_len.items()}

    def __call__(self, results: dict) -> dict:
        total = int(results["total_frames"])
        for mod, sampler in self.samplers.items():
            results[f"{mod}_inds"] = sampler.sample(total, sampler._is_test(results)).astype(np.int32)
        results["clip_len"] = dict(self.clip_len)
        results["frame_interval"] = None
        results["num_clips"] = self.num_clips
        results["modality"] = list(self.clip_len)
        return results

    def __repr__(self) -> str:
        return f"MMUniformSampleFrames(clip_len={self.clip_len}, num_clips={self.num_clips})"


def decode_frames(path: str | os.PathLike, indices: np.ndarray) -> list[np.ndarray]:
    """RGB uint8 frames at ``indices`` (any order, repeats allowed), decoding the video once."""
    import av  # lazily: pose-only pipelines never need a video decoder

    wanted = set(int(i) for i in indices)
    last = max(wanted)
    found: dict[int, np.ndarray] = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i in wanted:
                    found[i] = np.ascontiguousarray(frame.to_ndarray(format="rgb24"))
                if i >= last:
                    break
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"video {path}: cannot decode ({e})") from e
    missing = sorted(wanted - set(found))
    if missing:
        raise VideoError(f"video {path}: has only {len(found) and max(found) + 1} decodable frames, "
                         f"but frame {missing[0]} was requested")
    return [found[int(i)] for i in indices]


@TRANSFORMS.register()
class MMDecode:
    """Decode the RGB frames at ``RGB_inds`` (PyAV) and gather the poses at ``Pose_inds``.

    The video is ``results['filename']``, else ``frame_dir + '.mp4'``. When the decoded frames are
    not the annotation's ``img_shape`` (NTU videos re-encoded at half size), keypoints are scaled
    to the frames and ``img_shape`` / ``original_shape`` become the real frame size.
    """

    def __init__(self, io_backend: str = "disk", **unused):
        pass

    def __call__(self, results: dict) -> dict:
        for mod in results["modality"]:
            inds = np.asarray(results[f"{mod}_inds"]).reshape(-1)
            if mod == "RGB":
                if "filename" not in results:
                    results["filename"] = results["frame_dir"] + ".mp4"
                path = Path(results["filename"])
                if not path.is_file():
                    raise VideoError(f"video {path}: file not found (sample {results.get('frame_dir')!r})")
                results["imgs"] = decode_frames(path, inds)
            elif mod == "Pose":
                kp = results["keypoint"]
                score = results.get("keypoint_score")
                if score is None:
                    score = np.ones(kp.shape[:-1], np.float32)
                results["keypoint"] = kp[:, inds].astype(np.float32)
                results["keypoint_score"] = score[:, inds].astype(np.float32)
        if "imgs" in results:
            real = tuple(results["imgs"][0].shape[:2])
            if real != tuple(results["img_shape"]):
                oh, ow = results["img_shape"]
                nh, nw = real
                if "keypoint" in results:
                    results["keypoint"][..., 0] *= nw / ow
                    results["keypoint"][..., 1] *= nh / oh
                results["img_shape"] = results["original_shape"] = real
        return results


@TRANSFORMS.register()
class MMCompact:
    """PoseCompact for RGB + pose: crop frames and keypoints to the padded pose box.

    A pose too small for a box keeps the whole image; where the box leaves the image the frames
    are zero-padded.
    """

    def __init__(self, padding: float = 0.25, threshold: int = 10, hw_ratio=1, allow_imgpad: bool = True):
        self.box_finder = PoseCompact(padding, threshold, hw_ratio, allow_imgpad)

    @staticmethod
    def crop_frames(frames: list[np.ndarray], box: tuple[int, int, int, int]) -> list[np.ndarray]:
        x0, y0, x1, y1 = box
        h, w = frames[0].shape[:2]
        pad_l, pad_t = max(-x0, 0), max(-y0, 0)
        pad_r, pad_b = max(x1 - w, 0), max(y1 - h, 0)
        out = []
        for f in frames:
            if pad_l or pad_t or pad_r or pad_b:
                f = np.pad(f, ((pad_t, pad_b), (pad_l, pad_r), (0, 0)))
            out.append(np.ascontiguousarray(f[y0 + pad_t:y1 + pad_t, x0 + pad_l:x1 + pad_l]))
        return out

    def __call__(self, results: dict) -> dict:
        h, w = results["img_shape"]
        kp = results["keypoint"]
        kp[np.isnan(kp)] = 0.0
        box = self.box_finder.box(kp, (h, w)) or (0, 0, w, h)
        x0, y0, x1, y1 = box
        xs, ys = kp[..., 0], kp[..., 1]
        xs[xs != 0] -= x0
        ys[ys != 0] -= y0
        results["img_shape"] = (y1 - y0, x1 - x0)
        if "imgs" in results:
            results["imgs"] = self.crop_frames(results["imgs"], box)
        return results


class NormalizeRGB:
    """pyskl's ``Normalize(mean, std, to_bgr=False)``: frames → float32 (T, H, W, 3), (x - mean) / std."""

    def __init__(self, mean, std, to_bgr: bool = False, adjust_magnitude: bool = False):
        if to_bgr or adjust_magnitude:
            raise ConfigError("Normalize: to_bgr / adjust_magnitude are not supported")
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def __call__(self, results: dict) -> dict:
        imgs = np.asarray(np.stack(results["imgs"]) if isinstance(results["imgs"], list) else results["imgs"],
                          np.float32)
        results["imgs"] = (imgs - self.mean) / self.std
        results["img_norm_cfg"] = dict(mean=self.mean, std=self.std, to_bgr=False)
        return results


# Registered as 'Normalize' unless the data transforms already provide one.
if "Normalize" not in TRANSFORMS:
    TRANSFORMS.register("Normalize")(NormalizeRGB)
else:
    TRANSFORMS.register()(NormalizeRGB)
