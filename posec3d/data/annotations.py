"""pyskl / mmaction2 annotation pickles: safe loading, validation, split selection, atomic saving.

A file is either ``dict(split={name: [ids]}, annotations=[sample, ...])`` or a plain list of
samples (SPEC §1). A sample holds ``frame_dir`` (or ``filename``), ``label``, ``img_shape``,
``total_frames`` and ``keypoint`` (M, T, V, 2) + optional ``keypoint_score`` (M, T, V); the
Kinetics-400 "kpfile" index variant has ``frame_inds``/``box_score``/``raw_file`` instead of
keypoints (the keypoints are fetched and unpacked by ``DecompressPose``).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from posec3d.errors import AnnotationError, short_repr
from posec3d.files import atomic_write
from posec3d.safe_pickle import PickleLimitError, UnsafePickleError, load_path, load_torch_zip

PICKLE_PROTOCOL = 4  # readable by every Python 3.8+ pyskl / mmaction2 install


def load_annotation_file(path: str | os.PathLike) -> Any:
    """Return the raw unpickled object (dict or list), refusing anything but plain data.

    Raises AnnotationError (one line) for a missing, truncated, corrupt or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    try:
        if zipfile.is_zipfile(path):  # torch.save format (e.g. score dumps written with torch)
            return load_torch_zip(path)
        return load_path(path)
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read ({e.strerror or e})") from None
    except PickleLimitError as e:
        raise AnnotationError(f"{path}: {e}") from None
    except UnsafePickleError as e:
        raise AnnotationError(f"{path}: unsafe pickle, not loaded ({e})") from None
    except Exception as e:  # noqa: BLE001
        # Only checked constructors run, so any failure here means a damaged stream:
        # truncation shows up as EOFError or a bad opcode, corruption as nearly anything.
        raise AnnotationError(
            f"{path}: truncated or corrupt pickle ({type(e).__name__}: {short_repr(str(e), 120)})"
        ) from None


def sample_id_key(annotations: list[dict]) -> str:
    """The identifier used by split lists: ``filename`` if the items carry it, else ``frame_dir``."""
    return "filename" if annotations and "filename" in annotations[0] else "frame_dir"


def split_annotations(data: Any, path: str | os.PathLike = "<annotations>") -> tuple[dict | None, list]:
    """(split dict or None, annotation list) of a raw loaded object, checking the top level."""
    if isinstance(data, dict):
        if "annotations" not in data:
            raise AnnotationError(
                f"{path}: dict without an 'annotations' key (keys: {sorted(map(str, data))[:10]})"
            )
        annos, split = data["annotations"], data.get("split")
        if split is not None and not isinstance(split, dict):
            raise AnnotationError(f"{path}: 'split' must be a dict of name -> list of ids, "
                                  f"got {type(split).__name__}")
    elif isinstance(data, list):
        annos, split = data, None
    else:
        raise AnnotationError(f"{path}: expected a dict with 'split' and 'annotations' or a list of "
                              f"samples, got {type(data).__name__}")
    if not isinstance(annos, list):
        raise AnnotationError(f"{path}: 'annotations' must be a list, got {type(annos).__name__}")
    return split, annos


def select_split(annotations: list[dict], split: dict | None, name: str | None,
                 path: str | os.PathLike = "<annotations>") -> list[dict]:
    """Keep the samples of split ``name`` in file order (all samples if ``name`` is None)."""
    if name is None:
        return list(annotations)
    if not split:
        raise AnnotationError(f"{path}: split {name!r} requested but the file has no splits "
                              "(it is a plain list of samples)")
    if name not in split:
        raise AnnotationError(f"{path}: unknown split {name!r}; available splits: "
                              f"{', '.join(map(str, split))}")
    key = sample_id_key(annotations)
    ids = split[name]
    if not isinstance(ids, (list, tuple, set, frozenset)) or not all(isinstance(i, (str, int)) for i in ids):
        raise AnnotationError(f"{path}: split {short_repr(name)} must be a list of sample ids (strings), got "
                              f"{short_repr(ids)}")
    wanted = set(ids)
    return [a for a in annotations if isinstance(a, dict) and a.get(key) in wanted]


