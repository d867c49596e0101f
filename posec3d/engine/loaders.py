"""Datasets and data loaders from a config, for one split, single-process or distributed."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader, Dataset

from posec3d.data.samplers import EvalSampler, TrainSampler, WorkerSeeder
from posec3d.engine import config as C
from posec3d.engine.distributed import DistInfo
from posec3d.errors import ConfigError, PoseC3DError, message_of, short_repr
from posec3d.registry import DATASETS


def _import_datasets() -> None:
    import posec3d.data.dataset  # noqa: F401  (registers PoseDataset / RepeatDataset)


def build_dataset(ds_cfg: Mapping, where: str = "config", test_mode: bool = False) -> Dataset:
    """Build a (possibly repeated) dataset from its config dict via the DATASETS registry.

    ``test_mode=True`` (val / test) is a default the config may override, as in pyskl, whose
    val/test dataset dicts rely on it for deterministic (seed-255) frame sampling.
    """
    _import_datasets()
    ds_cfg = copy.deepcopy(dict(ds_cfg))
    if ds_cfg.get("type") == "RepeatDataset":
        inner = build_dataset(ds_cfg["dataset"], where, test_mode)
        repeat = DATASETS.get("RepeatDataset")
        return repeat(inner, int(ds_cfg.get("times", 1)))
    ds_cfg.pop("class_prob", None)  # the sampler's business, not the dataset's
    if "pipeline" not in ds_cfg:
        raise ConfigError(f"{where}: dataset {ds_cfg.get('type')!r} has no 'pipeline'")
    if test_mode:
        ds_cfg.setdefault("test_mode", True)
    try:
        return DATASETS.build(ds_cfg)
    except ConfigError as e:
        # Transforms and datasets do not know the file their settings came from: name it here.
        if where in str(e):
            raise
        raise ConfigError(f"{where}: {message_of(e)}") from None
    except TypeError as e:  # a wrong or missing argument of a dataset or transform
        raise ConfigError(f"{where}: dataset {short_repr(ds_cfg.get('type'))}: {short_repr(str(e), 200)}") from None


def check_fits_model(cfg: C.Config, dataset: Dataset) -> None:
    """Refuse data the config's model cannot take, before any batch: labels beyond the classifier's
    classes, and (for joint heatmaps of unmapped skeletons) a joint count other than the input channels."""
    base = getattr(dataset, "dataset", dataset)
    model = C.model_cfg(cfg)
    ann_file = getattr(base, "ann_file", "annotations")
    head = model.get("cls_head") or {}
    classes = head.get("num_classes")
    if isinstance(classes, int):
        try:
            labels = dataset_labels(dataset)
        except (ConfigError, KeyError, TypeError, ValueError):  # a dataset type that does not list its labels
            labels = []
        if labels and max(labels) >= classes:
            bad = next(k for k, label in enumerate(labels) if label >= classes)
            raise ConfigError(f"{C._where(cfg)}: cls_head.num_classes is {classes} but {ann_file} has label "
                              f"{max(labels)} (first at sample {bad}); raise num_classes or fix the labels")
    infos = getattr(base, "video_infos", None)
    if not infos:
        return
    backbone = model.get("backbone") or {}
    channels = backbone.get("in_channels")
    pipeline = getattr(getattr(base, "pipeline", None), "transforms", None) or []
    names = {type(t).__name__ for t in pipeline}
    target = next((t for t in pipeline if type(t).__name__ == "GeneratePoseTarget"), None)
    if (isinstance(channels, int) and target is not None and getattr(target, "with_kp", False)
            and not getattr(target, "with_limb", False) and not names & {"MapJoints", "JointToBone"}):
        joints = {i["keypoint"].shape[2] for i in infos if hasattr(i.get("keypoint"), "shape")}
        if joints and joints != {channels}:
            raise ConfigError(f"{C._where(cfg)}: backbone.in_channels is {channels} but {ann_file} has "
                              f"{'/'.join(map(str, sorted(joints)))} joints per person; set in_channels or add "
                              "MapJoints to the pipeline")


def dataset_labels(dataset: Dataset) -> list[int]:
    """Labels of the un-repeated dataset, in index order (for class-balanced sampling and metrics)."""
    base = getattr(dataset, "dataset", dataset)
    for attr in ("labels",):
        if hasattr(base, attr):
            return [int(x) for x in getattr(base, attr)]
    annos = getattr(base, "annotations", None) or getattr(base, "video_infos", None)
    if annos is None:
        raise ConfigError(f"{type(base).__name__} exposes neither 'labels' nor 'annotations'")
    return [int(a["label"]) for a in annos]


def split_dataset_cfg(cfg: C.Config, split: str, ann_file: str | None = None, data_split: str | None = None,
                      pipeline: list | None = None) -> dict:
    """The split's dataset dict with optional overrides of annotation file, split name and pipeline."""
    ds = copy.deepcopy(C.dataset_cfg(cfg, split))
    inner = ds
    while inner.get("type") == "RepeatDataset":
        inner = inner["dataset"]
    if ann_file:
        inner["ann_file"] = ann_file
    if data_split:
        inner["split"] = data_split
    if pipeline is not None:
        inner["pipeline"] = pipeline
    return ds


