"""`posec3d train`: train a config's model (one process, or every rank under torchrun)."""
from __future__ import annotations

import os
from typing import List, Optional

import typer


def train(
    config: str = typer.Argument(..., help="Config file (pyskl or mmaction2 layout)."),
    extra: Optional[List[str]] = typer.Argument(None, metavar="[CKPT] [KEY=VALUE]...", help="With --resume: "
                                                "the checkpoint to resume from (default: the work dir's latest); "
                                                "KEY=VALUE items continue --cfg-options."),
    work_dir: Optional[str] = typer.Option(None, "--work-dir", help="Where checkpoints and logs go "
                                           "(default: the config's work_dir, else work_dirs/<config name>)."),
    resume: bool = typer.Option(False, "--resume", help="Resume: `--resume` alone takes the work dir's "
                                "latest.pth, `--resume CKPT` that checkpoint."),
    load_from: Optional[str] = typer.Option(None, "--load-from", help="Fine-tune from these weights: a "
                                            "checkpoint file (pyskl, mmaction2 or ours) or a model name from "
                                            "`posec3d models` (downloaded first with `posec3d download NAME`); "
                                            "a classifier of another size is skipped."),
    validate: bool = typer.Option(False, "--validate", help="Evaluate on the val split after every epoch."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the config's, else random)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic algorithms (bitwise "
                                       "reproducible runs and resumes on CPU)."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (fp16 + loss scaling on CUDA, bf16 on CPU)."),
    cfg_options: Optional[List[str]] = typer.Option(None, "--cfg-options", help="Override config keys: "
                                                    "key=value (dotted keys, lists, tuples, bools); repeatable."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads per process "
                                          "(default: torch's; 1 is often fastest on a busy shared CPU)."),
    label_map: Optional[str] = typer.Option(None, "--label-map", help="Class names, one per line, for the "
                                            "confusion matrix (default: the config's label_map, else indices)."),
) -> None:
    """Train a PoseC3D model; writes checkpoints, metrics.jsonl, curves.png and confusion_matrix.png."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from posec3d.apps.progress import progress_bar
    from posec3d.engine import distributed as D
    from posec3d.engine.config import load_config
    from posec3d.engine.config import load_from as config_load_from
    from posec3d.engine.config import resume_from as config_resume_from
    from posec3d.engine.trainer import train as run
    from posec3d.zoo import weights_path

    from posec3d.errors import ConfigError

    options, positional = split_extra(extra, cfg_options)
    if len(positional) > 1:
        raise ConfigError(f"unexpected arguments {positional[1:]!r}")
    resume_checkpoint = positional[0] if positional else None
    if resume_checkpoint and config.endswith(".pth") and resume_checkpoint.endswith(".py"):
        config, resume_checkpoint = resume_checkpoint, config  # `train --resume CKPT CONFIG`
    if resume_checkpoint and not resume:
        raise ConfigError(f"unexpected argument {resume_checkpoint!r} (did you mean --resume {resume_checkpoint}?)")
    cfg = load_config(config, options)
    if label_map:
        cfg["label_map"] = label_map  # kept in the work dir's config.py for later tools
    if not resume and not config_resume_from(cfg):
        load_from = load_from or config_load_from(cfg)
        if load_from:  # a model name, a released URL or a file (SPEC §3.2's load_from URLs resolve)
            load_from = weights_path(load_from)
    is_main = int(os.environ.get("RANK", "0")) == 0
    resume_arg = (resume_checkpoint or True) if resume else None
    try:
        with progress_bar(None, "train", disable=not is_main) as update:
            result = run(cfg, work_dir, resume=resume_arg, load_from=load_from, validate=validate, seed=seed,
                         deterministic=deterministic, amp=amp, device=device, progress=update,
                         echo=typer.echo)
    finally:
        D.teardown()
    if is_main:
        msg = f"done: {result.epochs} epochs, {result.iterations} iterations; outputs in {result.work_dir}"
        if result.best:
            msg += f"; best val top1 {result.best['top1']:.4f} (epoch {result.best['epoch']})"
        typer.echo(msg)


def split_extra(extra: list[str] | None, cfg_options: list[str] | None) -> tuple[list[str], list[str]]:
    """(cfg options, other positionals). mmcv's `--cfg-options a=1 b=2` leaves `b=2` as a
    positional here (typer options take one value), so KEY=VALUE positionals join the options."""
    options: list[str] = []
    for item in cfg_options or []:
        parts = item.split()
        # A value may contain spaces inside brackets; split only where every part is key=value.
        options.extend(parts if all("=" in p for p in parts) else [item])
    positional = []
    for item in extra or []:
        (options if "=" in item and not item.endswith((".pth", ".pt")) else positional).append(item)
    return options, positional


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("train")(train)
