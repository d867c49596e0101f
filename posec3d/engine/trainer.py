"""The training loop: one function, read top to bottom (SPEC §5's recipe).

    setup → data → model → optimizer → (resume | load_from) → for each epoch:
        for each batch: lr from the schedule, forward, NaN check, backward, clip, step, log
        checkpoint (latest / epoch_N / best), validate, log
    → curves.png, confusion_matrix.png

Launch with ``posec3d train`` (one process) or ``torchrun --nproc-per-node N -m posec3d train``
(DDP: each rank sees its stride of the epoch's permutation; only rank 0 writes files).
Resume is bitwise on CPU with ``deterministic=True``: the sampler order and the data RNGs depend
only on ``seed + epoch``, the LR only on the iteration, and model/optimizer/scaler/RNG states are
restored from the end of the last finished epoch (a run killed mid-epoch replays that epoch).
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from posec3d.engine import config as C
from posec3d.engine import distributed as D
from posec3d.engine.checkpoints import (find_latest, load_optimizer_state, prune_epoch_checkpoints, restore_rng, resume_state,
                                        save_training_checkpoint)
from posec3d.engine.evaluation import _amp_dtype, batch_labels, model_inputs, predict
from posec3d.engine.loaders import (build_dataset, build_eval_loader, build_train_loader, check_fits_model,
                                    split_dataset_cfg)
from posec3d.engine.logging import MetricsLog
from posec3d.engine.metrics import confusion_matrix, evaluate
from posec3d.engine.schedule import LRSchedule
from posec3d.engine.speedups import apply_channels_last, compile_step, describe, freed_memory_kept, train_speedups
from posec3d.errors import CheckpointError, ConfigError, PoseC3DError


class TrainingDiverged(PoseC3DError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def load_pretrained(model: nn.Module, path: str) -> None:
    """Fine-tuning weights, loaded non-strictly; a file none of whose backbone tensors fit the
    model (another architecture) is an error, not a warning that training from scratch follows."""
    from posec3d.models.checkpoint import load_state, read_checkpoint

    state = read_checkpoint(path)["state_dict"]
    own = model.state_dict()
    # Weights only: BN's num_batches_tracked is a scalar in every architecture and always "fits".
    backbone = [k for k, v in own.items() if k.startswith("backbone.") and v.is_floating_point()]
    if backbone and not any(k in state and state[k].shape == own[k].shape for k in backbone):
        theirs = sum(k.startswith("backbone.") and v.is_floating_point() for k, v in state.items())
        raise CheckpointError(f"checkpoint {path}: none of its {theirs} backbone tensors fit the model the config "
                              f"builds ({model.backbone.__class__.__name__}, {len(backbone)} backbone tensors); "
                              "fine-tune with the backbone it was trained with")
    load_state(model, state, strict=False, source=f"checkpoint {path}")


@dataclass
class TrainResult:
    work_dir: Path
    epochs: int
    iterations: int
    best: dict | None = None
    last_val: dict | None = None
    history: list = field(default_factory=list)


class TrainStep(nn.Module):
    """Wraps ``forward_train`` as ``forward`` so DDP sees (and syncs) the training computation."""

    def __init__(self, recognizer: nn.Module):
        super().__init__()
        self.recognizer = recognizer

    def forward(self, *inputs_and_labels: torch.Tensor) -> dict:
        return self.recognizer.forward_train(*inputs_and_labels)


def build_optimizer(model: nn.Module, opt_cfg: dict, fused: bool = False) -> torch.optim.Optimizer:
    """SGD (SPEC §5: momentum, weight decay on all parameters) or Adam/AdamW, on trainable params.

    ``fused``: one fused kernel per step instead of per-parameter loops (unless the config chose
    ``foreach`` / ``fused`` itself); the same update up to float rounding.
    """
    opt_cfg = dict(opt_cfg)
    if fused and "foreach" not in opt_cfg and "fused" not in opt_cfg:
        opt_cfg["fused"] = True
    kind = opt_cfg.pop("type", "SGD")
    params = [p for p in model.parameters() if p.requires_grad]  # frozen stages stay out
    known = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW}
    if kind not in known:
        raise ConfigError(f"optimizer type {kind!r} is not supported ({', '.join(known)})")
    opt_cfg.pop("paramwise_cfg", None)
    try:
        return known[kind](params, **opt_cfg)
    except TypeError as e:
        raise ConfigError(f"optimizer {kind}: {e}") from None


class BatchHeatmapStep:
    """``heatmap_on='batch'``: draws the heatmaps of a collated ``PackPoses`` batch on the device."""

    def __init__(self, heatmaps: nn.Module, device: torch.device):
        self.heatmaps, self.device = heatmaps, device

    def __call__(self, batch: dict) -> dict:
        dev = self.device
        num_clips = int(torch.as_tensor(batch["num_clips"]).reshape(-1)[0])
        imgs = self.heatmaps(batch["keypoint"].to(dev, non_blocking=True),
                             batch["keypoint_score"].to(dev, non_blocking=True), batch["img_shape"],
                             batch["person_mask"].to(dev, non_blocking=True), num_clips=num_clips)
        out = {"imgs": imgs}
        if "label" in batch:
            out["label"] = batch["label"]
        return out


def _split(cfg: C.Config, split: str):
    from posec3d.data.heatmap_torch import split_pipeline

    return split_pipeline(C.pipeline_cfg(cfg, split), max_persons=int(cfg.get("max_persons", 2)))


def batch_transform_for(cfg: C.Config, split: str, device: torch.device) -> Callable[[dict], dict] | None:
    """With ``heatmap_on='batch'`` the loader stops before heatmaps and this draws them on ``device``."""
    if C.heatmap_on(cfg) == "loader":
        return None
    return BatchHeatmapStep(_split(cfg, split)[1], device)


def loader_pipeline(cfg: C.Config, split: str) -> list | None:
    """The per-sample pipeline the loader runs (shortened when heatmaps move into the batch)."""
    if C.heatmap_on(cfg) == "loader":
        return None
    return _split(cfg, split)[0]


def with_outliers(cfg: C.Config, train_set, outliers: C.Config):
    """The training set followed by the ``outliers`` file's samples (label -1), same pipeline and repeats."""
    from posec3d.data.dataset import WithOutliers

    if C.class_prob(cfg) is not None:
        raise ConfigError(f"{C._where(cfg)}: outliers and class_prob cannot be combined (outliers have no class)")
    check_fits_model(cfg, train_set)  # the loader's own check sees only the joined set's labels
    ds = split_dataset_cfg(cfg, "train", ann_file=outliers.ann_file, pipeline=loader_pipeline(cfg, "train"))
    inner, _ = C.unwrap_dataset(ds)  # the nested dict itself, edited in place
    inner["split"] = outliers.split  # None: every sample of the file
    return WithOutliers(train_set, build_dataset(ds, f"{C._where(cfg)}: outliers"))


