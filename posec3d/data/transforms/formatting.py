"""Final layout and packing: FormatShape, Collect + ToTensor (pyskl), PackActionInputs (mmaction2)."""
from __future__ import annotations

import numpy as np
import torch

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS


def heatmap_views(maps: np.ndarray, num_clips: int, clip_len: int) -> np.ndarray:
    """(crops*clips*L, C, H, W) -> (crops*clips, C, L, H, W): one view per crop x clip."""
    c, h, w = maps.shape[1:]
    grouped = maps.reshape(-1, num_clips, clip_len, c, h, w).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(grouped).reshape(-1, c, clip_len, h, w)


def rgb_views(frames, num_clips: int, clip_len: int) -> np.ndarray:
    """List of (H, W, 3) frames -> (crops*clips, 3, L, H, W)."""
    arr = np.stack(frames) if isinstance(frames, list) else np.asarray(frames)
    h, w, c = arr.shape[1:]
    grouped = arr.reshape(-1, num_clips, clip_len, h, w, c).transpose(0, 1, 5, 2, 3, 4)
    return np.ascontiguousarray(grouped).reshape(-1, c, clip_len, h, w)


@TRANSFORMS.register()
class FormatShape:
    """``NCTHW_Heatmap``: heatmap volume to views; ``NCTHW``: RGB frames (and ``heatmap_imgs``)."""

    def __init__(self, input_format: str, collapse: bool = False):
        if input_format not in ("NCTHW", "NCTHW_Heatmap"):
            raise ConfigError(f"FormatShape: unsupported input_format {input_format!r} "
                              "(supported: NCTHW, NCTHW_Heatmap)")
        self.input_format = input_format
        self.collapse = collapse

    @staticmethod
    def _clip_len(results: dict, modality: str) -> int:
        clip_len = results["clip_len"]
        return clip_len[modality] if isinstance(clip_len, dict) else clip_len

    def __call__(self, results: dict) -> dict:
        num_clips = results["num_clips"]
        if self.input_format == "NCTHW_Heatmap":
            if results.pop("imgs_format", None) == "NCTHW_Heatmap":
                imgs = results["imgs"]  # GeneratePoseTarget already wrote this layout
            else:
                imgs = heatmap_views(results["imgs"], num_clips, self._clip_len(results, "Pose"))
        else:
            imgs = rgb_views(results["imgs"], num_clips, self._clip_len(results, "RGB"))
            if "heatmap_imgs" in results:
                results["heatmap_imgs"] = heatmap_views(results["heatmap_imgs"], num_clips,
                                                        self._clip_len(results, "Pose"))
        if self.collapse:
            if imgs.shape[0] != 1:
                raise ConfigError(f"FormatShape(collapse=True) needs one view, got {imgs.shape[0]}")
            imgs = imgs[0]
        results["imgs"] = imgs
        results["input_shape"] = imgs.shape
        return results


def _to_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        # Kept a Python int: the default collate turns a batch of them into a (B,) LongTensor.
        return int(value)
    if isinstance(value, (float, np.floating)):
        return torch.tensor([float(value)])
    if isinstance(value, (list, tuple)):
        return torch.as_tensor(np.asarray(value))
    raise ConfigError(f"ToTensor: cannot convert {type(value).__name__} to a tensor")


@TRANSFORMS.register()
class Collect:
    """Keep only ``keys`` (pyskl); ``meta_keys`` go into a plain dict under ``meta_name``."""

    def __init__(self, keys, meta_keys=(), meta_name: str = "img_metas", nested: bool = False):
        self.keys = list(keys)
        self.meta_keys = list(meta_keys)
        self.meta_name = meta_name

    def __call__(self, results: dict) -> dict:
        out = {k: results[k] for k in self.keys}
        if self.meta_keys:
            out[self.meta_name] = {k: results[k] for k in self.meta_keys if k in results}
        return out


@TRANSFORMS.register()
class ToTensor:
    """Turn arrays under ``keys`` into tensors (float32 heatmaps stay float32; ints stay ints)."""

    def __init__(self, keys):
        self.keys = list(keys)

    def __call__(self, results: dict) -> dict:
        for k in self.keys:
            results[k] = _to_tensor(results[k])
        return results


@TRANSFORMS.register()
class PackActionInputs:
    """mmaction2's packing: the model input (``imgs``, else ``heatmap_imgs``, else ``keypoint``)
    as a float32 tensor under ``imgs``, plus ``label``; ``collect_keys`` keeps several inputs."""

    def __init__(self, collect_keys=None, meta_keys=(), algorithm_keys=()):
        self.collect_keys = None if collect_keys is None else tuple(collect_keys)
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        out: dict = {}
        if self.collect_keys is not None:
            for k in self.collect_keys:
                out[k] = torch.from_numpy(np.ascontiguousarray(results[k], dtype=np.float32))
        else:
            for k in ("imgs", "heatmap_imgs", "keypoint"):
                if k in results:
                    out["imgs"] = torch.from_numpy(np.ascontiguousarray(results[k], dtype=np.float32))
                    break
            else:
                raise ConfigError("PackActionInputs: the sample has no imgs, heatmap_imgs or keypoint")
        if "label" in results:
            out["label"] = int(results["label"])
        if self.meta_keys:
            out["meta"] = {k: results[k] for k in self.meta_keys if k in results}
        return out


@TRANSFORMS.register()
class PackPoses:
    """End of a loader pipeline whose heatmaps are drawn later, batched (``BatchHeatmaps``).

    Packs ``keypoint`` (max_persons, T, V, 2), ``keypoint_score`` (max_persons, T, V) and
    ``person_mask`` (max_persons,) as tensors of a fixed size (padded with zeros), ``img_shape``
    (2,), ``num_clips`` and ``label``. A sample with more persons keeps the ``max_persons`` with
    the highest total score (persons are max-combined, so this only drops the weakest).
    """

    def __init__(self, max_persons: int = 2):
        self.max_persons = int(max_persons)

    def __call__(self, results: dict) -> dict:
        kp = np.asarray(results["keypoint"], np.float32)[..., :2]
        score = results.get("keypoint_score")
        score = np.ones(kp.shape[:-1], np.float32) if score is None else np.asarray(score, np.float32)
        m = kp.shape[0]
        if m > self.max_persons:
            keep = np.sort(np.argsort(-score.sum(axis=(1, 2)), kind="stable")[: self.max_persons])
            kp, score, m = kp[keep], score[keep], self.max_persons
        pad_kp = np.zeros((self.max_persons,) + kp.shape[1:], np.float32)
        pad_score = np.zeros((self.max_persons,) + score.shape[1:], np.float32)
        pad_kp[:m], pad_score[:m] = kp, score
        mask = np.zeros(self.max_persons, bool)
        mask[:m] = True
        out = dict(keypoint=torch.from_numpy(pad_kp), keypoint_score=torch.from_numpy(pad_score),
                   person_mask=torch.from_numpy(mask),
                   img_shape=torch.tensor([int(v) for v in results["img_shape"]]),
                   num_clips=int(results.get("num_clips", 1)))
        if "label" in results:
            out["label"] = int(results["label"])
        return out
