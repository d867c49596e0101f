"""Run a recognizer over an evaluation loader and gather the per-video scores from all ranks."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from posec3d.engine.distributed import DistInfo, all_gather_objects
from posec3d.engine.loaders import Loader
from posec3d.errors import AnnotationError, CheckpointError


def model_inputs(batch: dict, device: torch.device) -> list[torch.Tensor]:
    """The tensors ``forward_train`` / ``forward_test`` take, in order (RGBPose has two)."""
    if "imgs" not in batch:
        raise KeyError(f"batch has no 'imgs' (keys {sorted(batch)}); does the pipeline end with Collect/PackActionInputs?")
    inputs = [batch["imgs"]]
    if "heatmap_imgs" in batch:
        inputs.append(batch["heatmap_imgs"])
    return [x.to(device, non_blocking=True).float() for x in inputs]


def batch_labels(batch: dict) -> torch.Tensor:
    label = batch.get("label", batch.get("labels"))
    if label is None:
        raise KeyError("batch has no 'label'")
    return torch.as_tensor(label).reshape(-1).long()


def predict(model: torch.nn.Module, loader: Loader, dist: DistInfo, *,
            batch_transform: Callable[[dict], dict] | None = None,
            progress: Callable[..., None] | None = None, amp: bool = False,
            inference_mode: bool = False, batches=None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (N, classes) float32, labels (N,)) in dataset order, identical on every rank.

    ``inference_mode`` skips autograd's version counters as well (the tester's fast path); the
    trainer's validation keeps ``no_grad``. ``batches``: ``loader.epoch(0)`` started earlier, so
    that its workers could prepare samples while the caller did other work.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode() if inference_mode else torch.no_grad():
            local = _predict_local(model, loader.epoch(0) if batches is None else batches, dist,
                                   batch_transform, progress, amp)
    finally:
        model.train(was_training)
    parts = all_gather_objects(local)
    # EvalSampler gives rank r the indices r, r + W, r + 2W, ...: interleave back to dataset order.
    n = sum(len(p[1]) for p in parts)
    width = next((p[0].shape[1] for p in parts if len(p[1])), 0)
    all_scores = np.zeros((n, width), np.float32)
    all_labels = np.zeros(n, np.int64)
    for r, (s, l) in enumerate(parts):
        all_scores[r::len(parts)] = s
        all_labels[r::len(parts)] = l
    return all_scores, all_labels


def _predict_local(model, batches, dist: DistInfo, batch_transform, progress, amp: bool
                   ) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = [], []
    for batch in batches:
        if batch_transform is not None:
            batch = batch_transform(batch)
        with torch.autocast(dist.device.type, enabled=amp, dtype=_amp_dtype(dist.device)):
            out = model.forward_test(*model_inputs(batch, dist.device))
        if isinstance(out, dict):  # RGBPose: report the fused 1:1 stream
            out = sum(out.values())
        scores.append(out.float().cpu().numpy())
        labels.append(batch_labels(batch).numpy())
        if progress is not None:
            progress(advance=len(labels[-1]) * dist.world_size)
    return (np.concatenate(scores) if scores else np.zeros((0, 0), np.float32),
            np.concatenate(labels) if labels else np.zeros(0, np.int64))


def _amp_dtype(device: torch.device) -> torch.dtype:
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def model_num_classes(model_cfg) -> int | None:
    """``cls_head.num_classes`` of a model config (None when the head does not say)."""
    head = model_cfg.get("cls_head") if hasattr(model_cfg, "get") else None
    value = head.get("num_classes") if hasattr(head, "get") else None
    return int(value) if value is not None else None


def check_evaluation_set(dataset) -> None:
    """Refuse an empty split, which would score silently as ``top1 nan``. (Labels the model cannot
    output are refused by ``loaders.check_fits_model``, which names the config.)"""
    base = getattr(dataset, "dataset", dataset)
    name = f"{getattr(base, 'ann_file', type(base).__name__)}"
    split = getattr(base, "split", None)
    if len(dataset) == 0:
        raise AnnotationError(f"{name}: " + (f"split {split!r} is empty" if split else "no samples")
                              + ", nothing to evaluate")


def require_finite_weights(model: torch.nn.Module, checkpoint) -> None:
    """NaN / inf weights give NaN scores, which rank as class 0 without a word: refuse them."""
    floats = {name: t for name, t in model.state_dict().items() if t.is_floating_point()}
    if not floats:
        return
    # One check over all weights at once: ~260 small per-tensor checks cost 0.1-0.7 s on a busy
    # 2-core machine (each is a parallel region that waits for a descheduled thread).
    by_kind: dict = {}
    for t in floats.values():
        by_kind.setdefault((t.dtype, t.device), []).append(t.detach().reshape(-1))
    if all(bool(torch.isfinite(torch.cat(parts)).all()) for parts in by_kind.values()):
        return
    bad = [name for name, t in floats.items() if not bool(torch.isfinite(t).all())]
    if bad:
        total = len(floats)
        raise CheckpointError(f"{checkpoint}: {len(bad)} of {total} weight tensors hold NaN or inf "
                              f"(e.g. {bad[0]}); a diverged or damaged checkpoint, refusing to evaluate it")
