"""`posec3d models`: list the bundled models (``--model NAME`` in test, demo, demo-folder)."""
from __future__ import annotations

import json

import typer


def models(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """List the models bundled with posec3d."""
    from posec3d.zoo import list_models, read_label_map

    rows = []
    for m in list_models():
        ready = m.checkpoint.is_file() and m.label_map.is_file() and m.config.is_file()
        rows.append({
            "name": m.name,
            "description": m.description,
            "classes": len(read_label_map(m.label_map)) if m.label_map.is_file() else None,
            "checkpoint_mb": round(m.checkpoint.stat().st_size / 2**20, 2) if m.checkpoint.is_file() else None,
            "config": str(m.config),
            "checkpoint": str(m.checkpoint),
            "label_map": str(m.label_map),
            "ready": ready,
        })
    if as_json:
        typer.echo(json.dumps({"models": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Bundled models (use with --model NAME)")
    for col in ("name", "classes", "size (MB)", "description"):
        table.add_column(col)
    for r in rows:
        size = "missing" if r["checkpoint_mb"] is None else f"{r['checkpoint_mb']:.2f}"
        table.add_row(r["name"], str(r["classes"] or "?"), size, r["description"])
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("models")(models)
