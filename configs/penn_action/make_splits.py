"""Carve a stratified validation part out of Penn Action's official training split.

The official test split is held back, so model selection needs its own validation data:
``python configs/penn_action/make_splits.py [--val-fraction 0.15] [--seed 0] -o work_dirs/penn_action/penn_action_splits.pkl``
writes a copy of the annotation file whose ``split`` dict has three names:

- ``train``       the official training split (all 1258 clips), unchanged,
- ``train_part``  what is left for training after the validation part is taken out,
- ``val_part``    about ``val_fraction`` of every class (at least one clip per class).

The file goes to a work folder (never into the repository: the data may not be redistributed).
"""
from __future__ import annotations

import argparse
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np

from posec3d.files import atomic_write

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared/data/datasets/penn_action/penn_action_train_gt13_2d.pkl"
DEFAULT_OUT = REPO / "work_dirs/penn_action/penn_action_splits.pkl"


def stratified_split(ids: list[str], labels: list[int], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Per class, a seeded random ``round(n * val_fraction)`` (>= 1) ids go to validation; order is kept."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    val_idx: set[int] = set()
    for label in sorted(by_class):
        members = by_class[label]
        n_val = max(1, int(round(len(members) * val_fraction)))
        val_idx.update(rng.choice(members, size=n_val, replace=False).tolist())
    train = [ids[i] for i in range(len(ids)) if i not in val_idx]
    val = [ids[i] for i in range(len(ids)) if i in val_idx]
    return train, val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with open(args.source, "rb") as f:
        data = pickle.load(f)  # the shared, trusted Penn Action file
    official = set(data["split"]["train"])
    samples = [a for a in data["annotations"] if a["frame_dir"] in official]
    ids = [a["frame_dir"] for a in samples]
    train, val = stratified_split(ids, [int(a["label"]) for a in samples], args.val_fraction, args.seed)

    out = dict(split=dict(train=ids, train_part=train, val_part=val), annotations=data["annotations"])
    with atomic_write(args.out, "wb") as f:
        pickle.dump(out, f, protocol=4)
    print(f"{args.out}: train {len(ids)}, train_part {len(train)}, val_part {len(val)}")


if __name__ == "__main__":
    main()
