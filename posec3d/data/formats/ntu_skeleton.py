"""NTU RGB+D ``.skeleton`` files (Kinect v2) -> pyskl annotations with COCO-17 colour-frame 2D joints.

File layout (text, whitespace separated)::

    <number of frames>
    per frame:  <number of bodies>
      per body: <10 body values: bodyID clippedEdges handLeftConfidence handLeftState
                 handRightConfidence handRightState isRestricted leanX leanY trackingState>
                <number of joints (25)>
                25 x <12 joint values: x y z depthX depthY colorX colorY
                      orientationW orientationX orientationY orientationZ trackingState>

We keep ``colorX, colorY`` (pixels of the 1920x1080 RGB video), so ``img_shape = (1080, 1920)``.
Joint score from the joint's trackingState: 2 tracked -> 1.0, 1 inferred -> 0.5, 0 not tracked -> 0;
a joint with NaN / inf colour coordinates becomes (0, 0) with score 0.

Kinect v2 -> COCO-17 (``NTU25_TO_COCO17``; -1 = no such joint, coordinates 0 and score 0):
COCO nose <- 3 head; eyes and ears: none; l_sho <- 4, l_elb <- 5, l_wri <- 6, r_sho <- 8,
r_elb <- 9, r_wri <- 10, l_hip <- 12, l_knee <- 13, l_ank <- 14, r_hip <- 16, r_knee <- 17,
r_ank <- 18. (Kinect's left is the subject's left, as in COCO.)

Persons: bodies are told apart by bodyID; the ``max_persons`` bodies seen in the most frames
are kept (ties: the higher summed joint score), in order of first appearance.

Labels and splits from the file name ``SsssCcccPpppRrrrAaaa``: label = A - 1; NTU60 protocol
``xsub`` (training subjects below) and ``xview`` (training cameras 2 and 3). When a file is from
NTU120 (setup > 17 or action > 60), the NTU120 ``xset`` split (even setups train) is added; the
xsub list below is NTU120's, whose part for subjects 1-40 equals NTU60's.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from posec3d.errors import AnnotationError

NTU25_TO_COCO17 = (3, -1, -1, -1, -1, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18)
IMG_SHAPE = (1080, 1920)
NUM_JOINTS = 25
TRACKING_SCORE = {0: 0.0, 1: 0.5, 2: 1.0}

# NTU60 cross-subject training subjects, extended by NTU120's (subjects 41-106).
XSUB_TRAIN_SUBJECTS = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103,
))
XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
NAME_PATTERN = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


def parse_ntu_name(name: str) -> dict[str, int]:
    """``S001C002P003R001A060`` -> dict(setup=1, camera=2, subject=3, replication=1, action=60)."""
    m = NAME_PATTERN.search(name)
    if not m:
        raise AnnotationError(f"{name}: not an NTU RGB+D sample name (expected SsssCcccPpppRrrrAaaa)")
    keys = ("setup", "camera", "subject", "replication", "action")
    return dict(zip(keys, map(int, m.groups())))


class _Lines:
    """Line reader that knows where it is, for errors that name the file and line."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.lines = path.read_text(encoding="ascii", errors="strict").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise AnnotationError(f"{path}: cannot read as an NTU .skeleton text file ({e})") from None
        self.pos = 0

    def fields(self, count: int, what: str) -> list[str]:
        if self.pos >= len(self.lines):
            raise AnnotationError(f"{self.path}: line {self.pos + 1}: file ends early, expected {what}")
        fields = self.lines[self.pos].split()
        self.pos += 1
        if len(fields) != count:
            raise AnnotationError(f"{self.path}: line {self.pos}: expected {count} value(s) ({what}), "
                                  f"got {len(fields)}")
        return fields

    def numbers(self, count: int, what: str) -> list[float]:
        fields = self.fields(count, what)
        try:
            return [float(f) for f in fields]
        except ValueError:
            raise AnnotationError(f"{self.path}: line {self.pos}: non-numeric value in {what}: "
                                  f"{self.lines[self.pos - 1].strip()[:80]!r}") from None

    def body_id(self) -> int:
        """The bodyID of a body info line, parsed as an integer: Kinect IDs such as
        72057594037944738 are above 2**53, where floats cannot tell IDs 16 apart."""
        fields = self.fields(10, "a body info line")
        try:
            [float(f) for f in fields[1:]]
            return int(fields[0])
        except ValueError:
            raise AnnotationError(f"{self.path}: line {self.pos}: non-numeric value in a body info line: "
                                  f"{self.lines[self.pos - 1].strip()[:80]!r}") from None

    def count(self, what: str) -> int:
        value = self.numbers(1, what)[0]
        if value < 0 or value != int(value):
            raise AnnotationError(f"{self.path}: line {self.pos}: {what} must be a non-negative integer, "
                                  f"got {value:g}")
        return int(value)


