"""Fit the open-set calibration of a Penn Action model: the ``"calibration"`` block of ``model.json``.

``python configs/penn_action/calibrate.py CONFIG CHECKPOINT [-o work_dirs/penn_action/calibration.json]``

1. Temperature: fitted by NLL on val_part (held out from training; Penn ground-truth joints), with
   the config's test views (``posec3d.engine.calibration.fit_temperature``).
2. Threshold: on the real-video dev set (``configs/penn_action/dev_set``, poses cached by its
   ``evaluate.py extract``), the highest calibrated top probability that costs in-vocabulary top-1
   at most ``--max-drop`` (default 1 point); the out-of-vocabulary clips are then *measured*
   against it, never used to choose it.
3. Measured alongside: the energy score (logits averaged over views) against the maximum
   probability, as AUROC of in-vocabulary vs out-of-vocabulary clips; the dev set's mean-class
   accuracy; and the margin of the demo clip (the shared Kinetics clean_and_jerk) over its second
   class, so one run gives the four figures every candidate model is selected on.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE / "dev_set"))
from layout import read_provenance  # noqa: E402

SPLITS = REPO / "work_dirs/penn_action/penn_action_splits.pkl"
DEMO_CLIP = "clean_and_jerk__kinetics_clean_and_jerk"  # `posec3d demo`'s acceptance clip (issue 10)
POSES = REPO / "work_dirs/penn_action/dev_poses"
LABEL_MAP = REPO / "posec3d/zoo/penn_action/label_map.txt"


def auroc(pos, neg) -> float:
    """P(score of a random in-vocabulary clip > that of a random out-of-vocabulary one), ties half."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def mean_logits(rec, annotation) -> np.ndarray:
    """Logits averaged over the test views (the energy score needs logits, not averaged probs)."""
    from posec3d.engine.inference import prepare_annotation

    imgs = rec.pipeline(prepare_annotation(annotation))["imgs"]
    imgs = imgs if isinstance(imgs, torch.Tensor) else torch.as_tensor(np.asarray(imgs))
    before = rec.model.average_clips
    rec.model.average_clips = "score"
    try:
        with torch.inference_mode():
            return rec.model.forward_test(imgs[None].float()).numpy()[0]
    finally:
        rec.model.average_clips = before


def main() -> None:
    from posec3d.engine.calibration import (apply_temperature, choose_threshold, energy_score, fit_temperature,
                                             nll, open_set_figures)
    from posec3d.engine.inference import ActionRecognizer, has_person
    from posec3d.files import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--max-drop", type=float, default=0.01)
    parser.add_argument("-o", "--out", type=Path, default=REPO / "work_dirs/penn_action/calibration.json")
    parser.add_argument("--figures", type=Path, help="Write the val_part and dev-set confusion matrices here.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    rec = ActionRecognizer(args.config, args.checkpoint, LABEL_MAP)
    with open(SPLITS, "rb") as f:
        data = pickle.load(f)  # written by make_splits.py
    val_ids = set(data["split"]["val_part"])
    val = [a for a in data["annotations"] if a["frame_dir"] in val_ids]
    probs = np.stack([rec.scores(a) for a in val]).astype(np.float64)
    labels = np.array([a["label"] for a in val])
    temperature = fit_temperature(probs, labels)
    print(f"val_part: {len(val)} clips, top-1 {np.mean(probs.argmax(1) == labels):.4f}, "
          f"NLL {nll(probs, labels):.4f} -> {nll(probs, labels, temperature):.4f} at T = {temperature:.3f}")

    rec.temperature = temperature
    rows = {r["name"]: r for r in read_provenance()}
    in_s, in_ok, in_e, ood_s, ood_e, per_clip = [], [], [], [], [], {}
    demo_margin = None
    for name, row in rows.items():
        path = POSES / f"{name}.pkl"
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            ann = pickle.load(f)  # cached by dev_set/evaluate.py
        if not has_person(ann):
            continue
        p = rec.scores(ann)
        e = float(energy_score(mean_logits(rec, ann)[None])[0])
        if name == DEMO_CLIP:
            # Signed: clean_and_jerk's probability minus the best other class's (negative when it loses).
            right = rec.labels.index(row["label"])
            demo_margin = float(p[right] - np.delete(p, right).max())
        first, second = np.argsort(p)[::-1][:2]
        top = rec.labels[int(first)]
        per_clip[name] = {"split": row["split"], "label": row["label"], "top": top, "score": float(p.max()), "energy": e,
                          "second": rec.labels[int(second)], "second_score": float(p[second])}
        if row["split"] == "penn":
            in_s.append(float(p.max())), in_ok.append(top == row["label"]), in_e.append(e)
        else:
            ood_s.append(float(p.max())), ood_e.append(e)
    choice = choose_threshold(in_s, in_ok, ood_s, args.max_drop)
    # val_part's top-1 under the same threshold (clean poses: should barely move).
    val_top = probs.argmax(1) == labels
    val_scores = apply_temperature(probs, temperature).max(1)
    val_fig = open_set_figures(choice.threshold, val_scores, val_top, [])
    per_class: dict[str, list[bool]] = {}
    for c in per_clip.values():
        if c["split"] == "penn":
            per_class.setdefault(c["label"], []).append(c["top"] == c["label"])
    figures = {
        "val_part_clips": len(val), "val_part_top1": float(val_top.mean()),
        "val_part_top1_open": val_fig.in_top1_open,
        "nll_before": nll(probs, labels), "nll_after": nll(probs, labels, temperature),
        "dev_in_clips": len(in_s), "dev_ood_clips": len(ood_s),
        "dev_top1": choice.in_top1, "dev_top1_open": choice.in_top1_open, "ood_rejected": choice.ood_rejected,
        "dev_mean_class": float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else None,
        "dev_classes": len(per_class), "demo_clip_margin": demo_margin,
        "auroc_max_probability": auroc(in_s, ood_s), "auroc_energy": auroc(in_e, ood_e),
    }
    print(json.dumps(figures, indent=1))
    if args.figures is not None:
        from posec3d.engine.metrics import confusion_matrix
        from posec3d.engine.plots import plot_confusion

        n = len(rec.labels)
        plot_confusion(confusion_matrix(probs.argmax(1), labels, n), args.figures / "penn_action_confusion.png",
                       rec.labels, f"val_part, {len(val)} held-out Penn clips (10 clips x flip), row-normalised")
        dev = [c for c in per_clip.values() if c["split"] == "penn"]
        idx = {k: i for i, k in enumerate(rec.labels)}
        plot_confusion(confusion_matrix(np.array([idx[c["top"]] for c in dev]), np.array([idx[c["label"]] for c in dev]), n),
                       args.figures / "penn_action_dev_confusion.png", rec.labels,
                       f"real-video dev set, {len(dev)} clips (MediaPipe poses), row-normalised")
    block = {"temperature": round(temperature, 4), "unknown_threshold": round(choice.threshold, 4),
             "score": "max_probability",
             "fitted_on": "temperature: NLL on val_part (188 held-out Penn clips); threshold: the real-video "
                          f"dev set (at most {args.max_drop:.0%} in-vocabulary top-1 lost)"}
    atomic_write_text(args.out, json.dumps({"calibration": block, "figures": figures, "clips": per_clip}, indent=1))
    print(f"wrote {args.out}: {block}")


if __name__ == "__main__":
    main()
