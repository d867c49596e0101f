"""`posec3d test`: evaluate a checkpoint (multi-clip x flip), dump scores and metrics."""
from __future__ import annotations

import json
import os
from typing import List, Optional

import typer


def test(
    config: Optional[str] = typer.Argument(None, help="Config file (omit with --model)."),
    checkpoint: Optional[str] = typer.Argument(None, help="Checkpoint to evaluate (omit with --model)."),
    extra: Optional[List[str]] = typer.Argument(None, metavar="[KEY=VALUE]...", help="More --cfg-options items."),
    model: Optional[str] = typer.Option(None, "--model", help="A model name from `posec3d models` (bundled, or "
                                        "released and downloaded) instead of CONFIG CHECKPOINT."),
    ann_file: Optional[str] = typer.Option(None, "--ann-file", help="Annotation file (default: the config's)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of the annotation file (default: the config's)."),
    out: Optional[str] = typer.Option(None, "--out", help="Dump per-video scores here (pyskl format: a pickled "
                                      "list of float32 arrays in dataset order)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write {top1, top5, mean_class_accuracy, "
                                           "num_samples} here (fractions)."),
    num_clips: Optional[int] = typer.Option(None, "--num-clips", help="Clips per video (rewrites "
                                            "UniformSampleFrames.num_clips)."),
    flip: Optional[bool] = typer.Option(None, "--flip/--no-flip", help="Add flipped views (GeneratePoseTarget.double)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Videos per batch (default: the config's)."),
    cfg_options: Optional[List[str]] = typer.Option(None, "--cfg-options", help="Override config keys: key=value."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch CPU threads per process "
                                          "(default: torch's; 1 is often fastest on a busy shared CPU)."),
) -> None:
    """Test a model: top-1, top-5 and mean class accuracy over the test split."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    from posec3d.apps.progress import progress_bar
    from posec3d.apps.train import split_extra
    from posec3d.engine import distributed as D
    from posec3d.engine.config import load_config
    from posec3d.engine.tester import dump_scores, test as run
    from posec3d.errors import ConfigError
    from posec3d.files import atomic_write_text

    if model and config is not None and "=" in config:  # `--model NAME --cfg-options a=1 b=2`: KEY=VALUEs
        moved = [config] + ([checkpoint] if checkpoint is not None and "=" in checkpoint else [])
        extra, config = [*moved, *(extra or [])], None
        checkpoint = None if len(moved) == 2 else checkpoint
    if model:
        if config or checkpoint:
            raise ConfigError("give either --model NAME or CONFIG CHECKPOINT, not both")
        from posec3d.zoo import resolve_model

        named = resolve_model(model)
        config, checkpoint = str(named.config), str(named.checkpoint)
    elif not (config and checkpoint):
        raise ConfigError("posec3d test needs CONFIG and CHECKPOINT (or --model NAME)")
    options, positional = split_extra(extra, cfg_options)
    if positional:
        raise ConfigError(f"unexpected arguments {positional!r}")
    cfg = load_config(config, options)
    from posec3d.files import check_writable

    check_writable(out, json_out)  # before the evaluation, not after it
    is_main = int(os.environ.get("RANK", "0")) == 0
    try:
        with progress_bar(None, "test", disable=not is_main) as update:
            result = run(cfg, checkpoint, ann_file=ann_file, split=split, num_clips=num_clips, flip=flip,
                         batch_size=batch_size, device=device, progress=update)
    finally:
        D.teardown()
    if not is_main:
        return
    m = result.metrics
    if "top1" in m:
        typer.echo(f"top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  mean_class_accuracy "
                   f"{m['mean_class_accuracy']:.4f}  ({m['num_samples']} videos)")
    if out:
        dump_scores(out, result.scores)
        typer.echo(f"scores written to {out}")
    if json_out:
        atomic_write_text(json_out, json.dumps(m, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("test")(test)
