"""PoseDataset and RepeatDataset: annotation file + pipeline -> torch Dataset of heatmap volumes."""
from __future__ import annotations

import copy
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from posec3d.data.annotations import load_annotation_file, load_annotations
from posec3d.data.pipeline import Compose
from posec3d.errors import AnnotationError, ConfigError
from posec3d.registry import DATASETS

# Keyword arguments of pyskl / mmaction2 dataset configs that have no effect here (memcached is
# replaced by reading kpfiles directly; samplers read class_prob from the config themselves).
_ACCEPTED_NO_OP = {
    "memcached", "mc_cfg", "class_prob", "multi_class", "sample_by_class", "squeeze",
    "power", "dynamic_length", "filename_tmpl", "modality", "data_root",
    "lazy_init", "serialize_data", "max_refetch", "metainfo", "indices", "filter_cfg",
}


class _KpfileCache:
    """Keep the last few kpfiles (dict frame_dir -> {'keypoint': (N, V, 3)}) in memory."""

    def __init__(self, size: int = 2):
        self.size = size
        self.files: OrderedDict[str, Any] = OrderedDict()

    def get(self, path: str) -> Any:
        if path not in self.files:
            self.files[path] = load_annotation_file(path)
            while len(self.files) > self.size:
                self.files.popitem(last=False)
        self.files.move_to_end(path)
        return self.files[path]


_IMMUTABLE = (str, int, float, bool, type(None), np.generic)


def _copy_sample(info: dict) -> dict:
    """``copy.deepcopy(info)`` for the plain values of an annotation (arrays, strings, numbers,
    tuples of numbers) without deepcopy's bookkeeping, a quarter of a training sample's
    non-heatmap time; anything else is deep-copied as before."""
    out = {}
    for key, value in info.items():
        if type(value) is np.ndarray and value.dtype != object:
            out[key] = value.copy(order="K")  # what ndarray.__deepcopy__ does
        elif isinstance(value, _IMMUTABLE) or (type(value) is tuple and all(isinstance(v, _IMMUTABLE) for v in value)):
            out[key] = value
        else:
            out[key] = copy.deepcopy(value)
    return out


@DATASETS.register()
class PoseDataset(Dataset):
    """Skeleton samples of one split; each item is the pipeline's output.

    Items of the standard pipelines are ``{'imgs': float32 tensor (V, C, T, H, W), 'label': int}``.
    ``data_prefix``: a folder joined onto ``frame_dir`` (pyskl), or ``dict(video=..., skeleton=...)``
    (mmaction2; ``skeleton`` is the folder of per-video kpfiles of the K400 layout).
    ``valid_ratio``/``box_thr``: keep K400 index items with enough confident boxes (pyskl).
    """

    def __init__(self, ann_file: str | os.PathLike, pipeline: Sequence[dict | Callable] | Compose,
                 split: str | None = None, data_prefix: str | dict | None = None,
                 test_mode: bool = False, *, num_classes: int | None = None,
                 box_thr: float = 0.5, valid_ratio: float | None = None,
                 start_index: int = 0, validate: bool = True, **kwargs):
        unknown = set(kwargs) - _ACCEPTED_NO_OP
        if unknown:
            raise ConfigError(f"PoseDataset: unknown arguments {sorted(unknown)}")
        self.ann_file = Path(ann_file)
        self.split = split
        self.test_mode = test_mode
        self.num_classes = num_classes
        self.box_thr = box_thr
        self.valid_ratio = valid_ratio
        self.start_index = start_index
        self.pipeline = pipeline if isinstance(pipeline, Compose) else Compose(pipeline or [])
        self.video_prefix, self.skeleton_prefix = self._prefixes(data_prefix)
        self.video_infos = load_annotations(self.ann_file, split, num_classes=num_classes, validate=validate,
                                            for_model=True)
        self._apply_prefix()
        self._filter_by_box_score()
        self._kpfiles = _KpfileCache()

    @staticmethod
    def _prefixes(data_prefix) -> tuple[str | None, str | None]:
        if data_prefix is None or isinstance(data_prefix, (str, os.PathLike)):
            return (str(data_prefix) if data_prefix else None), None
        if isinstance(data_prefix, dict):
            return data_prefix.get("video") or None, data_prefix.get("skeleton") or None
        raise ConfigError(f"PoseDataset: data_prefix must be a folder or a dict, got {data_prefix!r}")

    def _apply_prefix(self) -> None:
        if not self.video_prefix:
            return
        for info in self.video_infos:
            for key in ("filename", "frame_dir"):
                if key in info:
                    info[key] = os.path.join(self.video_prefix, info[key])

    def _filter_by_box_score(self) -> None:
        if not self.valid_ratio or self.valid_ratio <= 0:
            return
        kept = []
        for i, info in enumerate(self.video_infos):
            if "box_score" not in info or "valid" not in info:
                raise AnnotationError(f"{self.ann_file}: sample {i} ({info.get('frame_dir')!r}) has no "
                                      "box_score/valid, needed for valid_ratio > 0")
            if info["valid"][self.box_thr] / info["total_frames"] >= self.valid_ratio:
                info["anno_inds"] = np.asarray(info["box_score"]) >= self.box_thr
                kept.append(info)
        self.video_infos = kept

    @property
    def labels(self) -> list[int]:
        """Class index of every sample, in dataset order (for samplers and metrics)."""
        return [int(info.get("label", -1)) for info in self.video_infos]

    def class_counts(self) -> dict[int, int]:
        return dict(sorted(Counter(self.labels).items()))

    def __len__(self) -> int:
        return len(self.video_infos)

    def _fetch_kpfile(self, results: dict) -> None:
        """K400 index items: merge the skeletons stored in a separate kpfile into the sample."""
        if "keypoint" in results:
            return
        if self.skeleton_prefix:  # mmaction2: <skeleton>/<id>.pkl holds this video's keys
            ident = results.get("filename", results.get("frame_dir"))
            path = os.path.join(self.skeleton_prefix, os.path.basename(str(ident)) + ".pkl")
            results.update(load_annotation_file(path))
        elif "raw_file" in results:  # pyskl: one kpfile for many videos, keyed by frame_dir
            packs = self._kpfiles.get(results["raw_file"])
            key = os.path.basename(str(results["frame_dir"]))
            if key not in packs:
                raise AnnotationError(f"{results['raw_file']}: no skeletons for {key!r}")
            results.update(packs[key])

    def prepare(self, idx: int) -> dict:
        """The sample dict before the pipeline."""
        results = _copy_sample(self.video_infos[idx])
        results["modality"] = "Pose"
        results["start_index"] = self.start_index
        results["test_mode"] = self.test_mode
        self._fetch_kpfile(results)
        return results

    def __getitem__(self, idx: int) -> Any:
        out = self.pipeline(self.prepare(idx))
        if isinstance(out, dict) and isinstance(out.get("imgs"), np.ndarray):
            out["imgs"] = torch.from_numpy(np.ascontiguousarray(out["imgs"], dtype=np.float32))
        return out

    def __repr__(self) -> str:
        return f"PoseDataset({self.ann_file}, split={self.split!r}, {len(self)} samples)"


