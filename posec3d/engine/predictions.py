"""What `engine.inference` answers: ranked classes and per-window top classes.

Kept apart from `engine.inference` (and free of torch) so that a process that only draws results,
like a `demo-folder` render worker unpickling a video's result, does not import torch (1.3 s of CPU
per worker).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """One class of a ranking: its index, name and score (probability when the model averages probs)."""

    index: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"label": self.label, "index": self.index, "score": round(float(self.score), 6)}


@dataclass(frozen=True)
class WindowPrediction:
    """The top class of frames ``start`` .. ``end - 1`` of a video."""

    start: int
    end: int
    top: Prediction

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "label": self.top.label, "score": round(self.top.score, 6)}


def window_at(timeline: list[WindowPrediction], frame: int) -> WindowPrediction | None:
    """The window shown at ``frame``: the one covering it whose centre is nearest."""
    covering = [w for w in timeline if w.start <= frame < w.end]
    if not covering:
        return None
    return min(covering, key=lambda w: abs((w.start + w.end - 1) / 2 - frame))