def _one_line_errors(batches):
    """Re-raise a worker's PoseC3DError as the original one-line error (torch wraps it in a traceback)."""
    try:
        yield from batches
    except PoseC3DError as e:
        if "Original Traceback" not in str(e):
            raise
        raise type(e)(message_of(e)) from None


@dataclass
class Loader:
    loader: DataLoader
    sampler: Any
    seeder: WorkerSeeder | None
    dataset: Dataset

    def epoch(self, epoch: int):
        """The loader's iterator for ``epoch`` (sets sampler order and worker seeds first)."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        if self.seeder is not None:
            self.seeder.epoch = epoch
        if self.loader.num_workers > 0:
            from posec3d.engine.speedups import release_freed_memory

            release_freed_memory()  # the workers fork now: no free heap to share copy-on-write
        return _one_line_errors(iter(self.loader))

    def __len__(self) -> int:
        return len(self.loader)


def build_train_loader(cfg: C.Config, dataset: Dataset, dist: DistInfo, seed: int) -> Loader:
    loader_cfg = C.dataloader_cfg(cfg, "train")
    check_fits_model(cfg, dataset)
    inner_cfg, times = C.unwrap_dataset(C.dataset_cfg(cfg, "train"))
    prob = C.class_prob(cfg)
    labels = dataset_labels(dataset) if prob is not None else None
    if prob is not None:
        # pyskl's class-specific sampler replaces RepeatDataset's repetition with its own.
        num_classes = max(labels) + 1
        if len(prob) < num_classes:
            raise ConfigError(f"{C._where(cfg)}: class_prob has {len(prob)} entries but labels go up to {num_classes - 1}")
    sampler = TrainSampler(len(dataset), seed=seed, rank=dist.rank, world_size=dist.world_size,
                           labels=labels, class_prob=prob, times=times)
    seeder = WorkerSeeder(seed, dist.rank, loader_cfg.num_workers)
    from posec3d.data.dataset import reuse_heatmap_volumes

    reuse_heatmap_volumes(dataset)  # safe here: the default collate copies every sample into the batch
    loader = DataLoader(dataset, batch_size=loader_cfg.batch_size, sampler=sampler,
                        num_workers=loader_cfg.num_workers, worker_init_fn=seeder,
                        pin_memory=dist.device.type == "cuda", drop_last=False,
                        generator=torch.Generator().manual_seed(seed),
                        persistent_workers=False)
    return Loader(loader, sampler, seeder, dataset)


def build_eval_loader(dataset: Dataset, dist: DistInfo, batch_size: int, num_workers: int) -> Loader:
    sampler = EvalSampler(len(dataset), dist.rank, dist.world_size)
    from posec3d.data.dataset import reuse_heatmap_volumes

    reuse_heatmap_volumes(dataset)  # safe here: the default collate copies every sample into the batch
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        pin_memory=dist.device.type == "cuda")
    return Loader(loader, sampler, None, dataset)
