"""`posec3d train`: train a config's model (one process, or every rank under torchrun)."""
from __future__ import annotations

from typing import List, Optional

import typer


def train(
    config: str = typer.Argument(..., help="Config file (pyskl or mmaction2 layout)."),
    work_dir: Optional[str] = typer.Option(None, "--work-dir", help="Where checkpoints and logs go "
                                           "(default: the config's work_dir, else work_dirs/<config name>)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Resume from this checkpoint; give 'auto' "
                                         "(or the flag alone) for the work dir's latest.pth.",
                                         flag_value="auto", is_flag=False),
    load_from: Optional[str] = typer.Option(None, "--load-from", help="Fine-tune from these weights (pyskl, "
                                            "mmaction2 or ours); a classifier of another size is skipped."),
    validate: bool = typer.Option(False, "--validate", help="Evaluate on the val split after every epoch."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default: the config's, else random)."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic algorithms (bitwise "
                                       "reproducible runs and resumes on CPU)."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (fp16 + loss scaling on CUDA, bf16 on CPU)."),
    cfg_options: Optional[List[str]] = typer.Option(None, "--cfg-options", help="Override config keys: "
                                                    "key=value (dotted keys, lists, tuples, bools); repeatable."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
) -> None:
    """Train a PoseC3D model; writes checkpoints, metrics.jsonl, curves.png and confusion_matrix.png."""
    from posec3d.apps.progress import progress_bar
    from posec3d.engine import distributed as D
    from posec3d.engine.config import load_config
    from posec3d.engine.trainer import train as run

    cfg = load_config(config, _split_options(cfg_options))
    is_main = int(__import__("os").environ.get("RANK", "0")) == 0
    resume_arg = True if resume == "auto" else resume
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


def _split_options(options: list[str] | None) -> list[str]:
    """Accept `--cfg-options a=1 --cfg-options b=2` and `--cfg-options "a=1 b=2"`."""
    out: list[str] = []
    for item in options or []:
        parts = item.split()
        # A value may itself contain spaces inside brackets; only split where every part is key=value.
        out.extend(parts if all("=" in p for p in parts) else [item])
    return out


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("train")(train)
