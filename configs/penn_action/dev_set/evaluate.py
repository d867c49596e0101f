"""Score Penn Action models on the real-video development set laid out by ``layout.py``.

Poses are extracted once per clip with the embedded MediaPipe estimator, exactly as ``posec3d demo``
and ``demo-folder`` do (``posec3d.pose.extract.extract_video``, two persons), and cached, so that
several checkpoints can be compared on identical inputs::

    python configs/penn_action/dev_set/evaluate.py extract [--max-frames 450]
    python configs/penn_action/dev_set/evaluate.py score NAME=CONFIG:CHECKPOINT ... [--json out.json]

``NAME=bundled`` scores the bundled ``penn-action`` model (as installed in this checkout). The
whole-clip scores are what the demo reports (all views of the config's test pipeline averaged).
``score`` prints top-1 / mean-class on the Penn clips, per class, and the maximum probability of
every out-of-vocabulary clip; ``--json`` keeps the raw scores (for calibration).
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from layout import read_provenance, target_path  # noqa: E402

REPO = HERE.parents[2]
CLIPS = REPO / "dev_clips"
CACHE = REPO / "work_dirs/penn_action/dev_poses"


def extract(max_frames: int | None) -> None:
    from posec3d.files import atomic_write
    from posec3d.pose.extract import extract_video

    CACHE.mkdir(parents=True, exist_ok=True)
    for row in read_provenance():
        out = CACHE / f"{row['name']}.pkl"
        if out.is_file():
            continue
        t0 = time.perf_counter()
        ann = extract_video(target_path(row, CLIPS), max_persons=2, max_frames=max_frames)
        with atomic_write(out, "wb") as f:
            pickle.dump(ann, f, protocol=4)
        print(f"{row['name']}: {ann['total_frames']} frames, M={ann['keypoint'].shape[0]}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


def load_recognizer(spec: str):
    from posec3d.engine.inference import ActionRecognizer

    if spec == "bundled":
        return ActionRecognizer.from_bundled("penn-action")
    config, checkpoint = spec.split(":", 1)
    label_map = REPO / "posec3d/zoo/penn_action/label_map.txt"
    return ActionRecognizer(config, checkpoint, label_map)


def score_all(recognizer) -> dict[str, list[float]]:
    """{clip name: probabilities} for every cached clip (a clip without any person gets none)."""
    from posec3d.engine.inference import has_person

    out = {}
    for row in read_provenance():
        path = CACHE / f"{row['name']}.pkl"
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            ann = pickle.load(f)  # written by extract() above
        if has_person(ann):
            out[row["name"]] = [float(s) for s in recognizer.scores(ann)]
    return out


def summarise(name: str, scores: dict[str, list[float]], labels: list[str]) -> dict:
    rows = {r["name"]: r for r in read_provenance()}
    per_class: dict[str, list[int]] = {}
    hits = []
    for clip, s in scores.items():
        row = rows[clip]
        if row["split"] != "penn":
            continue
        ok = int(labels[int(np.argmax(s))] == row["label"])
        hits.append(ok)
        per_class.setdefault(row["label"], []).append(ok)
    ood = {c: float(max(s)) for c, s in scores.items() if rows[c]["split"] == "ood"}
    summary = {"model": name, "top1": float(np.mean(hits)) if hits else float("nan"), "clips": len(hits),
               "mean_class": float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else float("nan"),
               "per_class": {k: [int(sum(v)), len(v)] for k, v in sorted(per_class.items())},
               "ood_max_prob": ood}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("extract")
    p.add_argument("--max-frames", type=int, default=None)
    p = sub.add_parser("score")
    p.add_argument("models", nargs="+", help="NAME=CONFIG:CHECKPOINT or NAME=bundled")
    p.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.cmd == "extract":
        extract(args.max_frames)
        return
    from posec3d.files import atomic_write_text

    results = {}
    for item in args.models:
        name, spec = item.split("=", 1)
        rec = load_recognizer(spec)
        scores = score_all(rec)
        summary = summarise(name, scores, rec.labels)
        results[name] = {"summary": summary, "scores": scores, "labels": rec.labels}
        pc = "  ".join(f"{k} {v[0]}/{v[1]}" for k, v in summary["per_class"].items())
        ood = np.array(list(summary["ood_max_prob"].values()))
        print(f"{name}: top1 {summary['top1']:.3f} mean-class {summary['mean_class']:.3f} "
              f"({summary['clips']} clips) | OOD max-prob median {np.median(ood):.2f}\n   {pc}")
        for clip, s in scores.items():
            print(f"   {clip:50s} {rec.labels[int(np.argmax(s))]:15s} {max(s):.2f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