def _where(path, index: int, sample: Any) -> str:
    ident = None
    if isinstance(sample, dict):
        ident = sample.get("frame_dir", sample.get("filename"))
    return f"{path}: sample {index}" + (f" (frame_dir {ident!r})" if ident is not None else "")


def validate_sample(sample: Any, index: int = 0, path: str | os.PathLike = "<annotations>",
                    num_classes: int | None = None, for_model: bool = False) -> None:
    """Check one sample's keys, shapes and values; raise AnnotationError naming file and sample.

    ``for_model``: the sample feeds training or testing, so it also needs a label, an ``img_shape``
    and 2-D coordinates."""
    where = _where(path, index, sample)
    if not isinstance(sample, dict):
        raise AnnotationError(f"{where}: expected a dict, got {type(sample).__name__}")
    if "frame_dir" not in sample and "filename" not in sample:
        raise AnnotationError(f"{where}: has neither 'frame_dir' nor 'filename'")
    label = sample.get("label")
    if label is None and for_model:
        raise AnnotationError(f"{where}: has no 'label' (training and testing need one per sample)")
    if label is not None:
        if not isinstance(label, (int, np.integer)) or isinstance(label, (bool, np.bool_)):
            raise AnnotationError(f"{where}: label must be an int, got {type(label).__name__} "
                                  f"{short_repr(label)}")
        if label < 0 or (num_classes is not None and label >= num_classes):
            raise AnnotationError(f"{where}: label {int(label)} is out of range for "
                                  f"{num_classes if num_classes is not None else 'any'} classes")
    total = sample.get("total_frames")
    if total is not None and (not isinstance(total, (int, np.integer)) or isinstance(total, bool) or total < 0):
        raise AnnotationError(f"{where}: total_frames must be a non-negative int, got {short_repr(total)}")
    shape = sample.get("img_shape")
    if shape is None and for_model and "keypoint" in sample:
        raise AnnotationError(f"{where}: has no 'img_shape' (h, w), which the heatmaps need")
    _check_image_size(sample, where)

    if "keypoint" not in sample:
        _validate_kpfile_index(sample, where)
        return
    kp = sample["keypoint"]
    if not isinstance(kp, np.ndarray) or kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        got = getattr(kp, "shape", type(kp).__name__)
        raise AnnotationError(f"{where}: keypoint must be an array of shape (M, T, V, 2), got {got}")
    if not np.issubdtype(kp.dtype, np.floating):
        raise AnnotationError(f"{where}: keypoint must be float16/float32, got {kp.dtype}")
    if for_model and kp.shape[-1] != 2:
        raise AnnotationError(f"{where}: keypoint has {kp.shape[-1]} coordinates per joint (shape {kp.shape}); "
                              "heatmap models need 2-D (x, y) coordinates")
    score = sample.get("keypoint_score")
    if score is not None:
        if not isinstance(score, np.ndarray) or score.shape != kp.shape[:3]:
            got = getattr(score, "shape", type(score).__name__)
            raise AnnotationError(f"{where}: keypoint_score shape {got} does not match keypoint "
                                  f"shape {kp.shape} (expected {kp.shape[:3]})")
        if not np.isfinite(score).all():
            raise AnnotationError(f"{where}: keypoint_score contains NaN or inf")
    if total is not None and total != kp.shape[1]:
        raise AnnotationError(f"{where}: total_frames is {total} but keypoint has "
                              f"{kp.shape[1]} frames (shape {kp.shape})")
    if not np.isfinite(kp).all():
        bad = np.argwhere(~np.isfinite(kp))[0]
        raise AnnotationError(f"{where}: keypoint contains NaN or inf coordinates "
                              f"(first at person {bad[0]}, frame {bad[1]}, joint {bad[2]})")


