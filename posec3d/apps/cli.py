"""The `posec3d` command. Each command lives in its own module with a ``register(app)``."""
from __future__ import annotations

import sys
import warnings

import typer
from rich.console import Console
from rich.text import Text

from posec3d.errors import PoseC3DError, message_of

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


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Library warnings (e.g. tensors skipped by --load-from) are messages for the user, not for
    # debugging: one line, without the source line Python's default format adds.
    print(f"warning: {message_of(message) if isinstance(message, BaseException) else message}",
          file=file or sys.stderr)


def main() -> None:
    warnings.showwarning = _one_line_warning
    try:
        app()
    except PoseC3DError as e:
        _print_error(message_of(e))
        sys.exit(1)
    except OSError as e:
        # A disk that filled up or went read-only under a writer that did not say which file.
        from posec3d.files import is_write_error, output_error

        if not is_write_error(e):
            raise
        _print_error(str(output_error(e, e.filename if e.filename else "output")))
        sys.exit(1)


def _print_error(message: str) -> None:
    # Plain text, never markup: paths and values may contain "[red]" or "[/]", which rich would
    # alter or reject.
    text = Text("error: ", style="bold red")
    text.append(message)
    Console(stderr=True, soft_wrap=True, highlight=False).print(text)
