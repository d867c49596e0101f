"""Rich tables of user data (class names, splits, paths, catalogue descriptions)."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text


def add_plain_row(table: Table, *cells: str) -> None:
    """Cells as plain text: a class name, split or path holding "[...]" is not rich markup
    (rich would drop it, restyle what follows, or raise a MarkupError)."""
    table.add_row(*(Text(cell) for cell in cells))
