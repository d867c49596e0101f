"""`posec3d vis`: one MP4 per annotation sample, skeletons and label drawn over the video or a canvas."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer

from posec3d.data.skeleton_video import LAYOUTS, output_name, render_sample
from posec3d.errors import AnnotationError


def vis(
    ann_file: Path = typer.Argument(..., help="Annotation pickle (pyskl / mmaction2 format)."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Folder for the MP4 files."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Output frame rate (default: the source "
                                        "video's, else 30)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Render only the first K samples."),
    video_root: Optional[Path] = typer.Option(None, "--video-root", help="Folder of source videos "
                                              "(<frame_dir>.mp4/.avi/.mkv, or relative 'filename's)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only the samples of this split."),
    short_side: int = typer.Option(0, "--short-side", help="Downscale the output so its short side is "
                                   "at most this, e.g. 540 for small fast files (0: the video's or "
                                   "img_shape's own size)."),
    score_thr: float = typer.Option(0.3, "--score-thr", help="Hide joints scoring below this."),
    layout: str = typer.Option("auto", "--layout", help="Joint layout, drawn as COCO-17: auto (17 "
                               "COCO, 13 Penn Action, 15 JHMDB, 20 Kinect v1 in either order; others as "
                               "points), coco17, penn_action, "
                               "jhmdb, kinect20 (NTU/UTKinect order), msr_action3d."),
) -> None:
    """Draw skeleton videos with their label, over the original frames when the video is found."""
    from posec3d.apps.progress import progress_bar
    from posec3d.data.annotations import load_annotations
    from posec3d.zoo import read_label_map

    from posec3d.files import check_writable

    samples = load_annotations(ann_file, split=split)
    check_writable(out_dir, folders=True)
    if limit is not None:
        samples = samples[:limit]
    if not samples:
        raise AnnotationError(f"{ann_file}: no samples to draw" + (f" in split {split!r}" if split else ""))
    if layout not in LAYOUTS:
        raise typer.BadParameter(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    names = read_label_map(label_map) if label_map else None
    total = sum(int(np.shape(s.get("keypoint", np.zeros((0, 0))))[1]) for s in samples)
    used = 0
    with progress_bar(total, "rendering frames") as update:
        for i, sample in enumerate(samples):
            source = render_sample(sample, out_dir / output_name(sample, i), label_names=names, fps=fps,
                                   video_root=video_root, ann_dir=ann_file.resolve().parent,
                                   short_side=short_side or None, score_thr=score_thr, layout=layout,
                                   progress=update, warn=lambda msg: typer.echo(f"warning: {msg}", err=True))
            used += source is not None
    typer.echo(f"wrote {len(samples)} video(s) to {out_dir} ({used} over source video, "
               f"{len(samples) - used} on a blank canvas)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("vis")(vis)