def _check_image_size(sample: dict, where: str) -> None:
    """img_shape / original_shape: two positive sizes (a negative one would flip every heatmap)."""
    for key in ("img_shape", "original_shape"):
        shape = sample.get(key)
        if shape is None:
            continue
        sizes = tuple(shape) if isinstance(shape, (tuple, list, np.ndarray)) else ()
        if len(sizes) != 2 or not all(isinstance(v, (int, float, np.integer, np.floating))
                                      and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in sizes):
            raise AnnotationError(f"{where}: {key} must be two positive sizes (h, w), got {short_repr(shape)}")


def _validate_kpfile_index(sample: dict, where: str) -> None:
    """The K400 index variant: no keypoints, but frame_inds (+ box_score) per stored skeleton."""
    inds = sample.get("frame_inds")
    if inds is None:
        raise AnnotationError(f"{where}: has no 'keypoint' (and no 'frame_inds' of the K400 "
                              "kpfile variant)")
    inds = np.asarray(inds)
    if inds.ndim != 1 or not np.issubdtype(inds.dtype, np.integer):
        raise AnnotationError(f"{where}: frame_inds must be a 1-D integer array, got {inds.shape} "
                              f"{inds.dtype}")
    box = sample.get("box_score")
    if box is not None and np.shape(box) != inds.shape:
        raise AnnotationError(f"{where}: box_score shape {np.shape(box)} does not match "
                              f"frame_inds shape {inds.shape}")
    total = sample.get("total_frames")
    # The K400 release numbers frames from 1, so total_frames itself is a valid index there.
    if total is not None and inds.size and (inds.min() < 0 or inds.max() > total):
        raise AnnotationError(f"{where}: frame_inds outside 0..{total} (total_frames {total})")


def validate_annotations(annotations: Iterable[Any], path: str | os.PathLike = "<annotations>",
                         num_classes: int | None = None) -> None:
    for i, sample in enumerate(annotations):
        validate_sample(sample, i, path, num_classes)


def load_annotations(path: str | os.PathLike, split: str | None = None, *,
                     num_classes: int | None = None, validate: bool = True, for_model: bool = False) -> list[dict]:
    """Load the samples of ``split`` (all samples if None) from a pyskl / mmaction2 pickle.

    Samples are validated (shapes, frame counts, finite values, label < ``num_classes``).
    """
    data = load_annotation_file(path)
    split_dict, annos = split_annotations(data, path)
    if annos and isinstance(annos[0], dict) and "pred_score" in annos[0] and "keypoint" not in annos[0]:
        raise AnnotationError(f"{path}: this is a score file (a list of prediction dicts), "
                              "not an annotation file")
    selected = select_split(annos, split_dict, split, path)
    if validate:
        # Report the index in the whole file, which is what a user can look up.
        position = {id(a): i for i, a in enumerate(annos)}
        for sample in selected:
            validate_sample(sample, position[id(sample)], path, num_classes, for_model)
    return selected


def save_annotations(path: str | os.PathLike, annotations: list[dict],
                     split: dict[str, list[str]] | None = None, *, validate: bool = True) -> None:
    """Write samples atomically: ``dict(split, annotations)`` if ``split`` is given, else a list."""
    annotations = list(annotations)
    if validate:
        validate_annotations(annotations, path)
    if split is not None:
        key = sample_id_key(annotations)
        known = {a.get(key) for a in annotations}
        for name, ids in split.items():
            missing = [i for i in ids if i not in known]
            if missing:
                raise AnnotationError(f"{path}: split {name!r} names {len(missing)} ids with no "
                                      f"sample, e.g. {missing[0]!r}")
        data: Any = dict(split={k: list(v) for k, v in split.items()}, annotations=annotations)
    else:
        data = annotations
    with atomic_write(path, "wb") as f:
        pickle.dump(data, f, protocol=PICKLE_PROTOCOL)
