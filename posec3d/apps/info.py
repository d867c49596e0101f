"""`posec3d info ANN.pkl [--json]`: what an annotation (or score) pickle holds."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def _fmt_stats(stats: dict | None) -> str:
    if not stats:
        return "-"
    median = stats["median"]
    median = int(median) if float(median).is_integer() else median
    return f"{stats['min']} / {median} / {stats['max']}"


def info(
    ann_file: Path = typer.Argument(..., help="Annotation pickle (pyskl / mmaction2 format) or score dump."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    split: Optional[str] = typer.Option(None, "--split", help="Statistics of this split only."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line "
                                             "(line i = label i), shown next to the per-class counts."),
    config: Optional[Path] = typer.Option(None, "--config", help="A model config: its cls_head.num_classes is "
                                          "the class count (otherwise the label map's length)."),
) -> None:
    """Samples per split, classes, persons, frames, keypoint layout and dtypes of a pickle."""
    from posec3d.data.summary import summarize
    from posec3d.errors import AnnotationError, ConfigError

    summary = summarize(ann_file, split)
    names: list[str] = []
    if label_map is not None:
        from posec3d.data.label_map import read_label_map

        names = read_label_map(label_map)
        missing = [k for k in summary["class_counts"] if int(k) >= len(names)]
        if missing:
            raise AnnotationError(f"{label_map}: {len(names)} class names, but {ann_file} uses label {missing[-1]}")
        summary["class_names"] = {k: names[int(k)] for k in summary["class_counts"]}
        if summary.get("kind") != "scores":
            summary["num_classes"], summary["num_classes_from"] = len(names), "label map"
        elif len(names) != summary["num_classes"]:
            raise AnnotationError(f"{label_map}: {len(names)} class names, but {ann_file} holds scores of "
                                  f"{summary['num_classes']} classes")
    if config is not None:
        from posec3d.engine.config import load_config, model_cfg
        from posec3d.engine.evaluation import model_num_classes

        classes = model_num_classes(model_cfg(load_config(config)))
        if classes is None:
            raise ConfigError(f"{config}: model.cls_head.num_classes is missing")
        highest = summary.get("highest_label")
        if highest is not None and highest >= classes:
            raise AnnotationError(f"{ann_file}: uses label {highest}, outside the {classes} classes of {config}")
        if summary.get("kind") == "scores" and summary["num_classes"] != classes:
            raise AnnotationError(f"{ann_file}: score vectors of {summary['num_classes']} classes, but {config} "
                                  f"has {classes}")
        if names and len(names) != classes:
            raise ConfigError(f"{label_map}: {len(names)} class names for the {classes} classes of {config}")
        summary["num_classes"], summary["num_classes_from"] = classes, "config"
    if as_json:
        typer.echo(json.dumps(summary))
        return

    from rich.console import Console
    from rich.table import Table

    from posec3d.apps.tables import add_plain_row

    console = Console()
    from rich.text import Text

    # Text, not str: rich would read "[...]" in a path as markup (altered, or a MarkupError).
    table = Table(title=Text(str(ann_file)), show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value")
    add_plain_row(table, "content", summary["description"])
    add_plain_row(table, "samples", str(summary["num_samples"]) + (f" (split {summary['split']})" if summary.get("split") else ""))
    splits = summary["splits"]
    add_plain_row(table, "splits", ", ".join(f"{k} {v}" for k, v in splits.items()) if splits else "none")
    classes = summary["num_classes"]
    present = summary.get("labels_present")
    if classes is not None:
        add_plain_row(table, "classes", f"{classes}" + (f" ({present} present)" if present not in (None, classes) else ""))
    elif summary.get("highest_label") is not None:
        add_plain_row(table, "classes", f"unknown: {present} labels present, highest {summary['highest_label']} "
                                 "(--label-map or --config gives the count)")
    if summary["keypoints_per_person"] is not None:
        layout = summary.get("layout")
        coords = summary.get("coords_per_joint")
        add_plain_row(table, "keypoints / person", f"{summary['keypoints_per_person']}" + (f" ({layout})" if layout else "")
                      + (f", {coords} coords" if coords else "")
                      + (", no scores" if summary.get("has_scores") is False else ""))
    if summary["persons"] is not None:
        add_plain_row(table, "persons min/median/max", _fmt_stats(summary["persons"]))
    if summary["frames"] is not None:
        add_plain_row(table, "frames min/median/max", _fmt_stats(summary["frames"]))
    if summary.get("img_shapes"):
        add_plain_row(table, "img_shape (h x w)", ", ".join(f"{k} ({v})" for k, v in summary["img_shapes"].items()))
    add_plain_row(table, "dtypes", ", ".join(f"{k} {v}" for k, v in summary["dtypes"].items()) or "-")
    console.print(table)
    counts = summary["class_counts"]
    if counts:
        per_class = Table(title="samples per class", title_justify="left")
        per_class.add_column("label", justify="right")
        if names:
            per_class.add_column("class")
        per_class.add_column("samples", justify="right")
        for label, n in counts.items():
            add_plain_row(per_class, label, *([names[int(label)]] if names else []), str(n))
        console.print(per_class)



def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("info")(info)
