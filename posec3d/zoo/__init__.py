"""Bundled models: trained checkpoints shipped inside the wheel, addressed by a short name.

Each model lives in its own folder ``posec3d/zoo/<folder>/`` with a ``model.json`` manifest::

    {"name": "penn-action", "description": "...",
     "config": "config.py", "checkpoint": "model.pth", "label_map": "label_map.txt"}

Anything that accepts a config + checkpoint pair (``test``, ``demo``, ``demo-folder``) accepts
``--model NAME`` instead and calls :func:`resolve_model`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from posec3d.data.label_map import read_label_map  # re-exported: callers use posec3d.zoo.read_label_map
from posec3d.errors import CheckpointError, ConfigError

ZOO_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "penn-action"


@dataclass(frozen=True)
class BundledModel:
    """A shipped model: absolute paths to its config, checkpoint and label map."""

    name: str
    config: Path
    checkpoint: Path
    label_map: Path
    description: str

    def labels(self) -> list[str]:
        """Class names, line i = label i."""
        return read_label_map(self.label_map)


def _load_manifest(folder: Path) -> BundledModel:
    manifest = folder / "model.json"
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        return BundledModel(
            name=meta["name"],
            config=folder / meta["config"],
            checkpoint=folder / meta["checkpoint"],
            label_map=folder / meta["label_map"],
            description=meta.get("description", ""),
        )
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{manifest}: broken bundled-model manifest ({e})") from None


def list_models() -> list[BundledModel]:
    """Every bundled model, sorted by name."""
    models = [_load_manifest(d) for d in ZOO_DIR.iterdir() if (d / "model.json").is_file()]
    return sorted(models, key=lambda m: m.name)


def resolve_model(name: str | None = None) -> BundledModel:
    """The bundled model called ``name`` (default: the Penn Action model), files checked."""
    name = name or DEFAULT_MODEL
    models = {m.name: m for m in list_models()}
    if name not in models:
        known = ", ".join(sorted(models)) or "none"
        raise ConfigError(f"unknown bundled model {name!r}; bundled models: {known}")
    model = models[name]
    for path in (model.config, model.checkpoint, model.label_map):
        if not path.is_file():
            raise CheckpointError(f"bundled model {name!r} is incomplete: {path} is missing")
    return model
