"""Goyang Taekwondo (AI Hub) per-frame JSON labels -> pyskl annotations (SPEC §9.3), done right.

Layout::

    <root>/01.데이터/{1.Training,2.Validation}/라벨링데이터/<class name>/<sequence>/<frame>.json

(``root`` may also be the ``01.데이터`` folder itself.) Each JSON holds
``labelingInfo[0].pose.location``: Korean COCO joint names -> ``{x, y, view}``.

A frame's role is the first letter of the last ``-``-separated token of its file stem: ``S``
start, ``M`` middle, ``E`` end. Frames whose stems agree before that token form one take (the
dataset films every motion from 8 directions) and one sample: S, then the M frames, then E, each
group in natural name order (numbers compared as numbers). ``frame_dir`` is
``<train|val>/<class>/<sequence>``, plus ``/<take>`` when a sequence folder holds several takes.
``img_shape`` comes from an ``images: {width, height}`` entry when the JSON has one, else
(1080, 1920) as in the fork.

Differences from the fork's converter (on purpose): scores stay in the same frame order as the
keypoints; ``keypoint_score`` is (1, T, 17) with no trailing axis; arrays are float32; every
sample gets a unique ``frame_dir`` so the ``split`` lists work; the output is one dict with
``split = {'train': ..., 'val': ...}``. ``view`` is taken as the joint score, clipped to [0, 1]
(a positive visibility flag counts as visible); a joint absent from the JSON has score 0. Labels index the class-folder names sorted by code point (with all 64
classes present this is the official ``goyang_taekwondo`` label map); names are NFC-normalised
because archives unpacked on macOS often store Hangul decomposed.
"""
from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Callable

import numpy as np

from posec3d.errors import AnnotationError

# COCO-17 order, in the dataset's Korean joint names.
KOREAN_COCO17 = (
    "코", "왼쪽 눈", "오른쪽 눈", "왼쪽 귀", "오른쪽 귀", "왼쪽 어깨", "오른쪽 어깨",
    "왼쪽 팔꿈치", "오른쪽 팔꿈치", "왼쪽 손목", "오른쪽 손목", "왼쪽 엉덩이", "오른쪽 엉덩이",
    "왼쪽 무릎", "오른쪽 무릎", "왼쪽 발목", "오른쪽 발목",
)
DATA_FOLDER = "01.데이터"
LABEL_FOLDER = "라벨링데이터"
SPLIT_FOLDERS = {"train": "1.Training", "val": "2.Validation"}
IMG_SHAPE = (1080, 1920)
NUM_CLASSES = 64
_JOINT_INDEX = {unicodedata.normalize("NFC", n): i for i, n in enumerate(KOREAN_COCO17)}


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _child(folder: Path, name: str) -> Path | None:
    """The child of ``folder`` whose name equals ``name`` up to Unicode normalisation."""
    if not folder.is_dir():
        return None
    for p in folder.iterdir():
        if _nfc(p.name) == _nfc(name):
            return p
    return None


def _natural_key(name: str) -> list:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", name)]


def frame_role(path: Path) -> str:
    """'S', 'M' or 'E' from the first letter of the file stem's last '-' token."""
    token = path.stem.split("-")[-1]
    role = token[:1].upper()
    if role not in ("S", "M", "E"):
        raise AnnotationError(f"{path}: cannot tell the frame role: the last '-' token {token!r} "
                              "should start with S (start), M (middle) or E (end)")
    return role


def _score(value, path: Path, joint: str) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(np.clip(float(value), 0.0, 1.0))
    except (TypeError, ValueError):
        raise AnnotationError(f"{path}: joint {joint!r} has a non-numeric 'view' {value!r}") from None


def _image_shape(data: dict, info: dict) -> tuple[int, int] | None:
    """(h, w) from an ``images`` entry ({width, height}) of the label or the file, if any."""
    for holder in (info, data):
        images = holder.get("images") if isinstance(holder, dict) else None
        if isinstance(images, list) and images:
            images = images[0]
        if isinstance(images, dict):
            try:
                h, w = int(float(images["height"])), int(float(images["width"]))
            except (KeyError, TypeError, ValueError):
                continue
            if h > 0 and w > 0:
                return h, w
    return None


