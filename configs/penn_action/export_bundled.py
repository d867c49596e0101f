"""Package a trained Penn Action model as the bundled ``penn-action`` model (``posec3d/zoo/penn_action/``).

``python configs/penn_action/export_bundled.py work_dirs/penn_action/<run>/best.pth [--notes "..."]
[--calibration work_dirs/penn_action/calibration.json]``

Keeps the weights only (fp32 state_dict + a small meta; no optimizer state) and copies the config
and the label map next to them, with the ``model.json`` manifest that ``posec3d.zoo`` reads; its
``"calibration"`` block (temperature, unknown threshold) comes from ``calibrate.py``'s output.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from posec3d import __version__
from posec3d.files import atomic_write_text
from posec3d.models.checkpoint import read_checkpoint, save_checkpoint

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ZOO = REPO / "posec3d/zoo/penn_action"
LABEL_MAP = REPO.parent / "shared/data/datasets/penn_action/label_map_penn_action.txt"
CONFIG = HERE / "x3d_shallow_penn_action.py"
CONFIG_HEADER = (
    "# The bundled penn-action model's config: a copy of the training config in configs/penn_action/\n"
    "# (see that file and docs/penn_action_model.md for the reasoning).\n\n")
DESCRIPTION = ("X3D-shallow PoseC3D, 15 Penn Action classes, COCO-17 input (MediaPipe or Penn GT13 via "
               "MapJoints), 16 frames x 28x28 heatmaps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--notes", default="", help="How it was trained (split, epochs, validation top-1).")
    parser.add_argument("--config", type=Path, default=None,
                        help="Config to ship, as written (readable, with its comments); default: the run's "
                             "resolved config.py next to the checkpoint, else " + CONFIG.name)
    parser.add_argument("--calibration", type=Path, help="calibrate.py's JSON (its 'calibration' block is kept).")
    args = parser.parse_args()

    ckpt = read_checkpoint(args.checkpoint)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
    old_meta = ckpt.get("meta") or {}
    run_config = args.checkpoint.parent / "config.py"
    config = args.config or (run_config if run_config.is_file() else CONFIG)
    meta = {"name": "penn-action", "posec3d_version": __version__, "config": config.name,
            "epoch": old_meta.get("epoch"), "iter": old_meta.get("iter"), "notes": args.notes}
    ZOO.mkdir(parents=True, exist_ok=True)
    save_checkpoint(ZOO / "penn_action_x3d_shallow.pth", state, meta=meta)
    body = config.read_text(encoding="utf-8")
    atomic_write_text(ZOO / "config.py", CONFIG_HEADER + body)
    shutil.copyfile(LABEL_MAP, ZOO / "label_map.txt")
    manifest = {"name": "penn-action", "description": DESCRIPTION, "config": "config.py",
                "checkpoint": "penn_action_x3d_shallow.pth", "label_map": "label_map.txt", "notes": args.notes}
    if args.calibration is not None:
        manifest["calibration"] = json.loads(args.calibration.read_text(encoding="utf-8"))["calibration"]
    atomic_write_text(ZOO / "model.json", json.dumps(manifest, indent=2) + "\n")
    for f in ZOO.iterdir():  # package data must be world-readable once installed
        f.chmod(0o644)
    size = (ZOO / "penn_action_x3d_shallow.pth").stat().st_size
    print(f"wrote {ZOO} (checkpoint {size / 2**20:.2f} MB, {len(state)} tensors)")


if __name__ == "__main__":
    main()
