"""What is in an annotation (or score) pickle: the facts ``posec3d info`` shows."""
from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from posec3d.data.annotations import load_annotation_file, select_split, split_annotations, validate_sample
from posec3d.errors import AnnotationError

KNOWN_LAYOUTS = {17: "COCO-17", 13: "Penn Action", 15: "JHMDB puppet", 20: "Kinect v1",
                 25: "NTU Kinect v2", 33: "BlazePose", 21: "hand"}


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    arr = np.asarray(values)
    return dict(min=int(arr.min()), median=float(np.median(arr)), max=int(arr.max()))


def _is_score_list(items: list) -> bool:
    return bool(items) and all(isinstance(i, dict) and "pred_score" in i for i in items[:5])


def _summarize_scores(path, items: list) -> dict:
    first = np.asarray(items[0]["pred_score"])
    labels = [int(np.asarray(i["gt_label"]).reshape(-1)[0]) for i in items if "gt_label" in i]
    return dict(
        file=str(path), kind="scores",
        description=f"score file: a list of {len(items)} prediction dicts "
                    f"({', '.join(sorted(items[0]))}), not an annotation file",
        num_samples=len(items), splits={}, num_classes=int(first.shape[-1]), num_classes_from="score vectors",
        class_counts={str(k): v for k, v in sorted(Counter(labels).items())},
        keypoints_per_person=None, persons=None, frames=None,
        dtypes=dict(pred_score=str(getattr(items[0]["pred_score"], "dtype", type(first).__name__))),
    )


def _is_score_arrays(items: Any) -> bool:
    """pyskl's ``test --out`` dump (ours too): a list of per-video 1-D score arrays of one length."""
    if not isinstance(items, list) or not items:
        return False
    rows = items[:5] + items[-5:]
    return (all(isinstance(r, np.ndarray) and r.ndim == 1 and np.issubdtype(r.dtype, np.number) for r in rows)
            and len({len(r) for r in rows}) == 1)


def _summarize_score_arrays(path, items: list) -> dict:
    rows = [np.asarray(r) for r in items]
    widths = sorted({len(r) for r in rows})
    if len(widths) != 1 or not all(r.ndim == 1 and np.issubdtype(r.dtype, np.number) for r in rows):
        raise AnnotationError(f"{path}: a score list whose items are not all 1-D numeric vectors of one length")
    return dict(
        file=str(path), kind="scores",
        description=f"score file: a list of {len(rows)} per-video score vectors (the `posec3d test --out` / "
                    "pyskl dump), not an annotation file",
        num_samples=len(rows), splits={}, num_classes=widths[0], num_classes_from="score vectors",
        class_counts={}, keypoints_per_person=None, persons=None, frames=None,
        dtypes=dict(scores="/".join(sorted({str(r.dtype) for r in rows}))),
    )


def _read_json_scores(path) -> list:
    import json

    try:
        items = json.loads(open(path, encoding="utf-8").read())
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: invalid JSON ({str(e)[:80]})") from None
    try:
        rows = [np.asarray(r, dtype=np.float64) for r in items] if isinstance(items, list) else None
    except (TypeError, ValueError):
        rows = None
    if not rows or not _is_score_arrays(rows):
        raise AnnotationError(f"{path}: not a score dump (expected a JSON list of per-video score lists)")
    return rows


def _is_kpfile(data: Any) -> bool:
    """A K400 kpfile: frame_dir -> {'keypoint': (N, V, 3)} (no 'annotations' key)."""
    return (isinstance(data, dict) and bool(data) and "annotations" not in data
            and all(isinstance(v, dict) and "keypoint" in v for v in list(data.values())[:5]))


def _summarize_kpfile(path, data: dict) -> dict:
    rows = [np.asarray(v["keypoint"]) for v in data.values()]
    shapes = sorted({r.shape[1:] for r in rows if r.ndim == 3})
    return dict(
        file=str(path), kind="kpfile",
        description=f"K400 kpfile: packed skeletons of {len(data)} videos (frame_dir -> keypoint (N, V, 3)); "
                    "read through an index file and DecompressPose",
        num_samples=len(data), splits={}, num_classes=None, class_counts={},
        keypoints_per_person=int(shapes[0][0]) if len(shapes) == 1 else None,
        persons=None, frames=_stats([len(r) for r in rows]),
        dtypes=dict(keypoint="/".join(sorted({str(r.dtype) for r in rows}))),
    )


def summarize(path: str | os.PathLike, split_name: str | None = None) -> dict[str, Any]:
    """Samples per split, classes, persons, frames, joint layout and dtypes of a pickle.

    Every sample is validated, so a malformed file raises one AnnotationError naming the sample.
    ``split_name`` restricts the statistics (not the split table) to one split.
    """
    if str(path).lower().endswith(".json"):  # `posec3d test --out scores.json`
        return _summarize_score_arrays(path, _read_json_scores(path))
    data = load_annotation_file(path)
    if _is_score_arrays(data):
        return _summarize_score_arrays(path, data)
    if isinstance(data, list) and _is_score_list(data):
        return _summarize_scores(path, data)
    if _is_kpfile(data):
        return _summarize_kpfile(path, data)
    split, items = split_annotations(data, path)
    if _is_score_list(items):
        return _summarize_scores(path, items)
    for i, sample in enumerate(items):
        validate_sample(sample, i, path)
    items = select_split(items, split, split_name, path)
    labels = [int(s["label"]) for s in items if s.get("label") is not None]
    with_kp = [s for s in items if "keypoint" in s]
    joints = sorted({int(s["keypoint"].shape[2]) for s in with_kp})
    if len(joints) > 1:
        raise AnnotationError(f"{path}: samples mix joint layouts with {joints} keypoints per person")
    v = joints[0] if joints else None
    frames = [int(s["total_frames"]) if "total_frames" in s else int(s["keypoint"].shape[1])
              for s in items if "total_frames" in s or "keypoint" in s]
    dtypes = {}
    for key in ("keypoint", "keypoint_score", "frame_inds", "box_score"):
        found = sorted({str(np.asarray(s[key]).dtype) for s in items if key in s})
        if found:
            dtypes[key] = "/".join(found)
    kind = "annotations" if with_kp or not items else "kpfile_index"
    description = ("pyskl/mmaction2 annotations" if kind == "annotations" else
                   "K400 kpfile index (frame_inds/box_score; keypoints live in separate kpfiles)")
    description += ", dict with 'split' and 'annotations'" if isinstance(data, dict) else ", plain list"
    shapes = Counter(tuple(int(x) for x in s["img_shape"]) for s in items if "img_shape" in s)
    return dict(
        file=str(path), kind=kind, description=description, split=split_name,
        num_samples=len(items),
        splits={name: len(ids) for name, ids in (split or {}).items()},
        # The highest label is not the class count (NTU samples with labels 0 and 54 are not 55
        # classes): only a label map or a config says; `posec3d info` fills it from those.
        num_classes=None, num_classes_from=None,
        highest_label=max(labels) if labels else None,
        labels_present=len(set(labels)),
        class_counts={str(k): n for k, n in sorted(Counter(labels).items())},
        keypoints_per_person=v,
        layout=KNOWN_LAYOUTS.get(v) if v else None,
        coords_per_joint=int(with_kp[0]["keypoint"].shape[-1]) if with_kp else None,
        has_scores=all("keypoint_score" in s for s in with_kp) if with_kp else None,
        persons=_stats([int(s["keypoint"].shape[0]) for s in with_kp]),
        frames=_stats(frames),
        img_shapes={f"{h}x{w}": n for (h, w), n in shapes.most_common(5)},
        dtypes=dtypes,
    )
