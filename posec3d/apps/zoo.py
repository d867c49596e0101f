"""`posec3d models` (bundled and released models) and `posec3d download NAME` (released checkpoints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer


def _bundled_rows() -> list[dict]:
    from posec3d.zoo import list_models, read_label_map

    rows = []
    for m in list_models():
        ready = m.checkpoint.is_file() and m.label_map.is_file() and m.config.is_file()
        rows.append({
            "name": m.name,
            "kind": "bundled",
            "description": m.description,
            "classes": len(read_label_map(m.label_map)) if m.label_map.is_file() else None,
            "checkpoint_mb": round(m.checkpoint.stat().st_size / 2**20, 2) if m.checkpoint.is_file() else None,
            "config": str(m.config),
            "checkpoint": str(m.checkpoint),
            "label_map": str(m.label_map),
            "ready": ready,
        })
    return rows


def _released_rows() -> list[dict]:
    from posec3d.zoo import describe
    from posec3d.zoo.catalogue import local_checkpoint, released_models

    rows = []
    for e in released_models():
        path = local_checkpoint(e)
        downloaded = path.is_file()
        rows.append({
            "name": e.name,
            "kind": "released" if e.source != "user" else "user",
            "source": e.source,
            "description": describe(e),
            "dataset": e.dataset,
            "backbone": e.backbone,
            "heatmap": e.heatmap,
            "classes": e.num_classes,
            "top1": e.top1,
            "metric": e.metric,
            "config": str(e.config),
            "label_map": str(e.label_map) if e.label_map else None,
            "file": e.file,
            "url": e.url,
            "sha256_prefix": e.sha256_prefix,
            "verified_by": e.verification,
            "downloaded": downloaded,
            "path": str(path),
            "checkpoint_mb": round(path.stat().st_size / 2**20, 2) if downloaded else None,
            "ready": downloaded and e.config.is_file(),
            "notes": e.notes,
        })
    return rows


def models(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """List the bundled models and the released pyskl / mmaction2 checkpoints (downloaded or not)."""
    from posec3d.zoo.catalogue import checkpoint_dir

    bundled, released = _bundled_rows(), _released_rows()
    if as_json:
        typer.echo(json.dumps({"models": bundled + released, "cache": str(checkpoint_dir())}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from posec3d.apps.tables import add_plain_row

    console = Console()
    table = Table(title="Bundled models (use with --model NAME)")
    for col in ("name", "classes", "size (MB)", "description"):
        table.add_column(col)
    for r in bundled:
        size = "missing" if r["checkpoint_mb"] is None else f"{r['checkpoint_mb']:.2f}"
        add_plain_row(table, r["name"], str(r["classes"] or "?"), size, r["description"])
    console.print(table)
    table = Table(title=Text(f"Released models (posec3d download NAME; cache {checkpoint_dir()})"))
    table.add_column("name", no_wrap=True)
    for col in ("source", "top-1 %", "checked by"):
        table.add_column(col)
    table.add_column("downloaded", overflow="fold")
    for r in released:
        top1 = "-" if r["top1"] is None else f"{r['top1']:.1f}" + (" (mean-class)" if r["metric"] == "mean_class_top1"
                                                                   else "")
        check = f"sha256 {r['sha256_prefix']}" if r["sha256_prefix"] else (
            "sha256" if r["verified_by"] == "sha256" else "size + load")
        add_plain_row(table, r["name"], r["source"], top1, check, r["path"] if r["downloaded"] else "no")
    console.print(table)
    console.print("OpenMMLab file names carry the first 8 hex digits of the file's sha256, which the download "
                  "checks; pyskl's files carry no hash, so they are checked by size and by loading them strictly "
                  "into their config's model.", highlight=False)


def download(
    names: List[str] = typer.Argument(..., metavar="NAME...", help="Released model names (see `posec3d models`)."),
    dest: Optional[Path] = typer.Option(None, "--dir", help="Download into this folder instead of the cache "
                                        "($POSEC3D_HOME or ~/.cache/posec3d, under checkpoints/); --model NAME "
                                        "only looks in the cache."),
) -> None:
    """Download released checkpoints: resumable, sha256-checked, renamed into place when complete."""
    from posec3d.apps.progress import progress_bar
    from posec3d.errors import ConfigError
    from posec3d.zoo.catalogue import checkpoint_dir, find_released
    from posec3d.zoo.download import download as fetch

    entries = []
    for name in names:
        entry = find_released(name)
        if entry is None:
            raise ConfigError(f"unknown released model {name!r}; `posec3d models` lists them")
        entries.append(entry)
    for entry in entries:
        if ((dest or checkpoint_dir()) / entry.file).is_file():
            done = fetch(entry, dest)  # only re-checked: no bar
        else:
            with progress_bar(None, entry.name) as update:
                done = fetch(entry, dest, progress=update)
        if done.already:
            typer.echo(f"{entry.name}: already downloaded, {done.path} ({done.checked} ok)")
            continue
        resumed = f", resumed from byte {done.resumed_from}" if done.resumed_from else ""
        typer.echo(f"{entry.name}: {done.path} ({done.size / 2**20:.1f} MB{resumed}; checked: {done.checked}; "
                   f"sha256 {done.sha256})")



def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("models")(models)
    app.command("download")(download)