def read_skeleton_file(path: str | os.PathLike, max_persons: int = 2) -> dict | None:
    """One ``.skeleton`` file -> one annotation dict, or None when no body is in any frame."""
    path = Path(path)
    info = parse_ntu_name(path.name)
    reader = _Lines(path)
    num_frames = reader.count("the number of frames")
    # body id -> {frame: (joints (25, 12))}
    bodies: dict[int, dict[int, np.ndarray]] = {}
    for t in range(num_frames):
        for _ in range(reader.count(f"the body count of frame {t}")):
            body_id = reader.body_id()
            n_joints = reader.count("the joint count")
            if n_joints != NUM_JOINTS:
                raise AnnotationError(f"{path}: line {reader.pos}: expected {NUM_JOINTS} joints, got {n_joints}")
            joints = np.array([reader.numbers(12, "a joint line") for _ in range(NUM_JOINTS)])
            state = joints[:, 11]
            if not np.isin(state, (0, 1, 2)).all():
                raise AnnotationError(f"{path}: line {reader.pos}: trackingState must be 0, 1 or 2")
            bodies.setdefault(body_id, {})[t] = joints
    if any(line.strip() for line in reader.lines[reader.pos:]):
        raise AnnotationError(f"{path}: line {reader.pos + 1}: unexpected data after frame {num_frames - 1} "
                              f"(the header says {num_frames} frames)")
    if not bodies:
        return None

    def rank(item: tuple[int, dict[int, np.ndarray]]) -> tuple[int, float]:
        frames = item[1]
        return len(frames), sum(float(sum(TRACKING_SCORE[int(s)] for s in j[:, 11])) for j in frames.values())

    kept = sorted(bodies.items(), key=rank, reverse=True)[:max_persons]
    kept.sort(key=lambda item: min(item[1]))  # first appearance
    idx = np.array(NTU25_TO_COCO17)
    present = idx >= 0
    keypoint = np.zeros((len(kept), num_frames, len(idx), 2), np.float32)
    score = np.zeros((len(kept), num_frames, len(idx)), np.float32)
    for m, (_, frames) in enumerate(kept):
        for t, joints in frames.items():
            xy = joints[idx[present]][:, 5:7]
            sc = np.array([TRACKING_SCORE[int(s)] for s in joints[idx[present], 11]])
            # Kinect writes NaN / inf for joints it could not map into the colour frame.
            lost = ~np.isfinite(xy).all(axis=1)
            xy[lost], sc[lost] = 0, 0
            keypoint[m, t, present] = xy
            score[m, t, present] = sc
    return dict(
        frame_dir=NAME_PATTERN.search(path.name).group(0),
        label=info["action"] - 1,
        img_shape=IMG_SHAPE,
        original_shape=IMG_SHAPE,
        total_frames=num_frames,
        keypoint=keypoint,
        keypoint_score=score,
    )


def ntu_splits(frame_dirs: list[str]) -> dict[str, list[str]]:
    """xsub / xview splits (NTU60 protocol), plus xset when any sample is from NTU120."""
    infos = {d: parse_ntu_name(d) for d in frame_dirs}
    split: dict[str, list[str]] = {"xsub_train": [], "xsub_val": [], "xview_train": [], "xview_val": []}
    for d, i in infos.items():
        split["xsub_train" if i["subject"] in XSUB_TRAIN_SUBJECTS else "xsub_val"].append(d)
        split["xview_train" if i["camera"] in XVIEW_TRAIN_CAMERAS else "xview_val"].append(d)
    if any(i["setup"] > 17 or i["action"] > 60 for i in infos.values()):
        split["xset_train"] = [d for d, i in infos.items() if i["setup"] % 2 == 0]
        split["xset_val"] = [d for d, i in infos.items() if i["setup"] % 2 == 1]
    return split


def convert_ntu_skeletons(
    directory: str | os.PathLike,
    *,
    max_persons: int = 2,
    progress: Callable[..., None] | None = None,
) -> tuple[list[dict], dict[str, list[str]], list[str]]:
    """Convert every ``*.skeleton`` under ``directory`` (sorted by name).

    Returns ``(annotations, split, skipped)``; ``skipped`` names files without any body (NTU
    ships some, listed in NTU120's "missing skeletons" file).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AnnotationError(f"{directory}: not a directory")
    files = sorted(directory.rglob("*.skeleton"), key=lambda p: p.name)
    if not files:
        raise AnnotationError(f"{directory}: no *.skeleton files found")
    if progress is not None:
        progress(advance=0, total=len(files))
    annotations, skipped = [], []
    for f in files:
        sample = read_skeleton_file(f, max_persons=max_persons)
        if sample is None:
            skipped.append(f.name)
        else:
            annotations.append(sample)
        if progress is not None:
            progress(advance=1)
    split = ntu_splits([a["frame_dir"] for a in annotations])
    return annotations, split, skipped
