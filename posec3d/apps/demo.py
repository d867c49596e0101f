"""`posec3d demo`: video -> poses (embedded estimator) -> action -> annotated video and JSON.

A thin shell: the flow lives in ``posec3d.stream`` (``load_recognizer``, ``analyse_video``,
``render_video``), shared with `posec3d demo-folder` and `posec3d live`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from posec3d.errors import ConfigError
from posec3d.files import atomic_write_text


def write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------
# CLI


def demo(
    video: Path = typer.Argument(..., help="Input video (anything PyAV/ffmpeg reads)."),
    out: Path = typer.Option(..., "-o", "--out", help="Annotated output video (.mp4)."),
    model: Optional[str] = typer.Option(None, "--model", help="A model name from `posec3d models`: "
                                        "bundled, or released and downloaded; default: penn-action."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file (pyskl / mmaction2 / posec3d)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint matching --config."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the top-k predictions as JSON."),
    topk: int = typer.Option(5, "--topk", min=1, help="How many classes to report."),
    per_person: bool = typer.Option(False, "--per-person", help="Also classify each tracked person alone "
                                    "(with --window: each person window by window too)."),
    window: Optional[int] = typer.Option(None, "--window", min=1, help="Classify sliding windows of N frames."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Window step in frames (default N/2)."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="People tracked by the estimator."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Use only the first N frames."),
    num_clips: Optional[int] = typer.Option(None, "--num-clips", min=1, help="Override the test clips."),
    device: str = typer.Option("cpu", "--device", help="torch device for the recognizer."),
    frame_png: Optional[Path] = typer.Option(None, "--save-frame", help="Also save one annotated frame "
                                             "(the middle one) as PNG."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load checkpoints that pickle Python objects "
                                      "beyond tensors and plain data (runs code from the file: trusted files only)."),
    unknown_threshold: Optional[float] = typer.Option(
        None, "--unknown-threshold", help="Report 'unknown' when the top score is below F "
        "(default: the model's calibrated threshold; 0 turns it off)."),
    causal: bool = typer.Option(False, "--causal", help="Poses and per-person windows exactly as `posec3d live` "
                                "computes them: tracks as they come, no second pose pass, no look-ahead."),
) -> None:
    """Recognise the action in a video: poses, skeletons drawn, top-k labels (and a timeline)."""
    from posec3d.apps.progress import progress_bar
    from posec3d.files import check_writable
    from posec3d.stream import analyse_video, display_label, load_recognizer, render_video

    if stride is not None and window is None:
        raise ConfigError("--stride needs --window")
    from posec3d.stream.labels import check_unknown_threshold

    check_unknown_threshold(unknown_threshold)
    check_writable(out, json_out, frame_png)  # before the models load and the video is processed
    from posec3d.models.checkpoint import unsafe_loading_allowed

    with unsafe_loading_allowed(allow_unsafe):
        recognizer = load_recognizer(model, config, checkpoint, label_map, device=device, num_clips=num_clips)
    with progress_bar(max_frames, f"poses {video.name}") as update:
        result = analyse_video(video, recognizer, topk=topk, per_person=per_person, window=window, stride=stride,
                               max_persons=max_persons, max_frames=max_frames, unknown_threshold=unknown_threshold,
                               progress=update, causal=causal)
    total = int(result.annotation["total_frames"])
    snapshot = (total // 2, frame_png) if frame_png else None
    with progress_bar(total, f"render {out.name}") as update:
        render_video(video, out, result, progress=update, snapshot=snapshot)
    doc = result.to_json()
    if json_out is not None:
        write_json(json_out, doc)
    if result.unknown:
        top = result.predictions[0]
        typer.echo(display_label(top.label, top.score, True))
    for p in result.predictions:
        typer.echo(f"{p.score:7.4f}  {p.label}")
    for w in doc.get("timeline", []):
        typer.echo(f"  frames {w['start']:5d}-{w['end'] - 1:<5d} {display_label(w['label'], w['score'], w['unknown'])}")
    for person in doc.get("persons", []):
        typer.echo(f"  person {person['person']}: {display_label(person['label'], person['score'], person['unknown'])}")
    typer.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("demo")(demo)

