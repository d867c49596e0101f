"""The `posec3d` command. Each command lives in its own module with a ``register(app)``."""
from __future__ import annotations

import sys

import typer
from rich.console import Console

from posec3d.errors import PoseC3DError

app = typer.Typer(
    name="posec3d",
    help="Skeleton-based action recognition with PoseC3D: poses from video, datasets, "
    "training, testing and demos.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



def _version(value: bool) -> None:
    if value:
        from posec3d import __version__

        typer.echo(f"posec3d {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """PoseC3D skeleton-based action recognition."""


# One module per command family; each adds its commands to `app`.
from posec3d.apps import (  # noqa: E402
    build_dataset,
    convert,
    demo,
    demo_folder,
    ensemble,
    export_onnx,
    extract,
    info,
    live,
    serve,
    train,
    test,
    vis,
    zoo,
)

for _module in (info, extract, build_dataset, convert, vis, train, test, ensemble,
                export_onnx, demo, demo_folder, live, zoo, serve):
    _module.register(app)


def main() -> None:
    try:
        app()
    except PoseC3DError as e:
        from rich.markup import escape

        # escape: a message may hold brackets ("pip install 'posec3d[web]'") that are not markup.
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False,
                                                   markup=True)
        sys.exit(1)
