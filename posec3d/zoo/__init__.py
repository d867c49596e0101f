"""Models by name: bundled ones shipped inside the wheel, and released pyskl / mmaction2 ones.

Bundled: each model lives in its own folder ``posec3d/zoo/<folder>/`` with a ``model.json`` manifest::

    {"name": "penn-action", "description": "...",
     "config": "config.py", "checkpoint": "model.pth", "label_map": "label_map.txt"}

Released: the catalogue in ``catalogue.py`` / ``released.json`` (plus ``$POSEC3D_MODELS``);
``posec3d download NAME`` puts the checkpoint in the cache (``download.py``).

Anything that accepts a config + checkpoint pair (``test``, ``demo``, ``demo-folder``, ``live``,
``serve``) accepts ``--model NAME`` instead and calls :func:`resolve_model`, the one resolver for
both kinds. It never downloads: a released model that is not in the cache is an error that
names the ``posec3d download`` command.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from posec3d.data.label_map import read_label_map  # re-exported: callers use posec3d.zoo.read_label_map
from posec3d.errors import CheckpointError, ConfigError
from posec3d.zoo.catalogue import ReleasedModel, find_released, local_checkpoint, released_models

ZOO_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL = "penn-action"


@dataclass(frozen=True)
class BundledModel:
    """A model ready to load: absolute paths to its config, checkpoint and label map.

    ``source`` is 'bundled' for the shipped models, else the catalogue entry's ('pyskl',
    'mmaction2', 'user'); ``released`` is that entry.
    """

    name: str
    config: Path
    checkpoint: Path
    label_map: Path | None
    description: str
    source: str = "bundled"
    released: "ReleasedModel | None" = None

    def labels(self) -> list[str]:
        """Class names, line i = label i."""
        if self.label_map is None:
            raise ConfigError(f"model {self.name!r} has no label map")
        return read_label_map(self.label_map)


# The resolver's name for what it returns, bundled or released.
ResolvedModel = BundledModel


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
    """The model called ``name`` (default: the Penn Action model), bundled or released, files checked.

    Released models must have been downloaded (``posec3d download NAME``); this never downloads.
    """
    name = name or DEFAULT_MODEL
    bundled = {m.name: m for m in list_models()}
    if name in bundled:
        model = bundled[name]
        for path in (model.config, model.checkpoint, model.label_map):
            if not path.is_file():
                raise CheckpointError(f"bundled model {name!r} is incomplete: {path} is missing")
        return model
    entry = find_released(name)
    if entry is None:
        known = ", ".join(sorted(bundled)) or "none"
        raise ConfigError(f"unknown model {name!r}; bundled models: {known}; `posec3d models` lists the "
                          f"{len(released_models())} released ones")
    checkpoint = local_checkpoint(entry)
    if not checkpoint.is_file():
        if entry.url is None:
            raise CheckpointError(f"model {name!r}: its checkpoint {checkpoint} (listed in {entry.catalogue}) "
                                  "is missing")
        raise CheckpointError(f"model {name!r} is not downloaded ({checkpoint} is missing); "
                              f"run: posec3d download {name}")
    if not entry.config.is_file():
        raise ConfigError(f"model {name!r}: its config {entry.config} is missing (posec3d ships configs/ "
                          "in its wheel and its source checkout: this installation is incomplete)")
    if entry.label_map is not None and not entry.label_map.is_file():
        raise ConfigError(f"model {name!r}: its label map {entry.label_map} is missing")
    return BundledModel(name=name, config=entry.config, checkpoint=checkpoint, label_map=entry.label_map,
                        description=describe(entry), source=entry.source, released=entry)


def describe(entry: ReleasedModel) -> str:
    """One line about a released model: backbone, data, heatmaps and the published accuracy."""
    acc = "" if entry.top1 is None else (
        f", published {'mean-class ' if entry.metric == 'mean_class_top1' else ''}top-1 {entry.top1:g}%")
    return f"{entry.backbone}, {entry.dataset}, {entry.heatmap} ({entry.source}{acc})"


def weights_path(name_or_path: str) -> str:
    """A checkpoint path for fine-tuning (``train --load-from``, a config's ``load_from``).

    An existing file is used as is; a model name (bundled, or released and downloaded) gives its
    checkpoint; so does a released checkpoint's URL or, for OpenMMLab's hashed file names, a path
    ending in that file name (e.g. ``checkpoints/k400_posec3d-041f49c6.pth``) once downloaded.
    """
    if Path(name_or_path).is_file():
        return name_or_path
    if name_or_path in {m.name for m in list_models()} or find_released(name_or_path) is not None:
        return str(resolve_model(name_or_path).checkpoint)
    entry = _released_by_location(name_or_path)
    if entry is not None:
        path = local_checkpoint(entry)
        if not path.is_file():
            raise CheckpointError(f"{name_or_path}: that is the released model {entry.name!r}, which is not "
                                  f"downloaded; run: posec3d download {entry.name}")
        return str(path)
    raise CheckpointError(f"{name_or_path}: no such checkpoint file and no model of that name "
                          "(`posec3d models` lists the names)")


def _released_by_location(location: str) -> ReleasedModel | None:
    def bare(url: str) -> str:
        return url.split("://", 1)[-1]

    for entry in released_models():
        if entry.url and bare(entry.url) == bare(location):
            return entry
        if entry.sha256_prefix and Path(location).name == entry.file:  # the hash makes the name unique
            return entry
    return None
