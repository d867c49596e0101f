"""The catalogue of released PoseC3D checkpoints (pyskl and mmaction2), plus a user's own.

``released.json`` next to this file lists the checkpoints of the pyskl and mmaction2 model zoos:
name, dataset, the matching config in ``configs/``, the published accuracy, the file name, the
URL and the sha256 prefix the file name carries. OpenMMLab file names end in the first 8 hex
digits of the file's sha256; pyskl's files (``.../joint.pth``) carry no hash, so for them
``sha256_prefix`` is null and a download is checked by its size and by loading it into the
model its config builds instead.

``POSEC3D_MODELS=path/to/models.json`` adds a user's catalogue with the same fields. In it,
``config`` and ``label_map`` are relative to the JSON file, ``url`` is optional and ``path``
(also relative to the JSON file) may name a checkpoint already on disk, so a lab can share a
folder of fine-tuned models. Downloads go to the cache, ``$POSEC3D_HOME`` or
``platformdirs.user_cache_dir('posec3d')`` (``~/.cache/posec3d`` on Linux), under ``checkpoints/``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from posec3d.errors import ConfigError

CATALOGUE = Path(__file__).resolve().parent / "released.json"
LABEL_MAPS = Path(__file__).resolve().parent / "label_maps"
# An installed wheel carries configs/ inside the package (setup.py copies it there); a source
# checkout and an editable install have it next to the package. Entries name "configs/...".
PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent
CONFIG_BASE = PACKAGE_DIR if (PACKAGE_DIR / "configs").is_dir() else REPO_ROOT
USER_CATALOGUE_ENV = "POSEC3D_MODELS"
HOME_ENV = "POSEC3D_HOME"

REQUIRED_FIELDS = ("name", "config", "file")


@dataclass(frozen=True)
class ReleasedModel:
    """One catalogue entry; paths are absolute (``config``, ``label_map``, ``path``)."""

    name: str
    source: str                 # 'pyskl', 'mmaction2' or 'user'
    dataset: str
    backbone: str
    heatmap: str
    family: str                 # the state-dict key family (SPEC §8), e.g. 'slowonly_r50_463'
    num_classes: int | None
    config: Path
    top1: float | None          # published accuracy in %, see ``metric``
    metric: str                 # 'top1' or 'mean_class_top1'
    file: str                   # file name in the cache
    url: str | None
    sha256_prefix: str | None   # from the OpenMMLab file name; None when the name has no hash
    sha256: str | None          # the full digest, when the catalogue knows it (user entries)
    label_map: Path | None
    path: Path | None           # a checkpoint already on disk (user entries)
    notes: str
    catalogue: Path             # the JSON file the entry came from

    @property
    def verification(self) -> str:
        """What a download of this entry is checked against, in words."""
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return "sha256 prefix"
        return "size + load check (no published hash)"


def cache_dir() -> Path:
    """Where downloads go: ``$POSEC3D_HOME`` or the platform cache dir (``~/.cache/posec3d``)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("posec3d", appauthor=False))


def checkpoint_dir() -> Path:
    return cache_dir() / "checkpoints"


def local_checkpoint(entry: ReleasedModel) -> Path:
    """Where the entry's checkpoint is (or will be once downloaded): a user entry's ``path`` when
    that file exists or there is nothing to download, else the cache."""
    if entry.path is not None and (entry.path.is_file() or not entry.url):
        return entry.path
    return checkpoint_dir() / entry.file


def _entry(raw: dict, source_file: Path, user: bool) -> ReleasedModel:
    missing = [k for k in REQUIRED_FIELDS if not raw.get(k)]
    if missing:
        raise ConfigError(f"{source_file}: model entry {raw.get('name', '?')!r} lacks {', '.join(missing)}")
    base = source_file.parent if user else CONFIG_BASE
    label_map = raw.get("label_map")
    if label_map:
        label_map = (base / label_map) if user else LABEL_MAPS / label_map
    prefix = raw.get("sha256_prefix")
    digest = raw.get("sha256")
    for field, value, lengths in (("sha256_prefix", prefix, range(4, 65)), ("sha256", digest, (64,))):
        if value is not None and (not isinstance(value, str) or len(value) not in lengths
                                  or any(c not in "0123456789abcdef" for c in value.lower())):
            raise ConfigError(f"{source_file}: model {raw['name']!r}: {field} {value!r} is not a hex sha256 digest"
                              + (" prefix" if field == "sha256_prefix" else ""))
    if Path(raw["file"]).name != raw["file"]:
        raise ConfigError(f"{source_file}: model {raw['name']!r}: file {raw['file']!r} must be a plain file name")
    return ReleasedModel(
        name=str(raw["name"]), source=str(raw.get("source", "user" if user else "?")),
        dataset=str(raw.get("dataset", "")), backbone=str(raw.get("backbone", "")),
        heatmap=str(raw.get("heatmap", "")), family=str(raw.get("family", "")),
        num_classes=raw.get("num_classes"), config=(base / raw["config"]).resolve(),
        top1=raw.get("top1"), metric=str(raw.get("metric", "top1")), file=str(raw["file"]),
        url=raw.get("url") or None, sha256_prefix=prefix.lower() if prefix else None,
        sha256=digest.lower() if digest else None, label_map=label_map,
        path=(base / raw["path"]).resolve() if user and raw.get("path") else None,
        notes=str(raw.get("notes", "")), catalogue=source_file)


def _read(path: Path, user: bool) -> list[ReleasedModel]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the model catalogue ({e.strerror or e})") from None
    except ValueError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    rows = doc.get("models") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path}: expected {{\"models\": [{{...}}, ...]}} or a list of model objects")
    return [_entry(r, path, user) for r in rows]


def released_models() -> list[ReleasedModel]:
    """The packaged catalogue followed by the user's (``$POSEC3D_MODELS``); names are unique."""
    entries = _read(CATALOGUE, user=False)
    user_file = os.environ.get(USER_CATALOGUE_ENV)
    if user_file:
        entries += _read(Path(user_file).expanduser().resolve(), user=True)
    seen: dict[str, ReleasedModel] = {}
    from posec3d.zoo import list_models  # the package imports this module first

    bundled = {m.name: m.config.parent for m in list_models()}
    for e in entries:
        if e.name in bundled:  # --model NAME takes the bundled model first: the entry could never be used
            raise ConfigError(f"{e.catalogue}: model name {e.name!r} is the bundled model's ({bundled[e.name]}); "
                              "choose another name")
        if e.name in seen:
            raise ConfigError(f"{e.catalogue}: model name {e.name!r} is already used by {seen[e.name].catalogue}")
        seen[e.name] = e
    return entries


def find_released(name: str) -> ReleasedModel | None:
    return next((e for e in released_models() if e.name == name), None)