def read_frame_json(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    """(keypoints (17, 2), scores (17,), image (h, w) or None) of one frame JSON."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    try:
        info = data["labelingInfo"][0]
        location = info["pose"]["location"]
    except (KeyError, IndexError, TypeError):
        raise AnnotationError(f"{path}: no labelingInfo[0].pose.location") from None
    if isinstance(location, list):  # tolerate a list of {name: point} dicts
        merged: dict = {}
        for part in location:
            if isinstance(part, dict):
                merged.update(part)
        location = merged
    if not isinstance(location, dict):
        raise AnnotationError(f"{path}: labelingInfo[0].pose.location must map joint names to points")
    kp = np.zeros((len(KOREAN_COCO17), 2), np.float32)
    sc = np.zeros(len(KOREAN_COCO17), np.float32)
    for name, point in location.items():
        j = _JOINT_INDEX.get(_nfc(str(name)).strip())
        if j is None:
            continue  # joints outside COCO-17 are not used
        try:
            kp[j] = float(point["x"]), float(point["y"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{path}: joint {name!r} needs numeric 'x' and 'y', got {point!r}") from None
        sc[j] = _score(point.get("view", 1), path, name)
    return kp, sc, _image_shape(data, info)


def take_key(path: Path) -> str:
    """The file stem without its role token: frames of one take (camera view) share it."""
    return path.stem.rsplit("-", 1)[0] if "-" in path.stem else ""


def _sequence_samples(seq: Path, split: str, class_name: str, label: int) -> list[dict]:
    """One sample per take in a sequence folder (the dataset films each motion from 8 views)."""
    takes: dict[str, list[Path]] = {}
    for p in seq.iterdir():
        if p.suffix.lower() == ".json":
            takes.setdefault(take_key(p), []).append(p)
    order = {"S": 0, "M": 1, "E": 2}
    samples = []
    for key in sorted(takes, key=_natural_key):
        frames = sorted(takes[key], key=lambda p: (order[frame_role(p)], _natural_key(p.stem)))
        parts = [read_frame_json(p) for p in frames]
        shape = next((shape for _, _, shape in parts if shape is not None), IMG_SHAPE)
        frame_dir = f"{split}/{class_name}/{_nfc(seq.name)}"
        if len(takes) > 1:
            frame_dir += f"/{_nfc(key)}"
        samples.append(dict(
            frame_dir=frame_dir,
            label=label,
            img_shape=shape,
            original_shape=shape,
            total_frames=len(frames),
            keypoint=np.stack([k for k, _, _ in parts])[None],
            keypoint_score=np.stack([sc for _, sc, _ in parts])[None],
        ))
    return samples


def _split_label_folders(root: Path) -> dict[str, Path]:
    base = _child(root, DATA_FOLDER) or root
    found = {}
    for split, folder in SPLIT_FOLDERS.items():
        d = _child(base, folder)
        labels = _child(d, LABEL_FOLDER) if d else None
        if labels is not None and labels.is_dir():
            found[split] = labels
    if not found:
        raise AnnotationError(f"{root}: no {DATA_FOLDER}/1.Training/{LABEL_FOLDER} or "
                              f"{DATA_FOLDER}/2.Validation/{LABEL_FOLDER} folder found")
    return found


def convert_taekwondo(
    root: str | os.PathLike, *, progress: Callable[..., None] | None = None,
) -> tuple[list[dict], dict[str, list[str]], list[str]]:
    """Convert the dataset under ``root``; return ``(annotations, split, class_names)``."""
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"{root}: not a directory")
    split_dirs = _split_label_folders(root)
    class_dirs = {s: [c for c in d.iterdir() if c.is_dir()] for s, d in split_dirs.items()}
    class_names = sorted({_nfc(c.name) for dirs in class_dirs.values() for c in dirs})
    if not class_names:
        raise AnnotationError(f"{root}: no class folders under {LABEL_FOLDER}")
    label_of = {name: i for i, name in enumerate(class_names)}
    jobs = [(s, c, seq) for s, dirs in class_dirs.items() for c in sorted(dirs, key=lambda p: _nfc(p.name))
            for seq in sorted((q for q in c.iterdir() if q.is_dir()), key=lambda p: _natural_key(p.name))]
    if progress is not None:
        progress(advance=0, total=len(jobs))
    annotations: list[dict] = []
    split: dict[str, list[str]] = {s: [] for s in SPLIT_FOLDERS if s in split_dirs}
    for s, c, seq in jobs:
        for sample in _sequence_samples(seq, s, _nfc(c.name), label_of[_nfc(c.name)]):
            annotations.append(sample)
            split[s].append(sample["frame_dir"])
        if progress is not None:
            progress(advance=1)
    if not annotations:
        raise AnnotationError(f"{root}: no frame JSON files found in any sequence folder")
    return annotations, split, class_names
