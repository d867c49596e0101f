"""Outlier clips for the `penn-action` model's outlier exposure (the config key ``outliers``).

``python configs/penn_action/make_outliers.py [-o work_dirs/penn_action/penn_outliers.pkl]`` collects
the clips of ../shared's skeleton datasets whose actions are NOT Penn Action classes, maps their joints
to COCO-17 (the layout the model reads) and writes one pyskl pickle whose split ``outlier`` holds them all.

The sources are research-only datasets: the pickle goes to a work folder, never into the repository or
the wheel (only weights trained with it ship). Their clips must stay apart from the real out-of-
vocabulary clips the open set is measured on (configs/penn_action/dev_set), which come from elsewhere.

Classes left out, because a Penn class looks like them (a clip of them is not "unknown"):
MSR Action3D high throw, tennis swing, tennis serve, golf swing, pickup and throw, bend;
UTKinect sitDown, standUp, pickUp, throw; JHMDB golf, jump, pick, pullup, sit, stand, throw.
"""
from __future__ import annotations

import argparse
import pickle
from collections import Counter
from pathlib import Path

import numpy as np

from posec3d.files import atomic_write_bytes

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared/data/datasets"
DEFAULT_OUT = REPO / "work_dirs/penn_action/penn_outliers.pkl"

# Joint orders -> COCO-17 (../shared/data/README.md); the head stands in for the nose, no eyes or ears.
# MSR Action3D's own order (body_model.mat: 0 l_sho, 1 r_sho, ..., 19 head):
MSR20_TO_COCO17 = [19, -1, -1, -1, -1, 0, 1, 7, 8, 9, 10, 4, 5, 13, 14, 15, 16]
# UTKinect, the Kinect SDK v1 order (0 hip_center, 1 spine, 2 shoulder_center, 3 head, 4-7 left arm, ...):
KINECT20_TO_COCO17 = [3, -1, -1, -1, -1, 4, 8, 5, 9, 6, 10, 12, 16, 13, 17, 14, 18]
# JHMDB's puppet order (0 neck, 1 belly, 2 face, 3 r_sho, 4 l_sho, ...):
JHMDB15_TO_COCO17 = [2, -1, -1, -1, -1, 4, 3, 8, 7, 12, 11, 6, 5, 10, 9, 14, 13]

# source file, label map, joint map, the classes kept (everything not resembling a Penn class)
SOURCES = [
    ("msr_action3d/msr_action3d_kinect20_proj2d.pkl", "msr_action3d/label_map_msr_action3d.txt",
     MSR20_TO_COCO17,
     {"high arm wave", "horizontal arm wave", "hammer", "hand catch", "forward punch", "draw X", "draw tick",
      "draw circle", "hand clap", "two hand wave", "side boxing", "forward kick", "side kick", "jogging"}),
    ("utkinect_action3d/utkinect_kinect20_proj2d.pkl", "utkinect_action3d/label_map_utkinect.txt",
     KINECT20_TO_COCO17, {"walk", "carry", "push", "pull", "waveHands", "clapHands"}),
    ("jhmdb14_ddnet/jhmdb14_gt15_2d_pseudocanvas.pkl", "jhmdb14_ddnet/label_map_jhmdb14.txt",
     JHMDB15_TO_COCO17, {"catch", "clap", "pour", "push", "run", "walk", "wave"}),
]


# Both arms raised overhead is half of a jumping jack and the end of a clean and jerk: the split
# ``outlier_no_overhead`` leaves these classes out (a run with them made those Penn clips unsure).
OVERHEAD = {"msr_action3d:high arm wave", "msr_action3d:two hand wave", "utkinect_action3d:waveHands",
            "jhmdb14_ddnet:wave"}


def to_coco17(keypoint: np.ndarray, score: np.ndarray, mapping: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(M, T, V, 2), (M, T, V) -> (M, T, 17, 2), (M, T, 17); unmapped joints get zeros and score 0."""
    idx = np.asarray(mapping)
    missing = idx < 0
    kp = keypoint[..., np.where(missing, 0, idx), :].astype(np.float32)
    sc = score[..., np.where(missing, 0, idx)].astype(np.float32)
    kp[..., missing, :] = 0
    sc[..., missing] = 0
    return kp, sc


def collect(root: Path = DATASETS) -> tuple[list[dict], list[str]]:
    """Outlier samples (COCO-17, ``label`` = index into the returned class list) and the class names."""
    samples, classes = [], []
    for pkl, label_map, mapping, keep in SOURCES:
        names = (root / label_map).read_text().split("\n")
        names = [n.strip() for n in names if n.strip()]
        unknown = keep - set(names)
        if unknown:
            raise ValueError(f"{label_map}: no classes {sorted(unknown)}")
        dataset = pkl.split("/")[0]
        with open(root / pkl, "rb") as f:
            data = pickle.load(f)
        for ann in data["annotations"]:
            name = names[int(ann["label"])]
            if name not in keep:
                continue
            qualified = f"{dataset}:{name}"
            if qualified not in classes:
                classes.append(qualified)
            kp, sc = to_coco17(ann["keypoint"], ann["keypoint_score"], mapping)
            samples.append(dict(frame_dir=f"{dataset}/{ann['frame_dir']}", label=classes.index(qualified),
                                img_shape=tuple(ann["img_shape"]), original_shape=tuple(ann["img_shape"]),
                                total_frames=int(kp.shape[1]), keypoint=kp, keypoint_score=sc))
    return samples, classes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    samples, classes = collect()
    no_overhead = [s["frame_dir"] for s in samples if classes[s["label"]] not in OVERHEAD]
    data = {"split": {"outlier": [s["frame_dir"] for s in samples], "outlier_no_overhead": no_overhead},
            "annotations": samples, "classes": classes}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, pickle.dumps(data, protocol=4))
    counts = Counter(s["frame_dir"].split("/")[0] for s in samples)
    print(f"{args.out}: {len(samples)} outlier clips of {len(classes)} classes "
          + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {len(no_overhead)} without arms overhead")


if __name__ == "__main__":
    main()
