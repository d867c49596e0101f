"""`posec3d convert {taekwondo,ntu-skeleton,csv}`: other skeleton formats -> a pyskl annotation pickle."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posec3d.apps.progress import progress_bar

convert_app = typer.Typer(
    help="Convert other skeleton formats to a pyskl annotation pickle (dict with 'split' and "
    "'annotations').",
    no_args_is_help=True,
)


def _require(path: Path, directory: bool) -> None:
    # Fail before the progress bar is drawn, so the error is the only output.
    from posec3d.errors import AnnotationError

    if not (path.is_dir() if directory else path.is_file()):
        raise AnnotationError(f"{path}: {'directory' if directory else 'file'} not found")


def _save(out: Path, annotations: list[dict], split: dict | None) -> None:
    from posec3d.data.annotations import save_annotations

    save_annotations(out, annotations, split)
    counts = ", ".join(f"{k} {len(v)}" for k, v in split.items()) if split else "no splits"
    typer.echo(f"wrote {out}: {len(annotations)} samples ({counts})")


@convert_app.command("taekwondo")
def taekwondo(
    directory: Path = typer.Argument(..., help="Dataset root (holding 01.데이터) or the 01.데이터 folder."),
    out: Path = typer.Option(..., "-o", "--out", help="Output .pkl; the label map goes next to it as "
                             "<stem>_label_map.txt."),
) -> None:
    """Goyang Taekwondo JSON labels -> COCO-17 pickle with train/val splits and a 64-class label map."""
    from posec3d.data.formats.taekwondo import NUM_CLASSES, convert_taekwondo
    from posec3d.files import atomic_write_text

    _require(directory, directory=True)
    with progress_bar(None, "sequences") as update:
        annotations, split, names = convert_taekwondo(directory, progress=update)
    if len(names) != NUM_CLASSES:
        typer.echo(f"warning: found {len(names)} class folders, the dataset has {NUM_CLASSES}; labels "
                   "index the folders found, so they differ from the official label map", err=True)
    _save(out, annotations, split)
    label_map = out.with_name(out.stem + "_label_map.txt")
    atomic_write_text(label_map, "\n".join(names) + "\n")
    typer.echo(f"wrote {label_map}: {len(names)} classes")


@convert_app.command("ntu-skeleton")
def ntu_skeleton(
    directory: Path = typer.Argument(..., help="Folder with NTU RGB+D .skeleton files (searched recursively)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output .pkl."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="Bodies kept per sample."),
) -> None:
    """NTU RGB+D .skeleton files -> COCO-17 colour-frame 2D pickle with xsub/xview(/xset) splits."""
    from posec3d.data.formats.ntu_skeleton import convert_ntu_skeletons

    _require(directory, directory=True)
    with progress_bar(None, "skeleton files") as update:
        annotations, split, skipped = convert_ntu_skeletons(directory, max_persons=max_persons,
                                                            progress=update)
    if skipped:
        shown = ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        typer.echo(f"skipped {len(skipped)} file(s) without any body: {shown}", err=True)
    _save(out, annotations, split)


@convert_app.command("csv")
def csv(
    file: Path = typer.Argument(..., help="CSV with header video,frame,person,joint,x,y[,score][,label]"
                                "[,height,width]; see posec3d.data.formats.csv_table."),
    out: Path = typer.Option(..., "-o", "--out", help="Output .pkl."),
    split_column: Optional[str] = typer.Option(None, "--split-column",
                                               help="Column holding each video's split name."),
    img_shape: Optional[tuple[int, int]] = typer.Option(None, "--img-shape", help="Frame size H W when "
                                                        "the table has no height/width columns."),
) -> None:
    """A long CSV table (one row per video, frame, person, joint) -> pickle."""
    from posec3d.data.formats.csv_table import convert_csv

    _require(file, directory=False)
    with progress_bar(None, "videos") as update:
        annotations, split = convert_csv(file, split_column=split_column, img_shape=img_shape,
                                         progress=update)
    _save(out, annotations, split)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.add_typer(convert_app, name="convert")
