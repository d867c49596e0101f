"""A long CSV table -> pyskl annotations: one row per (video, frame, person, joint).

Columns (a header row is required; order free, extra columns ignored):

| column | required | meaning |
|---|---|---|
| ``video`` | yes | video id, becomes ``frame_dir`` |
| ``frame`` | yes | 0-based frame index (int); T = the largest index + 1; frames without rows stay empty |
| ``person`` | yes | person id (int); a video's ids are sorted and become person slots 0..M-1 |
| ``joint`` | yes | joint index 0..V-1 (int) or a COCO-17 name (``left_wrist``); V = largest index + 1 |
| ``x``, ``y`` | yes | pixel coordinates |
| ``score`` | no | confidence in [0, 1]; default 1 |
| ``label`` | no | class index (int), the same on every row of a video |
| ``height``, ``width`` | no | frame size in pixels, the same on every row of a video |
| split column | no | named by ``split_column``: split name of the video (e.g. ``train`` / ``val``) |

Without ``height``/``width`` the image size comes from ``img_shape`` if given, else it is
inferred as (ceil(max y) + 1, ceil(max x) + 1) of the video. Empty slots are zero with score 0.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from posec3d.data.skeletons import COCO17_NAMES
from posec3d.errors import AnnotationError

REQUIRED = ("video", "frame", "person", "joint", "x", "y")


def _bad_row(path: Path, frame: pd.DataFrame, mask: np.ndarray, what: str) -> AnnotationError:
    row = int(np.flatnonzero(mask)[0])
    line = int(frame.index[row]) + 2  # +1 for the header, +1 for 1-based lines
    return AnnotationError(f"{path}: line {line}: {what}")


def _integer_column(path: Path, df: pd.DataFrame, name: str, minimum: int = 0) -> np.ndarray:
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < minimum)
    if bad.any():
        raw = df[name].to_numpy()[np.flatnonzero(bad)[0]]
        raise _bad_row(path, df, bad, f"column {name!r} must be an integer >= {minimum}, got {raw!r}")
    return values.astype(np.int64)


def _float_column(path: Path, df: pd.DataFrame, name: str) -> np.ndarray:
    values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        raw = df[name].to_numpy()[np.flatnonzero(bad)[0]]
        raise _bad_row(path, df, bad, f"column {name!r} must be a finite number, got {raw!r}")
    return values


def _joint_column(path: Path, df: pd.DataFrame) -> np.ndarray:
    raw = df["joint"].astype(str).str.strip()
    numeric = pd.to_numeric(raw, errors="coerce")
    by_name = raw.str.lower().map({n: i for i, n in enumerate(COCO17_NAMES)})
    values = numeric.where(numeric.notna(), by_name).to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0)
    if bad.any():
        raise _bad_row(path, df, bad, f"column 'joint' must be an index >= 0 or a COCO-17 joint name, "
                                      f"got {raw.to_numpy()[np.flatnonzero(bad)[0]]!r}")
    return values.astype(np.int64)


def _per_video_constant(path: Path, df: pd.DataFrame, name: str) -> None:
    counts = df.groupby("video", sort=False)[name].nunique(dropna=False)
    if (counts > 1).any():
        video = counts.index[np.flatnonzero(counts.to_numpy() > 1)[0]]
        rows = df["video"] == video
        first = df.loc[rows, name].iloc[0]
        mask = (rows & (df[name] != first)).to_numpy()
        raise _bad_row(path, df, mask, f"video {video!r} has more than one {name!r} value "
                                       f"({first!r} and {df[name].to_numpy()[np.flatnonzero(mask)[0]]!r})")


def convert_csv(
    path: str | os.PathLike,
    *,
    split_column: str | None = None,
    img_shape: tuple[int, int] | None = None,
    progress: Callable[..., None] | None = None,
) -> tuple[list[dict], dict[str, list[str]] | None]:
    """Read the table at ``path``; return ``(annotations, split or None)``, videos in first-seen order."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: CSV file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: cannot parse as CSV ({str(e).strip()[:160]})") from None
    except pd.errors.EmptyDataError:
        raise AnnotationError(f"{path}: empty file (a header row is required)") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise AnnotationError(f"{path}: missing column(s) {', '.join(missing)}; the header must name "
                              f"{', '.join(REQUIRED)} (optional: score, label, height, width)")
    if split_column is not None and split_column not in df.columns:
        raise AnnotationError(f"{path}: split column {split_column!r} not in the header "
                              f"({', '.join(df.columns)})")
    if df.empty:
        raise AnnotationError(f"{path}: no data rows")
    if (df["video"] == "").any():
        raise _bad_row(path, df, (df["video"] == "").to_numpy(), "empty 'video' value")

    frame = _integer_column(path, df, "frame")
    person = _integer_column(path, df, "person", minimum=-(2**62))
    joint = _joint_column(path, df)
    xy = np.stack([_float_column(path, df, "x"), _float_column(path, df, "y")], axis=1)
    score = _float_column(path, df, "score") if "score" in df.columns else np.ones(len(df))
    if ((score < 0) | (score > 1)).any():
        raise _bad_row(path, df, (score < 0) | (score > 1), "column 'score' must be within [0, 1]")
    for name in ("label", "height", "width", split_column):
        if name is not None and name in df.columns:
            _per_video_constant(path, df, name)
    label = _integer_column(path, df, "label") if "label" in df.columns else None
    size = None
    if "height" in df.columns or "width" in df.columns:
        if not ("height" in df.columns and "width" in df.columns):
            raise AnnotationError(f"{path}: give both 'height' and 'width' columns, or neither")
        size = np.stack([_integer_column(path, df, "height", 1), _integer_column(path, df, "width", 1)], 1)
    num_joints = int(joint.max()) + 1

    # Duplicate (video, frame, person, joint) rows would silently overwrite each other.
    key = df["video"] + "\x00" + frame.astype(str) + "\x00" + person.astype(str) + "\x00" + joint.astype(str)
    dup = key.duplicated().to_numpy()
    if dup.any():
        raise _bad_row(path, df, dup, "duplicate row for the same (video, frame, person, joint)")

    groups = df.groupby("video", sort=False).indices
    if progress is not None:
        progress(advance=0, total=len(groups))
    annotations: list[dict] = []
    split: dict[str, list[str]] = {}
    for video, rows in groups.items():
        persons, slot = np.unique(person[rows], return_inverse=True)
        total = int(frame[rows].max()) + 1
        kp = np.zeros((len(persons), total, num_joints, 2), np.float32)
        sc = np.zeros((len(persons), total, num_joints), np.float32)
        kp[slot, frame[rows], joint[rows]] = xy[rows]
        sc[slot, frame[rows], joint[rows]] = score[rows]
        if size is not None:
            shape = (int(size[rows[0], 0]), int(size[rows[0], 1]))
        elif img_shape is not None:
            shape = (int(img_shape[0]), int(img_shape[1]))
        else:
            shape = (int(np.ceil(xy[rows, 1].max())) + 1, int(np.ceil(xy[rows, 0].max())) + 1)
        sample = dict(frame_dir=str(video), img_shape=shape, original_shape=shape, total_frames=total,
                      keypoint=kp, keypoint_score=sc)
        if label is not None:
            sample["label"] = int(label[rows[0]])
        annotations.append(sample)
        if split_column is not None:
            split.setdefault(str(df[split_column].iloc[rows[0]]), []).append(str(video))
        if progress is not None:
            progress(advance=1)
    return annotations, (split if split_column is not None else None)
