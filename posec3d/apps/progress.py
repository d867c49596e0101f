"""The one progress helper: rich bars for the CLI, handed to the library as plain callbacks.

Library code never imports rich; it takes ``progress: Callable[..., None] | None`` and calls
``progress(advance=1, **fields)`` (fields such as ``fps=23.1`` or ``loss=0.7`` show in the bar).
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


@contextlib.contextmanager
def progress_bar(total: int | None, description: str, *, disable: bool = False) -> Iterator[Callable[..., None]]:
    """Yield ``update(advance=1, total=None, **fields)``; fields are shown after the bar."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, disable=disable, transient=False) as bar:
        task = bar.add_task(description, total=total, info="")

        def update(advance: float = 1, total: int | None = None, **fields) -> None:
            info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
            kwargs = {"advance": advance}
            if total is not None:
                kwargs["total"] = total
            if fields:
                kwargs["info"] = info
            bar.update(task, **kwargs)

        try:
            yield update
        except BaseException:
            # A failed run ends with its one-line error alone: the bar is not left on screen (nor,
            # when stderr is a file, printed there as a final frame).
            bar.live.transient = True
            raise
