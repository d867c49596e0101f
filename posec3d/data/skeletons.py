"""Joint layouts: COCO-17 (the layout PoseC3D models use) and maps from other layouts to it.

An index map ``IDX`` has one entry per COCO-17 joint: the source joint index, or -1 when the source
layout has no such joint (it becomes a zero coordinate with score 0). Use with ``MapJoints``.
"""
from __future__ import annotations

COCO17_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_COCO17 = len(COCO17_NAMES)

# Horizontal-flip partners: COCO17_LEFT_KP[i] swaps with COCO17_RIGHT_KP[i].
COCO17_LEFT_KP = (1, 3, 5, 7, 9, 11, 13, 15)
COCO17_RIGHT_KP = (2, 4, 6, 8, 10, 12, 14, 16)

# GeneratePoseTarget's built-in limb list (used when a config gives no `skeletons`).
DEFAULT_LIMBS = (
    (0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (5, 7), (7, 9), (0, 6), (6, 8), (8, 10),
    (5, 11), (11, 13), (13, 15), (6, 12), (12, 14), (14, 16), (11, 12),
)
DEFAULT_LEFT_LIMB = (0, 2, 4, 5, 6, 10, 11, 12)
DEFAULT_RIGHT_LIMB = (1, 3, 7, 8, 9, 13, 14, 15)

# The limb list every `limb.py` config passes; a limb checkpoint's channel order follows it.
CONFIG_LIMBS = (
    (0, 5), (0, 6), (5, 7), (7, 9), (6, 8), (8, 10), (5, 11), (11, 13), (13, 15),
    (6, 12), (12, 14), (14, 16), (0, 1), (0, 2), (1, 3), (2, 4), (11, 12),
)
CONFIG_LEFT_LIMB = (0, 2, 3, 6, 7, 8, 12, 14)
CONFIG_RIGHT_LIMB = (1, 4, 5, 9, 10, 11, 13, 15)

# Other layouts -> COCO-17 (see shared/data/README.md for how the sides were checked).
# Penn Action (13 joints; odd indices are the subject's right side in most clips).
PENN_ACTION_NAMES = (
    "head", "right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_wrist",
    "left_wrist", "right_hip", "left_hip", "right_knee", "left_knee", "right_ankle", "left_ankle",
)
PENN_ACTION_TO_COCO17 = (0, -1, -1, -1, -1, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11)

# Kinect v1 (20 joints). MSR Action3D and UTKinect order them differently.
MSR_ACTION3D_NAMES = (
    "left_shoulder", "right_shoulder", "shoulder_center", "spine", "left_hip", "right_hip",
    "hip_center", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand",
    "right_hand", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot",
    "right_foot", "head",
)
MSR_ACTION3D_TO_COCO17 = (19, -1, -1, -1, -1, 0, 1, 7, 8, 9, 10, 4, 5, 13, 14, 15, 16)

KINECT20_NAMES = (
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow",
    "left_wrist", "left_hand", "right_shoulder", "right_elbow", "right_wrist", "right_hand",
    "left_hip", "left_knee", "left_ankle", "left_foot", "right_hip", "right_knee",
    "right_ankle", "right_foot",
)
UTKINECT_TO_COCO17 = (3, -1, -1, -1, -1, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18)
KINECT20_TO_COCO17 = UTKINECT_TO_COCO17  # Kinect SDK v1 order (= first 20 NTU joints)

# JHMDB puppet (15 joints).
JHMDB_NAMES = (
    "neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
    "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
    "right_ankle", "left_ankle",
)
JHMDB_TO_COCO17 = (2, -1, -1, -1, -1, 4, 3, 8, 7, 12, 11, 6, 5, 10, 9, 14, 13)

# COCO-17 face points (nose, eyes, ears): other layouts lack most of them, so `MapJoints(drop=...)`
# can zero them in every input for training data that looks like estimator output.
COCO17_FACE = (0, 1, 2, 3, 4)


def flip_pairs(names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(left, right) index lists for a layout whose names start with ``left_`` / ``right_``."""
    left, right = [], []
    for i, name in enumerate(names):
        if name.startswith("left_"):
            partner = "right_" + name[len("left_"):]
            if partner in names:
                left.append(i)
                right.append(names.index(partner))
    return tuple(left), tuple(right)
