"""`posec3d ensemble`: fused accuracy of several score dumps (joint + limb streams, ...)."""
from __future__ import annotations

import json
import os
from typing import List, Optional

import typer


def ensemble(
    scores: List[str] = typer.Argument(..., help="Score dumps (pyskl list of arrays or mmaction2 list of dicts)."),
    weights: Optional[List[str]] = typer.Option(None, "--weights", help="One weight per score file (default 1 each): "
                                                "'--weights 1 2', '--weights 1,2' or the flag repeated."),
    ann_file: Optional[str] = typer.Option(None, "--ann-file", help="Annotation file giving the labels "
                                           "(optional when the dumps carry gt_label)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split of --ann-file the scores follow."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the fused metrics to this JSON file."),
    apply_softmax: bool = typer.Option(False, "--apply-softmax", help="Softmax each stream's scores before fusing."),
) -> None:
    """Fuse score files by a weighted sum and report top-1, top-5 and mean class accuracy."""
    from posec3d.engine.ensemble import ensemble as run
    from posec3d.files import atomic_write_text

    from posec3d.errors import ConfigError

    if weights:
        # `--weights 1 1` (mmaction2's --coefficients style): typer takes one value per flag, so the
        # later numbers arrive among the score files; numbers that are not files are weights.
        extra = [s for s in scores if _is_number(s) and not os.path.exists(s)]
        scores = [s for s in scores if s not in extra]
        weights = [*weights, *extra]
    try:
        parsed = [float(w) for item in (weights or []) for w in item.replace(",", " ").split()]
    except ValueError:
        raise ConfigError(f"--weights {weights!r}: weights must be numbers") from None
    result = run(scores, parsed or None, ann_file, split, apply_softmax)
    for path, m in result["streams"].items():
        typer.echo(f"{path}: top1 {m['top1']:.4f}  top5 {m['top5']:.4f}  mean_class {m['mean_class_accuracy']:.4f}")
    typer.echo(f"fused (weights {result['weights']}): top1 {result['top1']:.4f}  top5 {result['top5']:.4f}  "
               f"mean_class {result['mean_class_accuracy']:.4f}  ({result['num_samples']} videos)")
    if json_out:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("ensemble")(ensemble)
