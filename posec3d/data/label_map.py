"""Label maps: one class name per line, line i (0-based) naming label i."""
from __future__ import annotations

import os
from pathlib import Path

from posec3d.errors import AnnotationError


def read_label_map(path: str | os.PathLike) -> list[str]:
    """Class names by label index. Blank lines inside keep their index; trailing ones are ignored."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read the label map ({e.strerror or e})") from None
    names = [line.strip() for line in lines]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise AnnotationError(f"{path}: label map is empty")
    return names


def label_indices(names: list[str]) -> dict[str, int]:
    """Class name -> label index (the first line wins if a name repeats; blank lines are skipped)."""
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        if name:
            index.setdefault(name, i)
    return index