def build_dataset(cfg: dict | Dataset) -> Dataset:
    """A dataset object from a config dict (or the object itself)."""
    return cfg if isinstance(cfg, Dataset) else DATASETS.build(cfg)


@DATASETS.register()
class RepeatDataset(Dataset):
    """``times`` passes over ``dataset`` per epoch (pyskl / mmaction2 ``RepeatDataset``)."""

    def __init__(self, dataset: dict | Dataset, times: int):
        if times < 1:
            raise ConfigError(f"RepeatDataset: times must be >= 1, got {times}")
        self.dataset = build_dataset(dataset)
        self.times = int(times)

    @property
    def labels(self) -> list[int]:
        return list(self.dataset.labels) * self.times

    def __len__(self) -> int:
        return self.times * len(self.dataset)

    def __getitem__(self, idx: int) -> Any:
        return self.dataset[idx % len(self.dataset)]


class WithOutliers(Dataset):
    """A training set followed by outlier samples, whose label becomes -1 (outlier exposure).

    The outliers run the training pipeline too (their annotation labels, from another dataset's
    classes, are ignored). The wrapped sets are ``inliers`` and ``outliers``, not ``dataset``, so
    that code reading a wrapper's ``dataset`` attribute (RepeatDataset's) does not miss the outliers.
    """

    def __init__(self, inliers: Dataset, outliers: Dataset):
        if len(outliers) == 0:
            raise ConfigError(f"outliers: {outliers!r} has no samples")
        self.inliers, self.outliers = inliers, outliers

    @property
    def labels(self) -> list[int]:
        return [int(x) for x in self.inliers.labels] + [-1] * len(self.outliers)

    def __len__(self) -> int:
        return len(self.inliers) + len(self.outliers)

    def __getitem__(self, idx: int) -> Any:
        if idx < len(self.inliers):
            return self.inliers[idx]
        out = self.outliers[idx - len(self.inliers)]
        if not isinstance(out, dict) or "label" not in out:
            raise ConfigError("outliers: the training pipeline must output a dict with 'label' "
                              "(Collect keys=['imgs', 'label'])")
        label = out["label"]
        out["label"] = torch.full_like(label, -1) if isinstance(label, torch.Tensor) else -1
        return out


def reuse_heatmap_volumes(dataset: Dataset) -> bool:
    """Turn on heatmap volume reuse (``Compose.reuse_heatmap_volumes``) in every pipeline of
    ``dataset`` and the datasets it wraps; True if any pipeline takes it.

    Only for a consumer that copies each sample and drops it unwritten, like the engine's loaders
    (their collate stacks samples into a new batch tensor)."""
    enabled = False
    pipeline = getattr(dataset, "pipeline", None)
    if isinstance(pipeline, Compose):
        enabled = pipeline.reuse_heatmap_volumes()
    for d in (getattr(dataset, name, None) for name in ("dataset", "inliers", "outliers")):
        if isinstance(d, Dataset):
            enabled = reuse_heatmap_volumes(d) or enabled
    return enabled