def set_train_mode(model: nn.Module, norm_eval: bool) -> None:
    """``model.train()``; with ``norm_eval`` every BatchNorm keeps using (and not updating) its
    running statistics, so a sample's output does not depend on the rest of its batch."""
    model.train()
    if norm_eval:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def set_deterministic(enabled: bool) -> None:
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _seed_main_process_data_rngs(seed: int) -> None:
    """Loader work done in this process (num_workers=0) draws from numpy / random: seed per epoch."""
    np.random.seed(seed % 2**32)
    random.seed(seed)


def train(cfg: C.Config, work_dir: str | os.PathLike | None = None, *, resume: str | bool | None = None,
          load_from: str | None = None, validate: bool = False, seed: int | None = None,
          deterministic: bool = False, amp: bool = False, device: str | None = None,
          progress: Callable[..., None] | None = None, echo: Callable[[str], None] = print) -> TrainResult:
    """Train the config's model; returns where things are and the best validation metrics."""
    # ---- setup --------------------------------------------------------------------------------
    dist = D.setup(device)
    work_dir = Path(work_dir or cfg.get("work_dir") or Path("work_dirs") / Path(C._where(cfg)).stem)
    main = dist.is_main
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        C.dump_config(cfg, work_dir / "config.py")
    say = echo if main else (lambda _msg: None)
    class_names = C.class_names(cfg)  # read now: a bad label map must not wait for the last epoch
    set_deterministic(deterministic)

    resume = resume if resume is not None else C.resume_from(cfg)
    resume_path = None
    if resume:
        resume_path = Path(resume) if isinstance(resume, (str, os.PathLike)) else find_latest(work_dir)
        if resume_path is None:
            say(f"--resume: no checkpoint in {work_dir} yet; starting from scratch")
    state = resume_state(resume_path) if resume_path else None
    if state is not None:
        seed = int(state["meta"].get("seed", 0))
    elif seed is None:
        seed = C.seed(cfg)
    if seed is None:  # a fresh random seed, the same on every rank
        seed = D.broadcast_object(random.SystemRandom().randrange(2**31))
    torch.manual_seed(seed + dist.rank)
    _seed_main_process_data_rngs(seed)

    # ---- data ---------------------------------------------------------------------------------
    train_set = build_dataset(split_dataset_cfg(cfg, "train", pipeline=loader_pipeline(cfg, "train")),
                              C._where(cfg))
    outliers = C.outliers(cfg)
    if outliers is not None:
        train_set = with_outliers(cfg, train_set, outliers)
    train_loader = build_train_loader(cfg, train_set, dist, seed)
    train_transform = batch_transform_for(cfg, "train", dist.device)
    val_loader = val_transform = None
    if validate:
        val_set = build_dataset(split_dataset_cfg(cfg, "val", pipeline=loader_pipeline(cfg, "val")), C._where(cfg),
                                test_mode=True)
        val_loader = build_eval_loader(val_set, dist, C.batch_size(cfg, "val"), C.num_workers(cfg, "val"))
        val_transform = batch_transform_for(cfg, "val", dist.device)

    # ---- model and optimizer ------------------------------------------------------------------
    from posec3d.models import build_model

    model = build_model(C.model_cfg(cfg)).to(dist.device)
    if outliers is not None:
        head = getattr(model, "cls_head", None)
        if not hasattr(head, "outlier_weight"):
            raise ConfigError(f"{C._where(cfg)}: outliers need a head with an outlier loss (I3DHead), "
                              f"not {type(head).__name__}")
        head.outlier_weight = outliers.weight
    if cfg.get("sync_bn") and dist.distributed:
        if dist.device.type != "cuda":
            raise ConfigError(f"{C._where(cfg)}: sync_bn needs CUDA devices (torch's SyncBatchNorm does not "
                              "run on CPU); set sync_bn=False or norm_eval=True")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    speed = train_speedups(cfg, C.model_cfg(cfg), dist.device)
    if speed.channels_last:
        apply_channels_last(model)  # before the optimizer, so its states take the same layout
    optimizer = build_optimizer(model, C.optimizer_cfg(cfg), fused=speed.fused_optimizer)
    clip = C.grad_clip_cfg(cfg)
    max_epochs = C.total_epochs(cfg)
    iters_per_epoch = len(train_loader)
    schedule = LRSchedule(C.lr_schedule_cfg(cfg), C.optimizer_cfg(cfg)["lr"], iters_per_epoch, max_epochs)
    use_scaler = amp and dist.device.type == "cuda"  # bf16 autocast on CPU needs no loss scaling
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None

    # ---- resume or fine-tune ------------------------------------------------------------------
    start_epoch, iteration, best = 0, 0, None
    if state is not None:
        from posec3d.models.checkpoint import load_state

        load_state(model, state["state_dict"], strict=True, source=f"checkpoint {resume_path}")
        load_optimizer_state(optimizer, state["optimizer"], resume_path)
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, iteration = int(state["meta"]["epoch"]), int(state["meta"]["iter"])
        if not 0 <= start_epoch <= max_epochs:  # past the end it would print "done" having done nothing
            raise CheckpointError(f"{resume_path}: the checkpoint is at epoch {start_epoch} but the config trains "
                                  f"{max_epochs} epochs; nothing to resume (raise total_epochs to continue)")
        if "rng" in state:
            restore_rng(state["rng"])  # rank 0's states: the checkpoint holds one set
        if dist.rank > 0:  # other ranks need dropout streams of their own again
            torch.manual_seed(seed + dist.rank + 7919 * start_epoch)
        best = state["meta"].get("best")
        say(f"resumed from {resume_path} at epoch {start_epoch}, iteration {iteration}")
    else:
        load_from = load_from or C.load_from(cfg)
        if load_from:
            load_pretrained(model, load_from)  # a classifier of another size is skipped
            say(f"loaded weights from {load_from} (fine-tuning)")
    del state

    step_model = TrainStep(model)
    if dist.distributed:
        step_model = nn.parallel.DistributedDataParallel(
            step_model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None,
            find_unused_parameters=bool(cfg.get("find_unused_parameters", False)))
    if speed.compile:
        step_model = compile_step(step_model, speed.compile_cache, work_dir)

    log = MetricsLog(work_dir, enabled=main, resume_iter=iteration if start_epoch else None, echo=say)
    ck = C.checkpoint_cfg(cfg)
    log_every = C.log_interval(cfg)
    config_text = C.config_to_text(cfg)
    last_val, best_scores = None, None
    total_iters = iters_per_epoch * max_epochs
    if progress is not None:
        progress(advance=iteration, total=total_iters)
    say(f"training {max_epochs} epochs x {iters_per_epoch} iterations, {dist.world_size} process(es), "
        f"batch {C.batch_size(cfg, 'train')} per process, seed {seed}, work dir {work_dir}; "
        f"speed-ups: {describe(speed)}")

    # ---- epochs -------------------------------------------------------------------------------
    # Freed blocks stay in the heap while training (`engine.speedups.freed_memory_kept`).
    with freed_memory_kept(speed.keep_freed_memory):
        for epoch in range(start_epoch, max_epochs):
            set_train_mode(model, norm_eval=bool(cfg.get("norm_eval", False)))
            _seed_main_process_data_rngs(seed + epoch)
            data_time = compute_time = first_wait = 0.0
            loss_sum, loss_count, samples = 0.0, 0, 0
            window: list[float] = []
            tick = time.perf_counter()
            for batch in train_loader.epoch(epoch):
                if train_transform is not None:
                    batch = train_transform(batch)
                inputs, labels = model_inputs(batch, dist.device), batch_labels(batch).to(dist.device)
                loaded = time.perf_counter()
                data_time += loaded - tick
                if loss_count == 0:
                    first_wait = loaded - tick  # includes starting the loader workers
                samples += len(labels)

                lr = schedule.lr_at(iteration)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(dist.device.type, enabled=amp, dtype=_amp_dtype(dist.device)):
                    losses = step_model(*inputs, labels)
                loss = sum(v for k, v in losses.items() if "loss" in k)
                if not _all_finite(loss, dist):
                    _write_log_safely(log)
                    raise TrainingDiverged(
                        f"loss became {loss.item()} at epoch {epoch + 1}, iteration {iteration + 1} (lr {lr:.4g}); "
                        f"stopping. The last good checkpoint is {find_latest(work_dir) or 'none (first epoch)'}. "
                        "Try a lower lr or check the data.")
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip.max_norm, norm_type=clip.norm_type)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                iteration += 1
                tick = time.perf_counter()
                compute_time += tick - loaded

                loss_value = loss.item()
                loss_sum += loss_value
                loss_count += 1
                window.append(loss_value)
                if progress is not None:
                    progress(advance=1, epoch=f"{epoch + 1}/{max_epochs}", loss=loss_value, lr=lr,
                             data=f"{data_time:.0f}s", compute=f"{compute_time:.0f}s")
                if iteration % log_every == 0 or iteration == iters_per_epoch * (epoch + 1):
                    # The mean over the interval: one batch's loss is too noisy to plot.
                    log.log({"mode": "train", "epoch": epoch + 1, "iter": iteration, "loss": float(np.mean(window)),
                             "lr": lr, "data_time": data_time, "compute_time": compute_time,
                             **{k: float(v.detach()) for k, v in losses.items() if k != "loss_cls"}}, flush=False)
                    window.clear()

            # ---- end of epoch: validate, then checkpoint (so best.pth and meta['best'] agree) -------
            record = {"mode": "epoch", "epoch": epoch + 1, "iter": iteration,
                      "loss": D.all_reduce_mean(loss_sum / max(loss_count, 1), dist.device),
                      "data_wait_fraction": data_time / max(data_time + compute_time, 1e-9),
                      "samples": samples, "data_time": data_time, "compute_time": compute_time,
                      "first_batch_wait": first_wait}
            log.log(record, flush=False)
            is_best = False
            if val_loader is not None and (epoch + 1) % C.val_interval(cfg) == 0:
                scores, labels = predict(model, val_loader, dist, batch_transform=val_transform, amp=amp)
                last_val = {"epoch": epoch + 1, **evaluate(scores, labels)}
                log.log({"mode": "val", "iter": iteration, **last_val}, flush=False)
                say(f"epoch {epoch + 1}: val top1 {last_val['top1']:.4f} top5 {last_val['top5']:.4f} "
                    f"mean_class {last_val['mean_class_accuracy']:.4f}")
                if best is None or last_val["top1"] > best["top1"]:
                    best, is_best = dict(last_val), True
                    best_scores = (scores, labels)
            if main:
                save_args = dict(epoch=epoch + 1, iteration=iteration, seed=seed, config_text=config_text,
                                 extra_meta={"best": best, "world_size": dist.world_size})
                save_training_checkpoint(work_dir / "latest.pth", model, optimizer, scaler, **save_args)
                if (epoch + 1) % ck.interval == 0 or epoch + 1 == max_epochs:
                    save_training_checkpoint(work_dir / f"epoch_{epoch + 1}.pth", model, optimizer, scaler, **save_args)
                    prune_epoch_checkpoints(work_dir, ck.max_keep_ckpts)
                if is_best:
                    save_training_checkpoint(work_dir / "best.pth", model, optimizer, scaler, **save_args)
            log.flush()
            D.barrier()

    # ---- the end: figures ---------------------------------------------------------------------
    if main:
        from posec3d.engine.plots import plot_confusion, plot_curves

        plot_curves(log.records, work_dir / "curves.png")
        if best_scores is not None:
            scores, labels = best_scores
            cm = confusion_matrix(scores.argmax(1), labels, max(scores.shape[1], int(labels.max()) + 1))
            plot_confusion(cm, work_dir / "confusion_matrix.png", class_names,
                           title=f"validation, best epoch {best['epoch']} (top1 {best['top1']:.3f})")
    log.close()
    return TrainResult(work_dir, max_epochs, iteration, best, last_val, log.records)


def _all_finite(loss: torch.Tensor, dist: D.DistInfo) -> bool:
    """True when the loss is finite on every rank (so all ranks stop together)."""
    ok = torch.tensor([1.0 if bool(torch.isfinite(loss.detach()).all()) else 0.0], device=dist.device)
    if dist.distributed:
        torch.distributed.all_reduce(ok, op=torch.distributed.ReduceOp.MIN)
    return bool(ok.item() > 0)


def _write_log_safely(log: MetricsLog) -> None:
    try:
        log.flush()
    except OSError:
        pass
