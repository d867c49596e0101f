"""The open set: when a top label counts as unknown, and how an unknown label reads."""
from __future__ import annotations

from typing import Optional

from posec3d.errors import ConfigError


def check_unknown_threshold(unknown_threshold: Optional[float]) -> None:
    """``--unknown-threshold`` is a probability: within [0, 1] (``None``: the model's own)."""
    if unknown_threshold is not None and not 0.0 <= float(unknown_threshold) <= 1.0:
        raise ConfigError(f"--unknown-threshold must be within [0, 1], got {unknown_threshold}")


def resolve_unknown_threshold(recognizer, unknown_threshold: Optional[float]) -> float:
    """``None`` means the recognizer's own calibrated threshold (0.0 when it has none); 0 is off."""
    if unknown_threshold is None:
        return float(getattr(recognizer, "unknown_threshold", 0.0) or 0.0)
    check_unknown_threshold(unknown_threshold)
    return float(unknown_threshold)


def is_unknown(score: float, threshold: float) -> bool:
    """A top score (calibrated probability) below the threshold is unknown; threshold 0 never is."""
    return threshold > 0.0 and float(score) < threshold


def display_label(label: str, score: float, unknown: bool) -> str:
    """``"label 0.87"``, or ``"unknown (best guess: label 0.41)"`` for an open-set reject."""
    if unknown:
        return f"unknown (best guess: {label} {score:.2f})"
    return f"{label} {score:.2f}"
