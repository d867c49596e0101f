"""`posec3d extract`: poses of one video -> a pyskl annotation file."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import typer


def build_estimator(pose_model: Optional[Path], det_model: Optional[Path], max_persons: int):
    """The embedded MediaPipe model, or an ONNX top-down model (with an ONNX or MediaPipe detector)."""
    from posec3d.pose.estimators import build_estimator as build

    return build(pose_model=pose_model, det_model=det_model, max_persons=max_persons)


def extract(
    video: Path = typer.Argument(..., help="Video file (anything ffmpeg reads)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output annotation pickle."),
    label: Optional[int] = typer.Option(None, "--label", help="Class index stored in the annotation (default -1)."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="Person slots kept (most present first)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Keep at most this many frames."),
    stride: int = typer.Option(1, "--stride", min=1, help="Keep every S-th frame."),
    short_side: int = typer.Option(540, "--short-side", min=0, help="Downscale frames to this short side for "
                                   "the pose model (keypoints stay in original pixels); 0 = full size."),
    pose_model: Optional[Path] = typer.Option(None, "--pose-model", help="ONNX top-down pose model (SimCC head) or a MediaPipe .task bundle; "
                                              "default: the bundled MediaPipe model."),
    det_model: Optional[Path] = typer.Option(None, "--det-model", help="ONNX person detector for --pose-model "
                                             "(dets (1,N,5) + labels (1,N)); default: MediaPipe's detector."),
) -> None:
    """Extract 2D poses (COCO-17) from VIDEO into a pyskl-format annotation file."""
    from posec3d.apps.progress import progress_bar
    from posec3d.pose.extract import VideoTruncatedWarning, extract_video, save_annotation_file
    from posec3d.files import check_writable
    from posec3d.pose.video import VideoReader

    VideoReader(video).close()  # a missing or unreadable video fails before the model loads
    check_writable(out)  # and a read-only output folder too
    estimator = build_estimator(pose_model, det_model, max_persons)
    try:
        with warnings.catch_warnings(record=True) as caught, progress_bar(None, f"extract {video.name}") as update:
            warnings.simplefilter("always", VideoTruncatedWarning)
            ann = extract_video(video, estimator, max_persons=max_persons, max_frames=max_frames,
                                stride=stride, progress=update, label=label,
                                short_side=short_side or None)
    finally:
        estimator.close()
    for w in caught:
        if issubclass(w.category, VideoTruncatedWarning):
            typer.secho(f"warning: {w.message}", fg=typer.colors.YELLOW, err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    save_annotation_file(out, [ann], split={"all": [ann["filename"]]})
    people = int((ann["keypoint_score"].max(-1) > 0).any(-1).sum())
    typer.echo(f"{out}: {ann['total_frames']} frames, {people} person slot(s) with poses, "
               f"img_shape {ann['img_shape']}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("extract")(extract)
