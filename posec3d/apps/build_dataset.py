"""`posec3d build-dataset`: lists of labelled videos -> one pyskl annotation file."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from typer.core import TyperCommand


class _GreedySplitNames(TyperCommand):
    """Let ``--split-names train val`` take several values (click options take one each).

    The values run until the next option or a token that is an existing file (a list file).
    """

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        rewritten, i = [], 0
        while i < len(args):
            token = args[i]
            rewritten.append(token)
            i += 1
            if token == "--split-names":
                first = True
                while i < len(args) and not args[i].startswith("-") and (first or not Path(args[i]).is_file()):
                    if not first:
                        rewritten.append("--split-names")
                    rewritten.append(args[i])
                    first = False
                    i += 1
        return super().parse_args(ctx, rewritten)


def build_dataset(
    lists: List[Path] = typer.Argument(..., help="Text files of 'video_path<TAB>label' lines; each is a split."),
    out: Path = typer.Option(..., "-o", "--out", help="Output annotation pickle."),
    split_names: Optional[List[str]] = typer.Option(None, "--split-names", help="One split name per list "
                                                    "(default: the list files' stems)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel processes, each with its own pose model."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Per-video cache (default: OUT.cache); "
                                             "a rerun skips cached videos."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line, so lists "
                                             "may give labels by name."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="Person slots kept per video."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Keep at most this many frames."),
    stride: int = typer.Option(1, "--stride", min=1, help="Keep every S-th frame."),
    short_side: int = typer.Option(540, "--short-side", min=0, help="Downscale frames to this short side for "
                                   "the pose model (keypoints stay in original pixels); 0 = full size."),
    pose_model: Optional[Path] = typer.Option(None, "--pose-model", help="ONNX top-down pose model (SimCC) or "
                                              "a MediaPipe .task bundle."),
    det_model: Optional[Path] = typer.Option(None, "--det-model", help="ONNX person detector for --pose-model."),
) -> None:
    """Extract poses from every listed video into one pyskl-format dataset file."""
    from posec3d.apps.progress import progress_bar
    from posec3d.files import check_writable
    from posec3d.pose.dataset_builder import build_dataset as build

    check_writable(out)  # before the workers start: a read-only output folder fails now, in one line
    check_writable(cache_dir if cache_dir is not None else out.with_name(out.name + ".cache"), folders=True)
    with progress_bar(None, "build-dataset") as update:
        report = build(lists, out, split_names=split_names, workers=workers, cache_dir=cache_dir,
                       label_map=label_map, max_persons=max_persons, max_frames=max_frames, stride=stride,
                       short_side=short_side or None,
                       pose_model=pose_model, det_model=det_model, progress=update)
    for note in report.warnings:
        typer.secho(f"warning: {note}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"{out}: {report.videos - len(report.failures)} of {report.videos} videos "
               f"({report.extracted} extracted, {report.cached} from cache; "
               f"{report.frames} frames at {report.fps:.1f} frames/s)")
    if report.failures:
        typer.secho(f"{len(report.failures)} video(s) failed, listed in {report.failed_file}:",
                    fg=typer.colors.RED, err=True)
        for source, _, error in report.failures:
            typer.secho(f"  {source}: {error}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("build-dataset", cls=_GreedySplitNames)(build_dataset)
