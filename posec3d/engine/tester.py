"""``posec3d test``: multi-clip x flip evaluation of a checkpoint, scores in the pyskl dump format."""
from __future__ import annotations

import contextlib
import copy
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from posec3d.engine import config as C
from posec3d.engine import distributed as D
from posec3d.engine.evaluation import check_evaluation_set, predict, require_finite_weights
from posec3d.engine.loaders import build_dataset, build_eval_loader, check_fits_model, split_dataset_cfg
from posec3d.engine.metrics import evaluate
from posec3d.engine.speedups import EvalSpeedups, prepare_for_testing
from posec3d.errors import ConfigError
from posec3d.files import atomic_write_bytes

SAMPLE_FRAMES = ("UniformSampleFrames", "UniformSample", "MMUniformSampleFrames")


@dataclass
class TestResult:
    scores: list          # float32 (classes,) per video, dataset order (the pyskl dump)
    labels: np.ndarray
    metrics: dict


def rewrite_test_pipeline(pipeline: list, num_clips: int | None, flip: bool | None, where: str) -> list:
    """Set UniformSampleFrames.num_clips and GeneratePoseTarget.double (the test-time flip)."""
    pipeline = copy.deepcopy(pipeline)
    if num_clips is not None:
        if num_clips < 1:
            raise ConfigError(f"--num-clips must be at least 1, got {num_clips}")
        sampler = C.find_transform(pipeline, *SAMPLE_FRAMES)
        if sampler is None:
            raise ConfigError(f"{where}: --num-clips needs a UniformSampleFrames step in the test pipeline")
        sampler["num_clips"] = int(num_clips)
    if flip is not None:
        target = C.find_transform(pipeline, "GeneratePoseTarget", "GeneratePoseTargets")
        if target is None:
            raise ConfigError(f"{where}: --flip/--no-flip needs a GeneratePoseTarget step in the test pipeline")
        target["double"] = bool(flip)
    return pipeline


def test(cfg: C.Config, checkpoint: str | os.PathLike, *, ann_file: str | None = None, split: str | None = None,
         num_clips: int | None = None, flip: bool | None = None, batch_size: int | None = None,
         num_workers: int | None = None, amp: bool = False, device: str | None = None,
         progress: Callable[..., None] | None = None) -> TestResult:
    """Score every video of the test split (all ranks under torchrun); metrics as fractions.

    Runs on the evaluation fast path (`engine.speedups`: BN folding, channels-last 3D, inference
    mode, all views of a sample in one forward); ``test_speedups`` in the config turns each off.
    """
    from posec3d.engine.trainer import batch_transform_for, loader_pipeline
    from posec3d.models import build_model
    from posec3d.models.checkpoint import load_checkpoint

    dist = D.setup(device)
    where = C._where(cfg)
    cfg = copy.deepcopy(cfg)
    pipeline = rewrite_test_pipeline(C.pipeline_cfg(cfg, "test"), num_clips, flip, where)
    # Write the rewritten pipeline back so the batch-heatmap split sees the same settings.
    inner, _ = C.unwrap_dataset(C.dataset_cfg(cfg, "test"))
    inner["pipeline"] = pipeline
    dataset = build_dataset(split_dataset_cfg(cfg, "test", ann_file, split, loader_pipeline(cfg, "test")), where,
                            test_mode=True)
    check_fits_model(cfg, dataset)  # names the config: labels beyond its num_classes, joints vs in_channels
    check_evaluation_set(dataset)
    loader = build_eval_loader(dataset, dist, batch_size or C.batch_size(cfg, "test"),
                               C.num_workers(cfg, "test") if num_workers is None else num_workers)
    speedups = EvalSpeedups.from_config(cfg)
    # Loader workers start now and draw the first samples while the model loads and is folded.
    batches = loader.epoch(0)
    with _one_thread():
        model = build_model(C.model_cfg(cfg)).to(dist.device)
        load_checkpoint(model, checkpoint, strict=True)  # before BN folding: the checkpoint has BN keys
        require_finite_weights(model, checkpoint)
        model = prepare_for_testing(model, speedups)
    if progress is not None:
        progress(advance=0, total=len(dataset))
    scores, labels = predict(model, loader, dist, batch_transform=batch_transform_for(cfg, "test", dist.device),
                             progress=progress, amp=amp, inference_mode=speedups.inference_mode, batches=batches)
    metrics = evaluate(scores, labels) if (labels >= 0).all() else {"num_samples": int(len(labels))}
    return TestResult([row.astype(np.float32) for row in scores], labels, metrics)


@contextlib.contextmanager
def _one_thread():
    """Model set-up is hundreds of tiny tensor ops; with the loader workers just started beside
    them, each multi-threaded one would wait for a second core (measured: 1.8 s wall for 0.3 s CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def dump_scores(path: str | os.PathLike, scores: list) -> None:
    """pyskl's ``--out``: a pickled list of float32 arrays (JSON lists for a .json path)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        import json

        atomic_write_bytes(path, json.dumps([s.tolist() for s in scores]).encode())
    else:
        atomic_write_bytes(path, pickle.dumps(list(scores), protocol=4))
