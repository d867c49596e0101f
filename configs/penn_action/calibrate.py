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
   Also the sliding windows `live` (48 frames every 16) and the web camera tab (24 every 8) classify:
   the share of each in-vocabulary dev clip's windows labelled right, because a model can win on
   whole clips and still be wrong on the phases of a repetition that live use sees (round 4).
4. Every clip's raw scores are kept (``--scores``, next to ``--out`` by default), so that fusions of
   several models (``fuse_streams.py``) are scored by the same code without running them again.
"""
from __future__ import annotations

import argparse
import io
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
WINDOWS = ("live", "camera")


def frame_rate(ann: dict) -> float:
    from posec3d.errors import VideoError
    from posec3d.pose.video import VideoReader

    try:
        with VideoReader(ann["filename"]) as video:
            return video.fps or 30.0
    except VideoError:
        return 30.0  # the cached poses outlived the video: the common phone / web rate


def window_samples(rec, ann: dict) -> dict[str, list[dict]]:
    """The windows each tool classifies on a clip: `live`'s default windows over every frame
    (``default_window``: 3 model clips every clip), and the web camera tab's over the frames it
    sends (one every ``CAMERA_FRAME_EVERY_S``), so that its 24-frame window spans 3.6 s of the
    action, not 24 frames of a 30 fps file."""
    from posec3d.engine.inference import frames_every, slice_frames, sliding_windows
    from posec3d.stream import default_window
    from posec3d.web.pages import CAMERA_FRAME_EVERY_S, CAMERA_STRIDE, CAMERA_WINDOW

    sent = frames_every(ann, CAMERA_FRAME_EVERY_S * frame_rate(ann))
    out = {}
    for kind, seen, (window, stride) in (("live", ann, default_window(rec)),
                                         ("camera", sent, (CAMERA_WINDOW, CAMERA_STRIDE))):
        out[kind] = [slice_frames(seen, s, e) for s, e in sliding_windows(int(seen["total_frames"]), window, stride)]
    return out


def smoothed_top(probs: np.ndarray, clip: np.ndarray, last: int) -> np.ndarray:
    """The top class of the mean of each window's and the ``last - 1`` windows before it of the same
    clip: what `live` shows (``StreamRecognizer`` smooths a person's label so)."""
    tops = np.empty(len(probs), int)
    for c in np.unique(clip):
        rows = np.flatnonzero(clip == c)
        for j, i in enumerate(rows):
            tops[i] = int(np.argmax(probs[rows[max(0, j - last + 1):j + 1]].mean(0)))
    return tops


def auroc(pos, neg) -> float:
    """P(score of a random in-vocabulary clip > that of a random out-of-vocabulary one), ties half."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def view_logits(rec, imgs: torch.Tensor) -> np.ndarray:
    """Logits averaged over the test views (the energy score needs logits, not averaged probs)."""
    before = rec.model.average_clips
    rec.model.average_clips = "score"
    try:
        with torch.inference_mode():
            return rec.model.forward_test(imgs[None].float()).numpy()[0]
    finally:
        rec.model.average_clips = before


def dev_clips():
    """(provenance row, cached MediaPipe poses) of every dev clip whose poses are cached and show a
    person, in provenance order (a name listed twice counts once)."""
    from posec3d.engine.inference import has_person

    for name, row in {r["name"]: r for r in read_provenance()}.items():
        path = POSES / f"{name}.pkl"
        if not path.is_file():
            continue
        with open(path, "rb") as f:
            ann = pickle.load(f)  # cached by dev_set/evaluate.py
        if has_person(ann):
            yield row, ann


def score_model(config: str, checkpoint: str) -> dict:
    """Every number the figures need, per clip, before any calibration (temperature 1).

    ``val_probs`` (val_part clips x classes) with ``val_labels``; for every cached dev clip with a
    person: ``dev_names``, ``dev_split`` (penn / ood), ``dev_label``, ``dev_probs`` (the test views'
    averaged probabilities, what ``demo`` ranks) and ``dev_logits`` (the views' averaged logits).
    """
    from posec3d.engine.inference import ActionRecognizer

    rec = ActionRecognizer(config, checkpoint, LABEL_MAP)
    rec.temperature = 1.0  # raw scores: the temperature is fitted on them
    with open(SPLITS, "rb") as f:
        data = pickle.load(f)  # written by make_splits.py
    val_ids = set(data["split"]["val_part"])
    val = [a for a in data["annotations"] if a["frame_dir"] in val_ids]
    out = {"labels": list(rec.labels), "val_probs": np.stack([rec.scores(a) for a in val]),
           "val_labels": np.array([a["label"] for a in val])}
    dev = {k: [] for k in ("dev_names", "dev_split", "dev_label", "dev_probs", "dev_logits")}
    windows = {f"win_{kind}_{k}": [] for kind in WINDOWS for k in ("clip", "probs")}
    for row, ann in dev_clips():
        name = row["name"]
        imgs = rec.views(ann)
        for key, value in (("dev_names", name), ("dev_split", row["split"]), ("dev_label", row["label"]),
                           ("dev_probs", rec.scores_of_views(imgs[None].float())[0]),
                           ("dev_logits", view_logits(rec, imgs))):
            dev[key].append(value)
        if row["split"] != "penn":
            continue
        for kind, samples in window_samples(rec, ann).items():
            windows[f"win_{kind}_probs"].extend(rec.scores_batch(samples))
            windows[f"win_{kind}_clip"].extend([len(dev["dev_names"]) - 1] * len(samples))
    out.update({k: np.asarray(v) for k, v in dev.items()})
    out.update({k: np.asarray(v) for k, v in windows.items()})
    return out


def save_scores(path: Path, scores: dict) -> None:
    from posec3d.files import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in scores.items()})
    atomic_write_bytes(path, buf.getvalue())


def load_scores(path: Path) -> dict:
    with np.load(path) as z:
        scores = {k: z[k] for k in z.files}
    scores["labels"] = [str(x) for x in scores["labels"]]
    return scores


def open_set_scores(probs: np.ndarray, logits: np.ndarray, method: str) -> np.ndarray:
    """Higher = more likely in-vocabulary: the calibrated top probability, or the energy score."""
    from posec3d.engine.calibration import energy_score

    if method == "max_probability":
        return probs.max(1)
    if method == "energy":
        return energy_score(logits)
    raise ValueError(f"unknown open-set score {method!r}")


def evaluate(scores: dict, max_drop: float = 0.01, method: str = "max_probability",
             extra_open_set: dict | None = None):
    """(calibration block, figures, per-clip rows) of one model's (or one fusion's) scores.

    ``extra_open_set``: name -> per-dev-clip score (higher = in-vocabulary), measured as AUROC and
    as the OOD rate at the threshold that loses no more than ``max_drop`` of correct dev clips.
    """
    from posec3d.engine.calibration import (apply_temperature, choose_threshold, energy_score, fit_temperature,
                                             nll, open_set_figures)
    from posec3d.stream.core import SMOOTHING

    labels_txt = scores["labels"]
    probs, labels = scores["val_probs"].astype(np.float64), scores["val_labels"]
    temperature = fit_temperature(probs, labels)
    print(f"val_part: {len(labels)} clips, top-1 {np.mean(probs.argmax(1) == labels):.4f}, "
          f"NLL {nll(probs, labels):.4f} -> {nll(probs, labels, temperature):.4f} at T = {temperature:.3f}")
    dev_probs = apply_temperature(scores["dev_probs"], temperature)
    dev_open = open_set_scores(dev_probs, scores["dev_logits"], method)
    energy = energy_score(scores["dev_logits"])
    in_vocab = scores["dev_split"] == "penn"
    per_clip = {}
    demo_margin = None
    for i, name in enumerate(scores["dev_names"]):
        p, label = dev_probs[i], str(scores["dev_label"][i])
        if name == DEMO_CLIP:
            # Signed: clean_and_jerk's probability minus the best other class's (negative when it loses).
            right = labels_txt.index(label)
            demo_margin = float(p[right] - np.delete(p, right).max())
        first, second = np.argsort(p)[::-1][:2]
        per_clip[str(name)] = {"split": str(scores["dev_split"][i]), "label": label, "top": labels_txt[int(first)],
                               "score": float(p.max()), "energy": float(energy[i]),
                               "second": labels_txt[int(second)], "second_score": float(p[second])}
    in_ok = np.array([c["top"] == c["label"] for c in per_clip.values()])[in_vocab]
    choice = choose_threshold(dev_open[in_vocab], in_ok, dev_open[~in_vocab], max_drop)
    # val_part's top-1 under the same threshold (clean poses: should barely move).
    val_top = probs.argmax(1) == labels
    # (a probability threshold: only defined when the open-set score is the top probability)
    val_open = (open_set_figures(choice.threshold, apply_temperature(probs, temperature).max(1), val_top, [])
                .in_top1_open if method == "max_probability" else None)
    per_class: dict[str, list[bool]] = {}
    for c in per_clip.values():
        if c["split"] == "penn":
            per_class.setdefault(c["label"], []).append(c["top"] == c["label"])
    max_p = dev_probs.max(1)
    figures = {
        "val_part_clips": len(labels), "val_part_top1": float(val_top.mean()),
        "val_part_top1_open": val_open,
        "nll_before": nll(probs, labels), "nll_after": nll(probs, labels, temperature),
        "dev_in_clips": int(in_vocab.sum()), "dev_ood_clips": int((~in_vocab).sum()),
        "dev_top1": choice.in_top1, "dev_top1_open": choice.in_top1_open, "ood_rejected": choice.ood_rejected,
        "dev_mean_class": float(np.mean([np.mean(v) for v in per_class.values()])) if per_class else None,
        "dev_classes": len(per_class), "demo_clip_margin": demo_margin,
        "auroc_max_probability": auroc(max_p[in_vocab], max_p[~in_vocab]),
        "auroc_energy": auroc(energy[in_vocab], energy[~in_vocab]),
    }
    demo = np.flatnonzero(np.asarray(scores["dev_names"]) == DEMO_CLIP)
    for kind in WINDOWS:
        if f"win_{kind}_probs" not in scores:  # (fusions of older score files)
            continue
        win_probs, clip = scores[f"win_{kind}_probs"], scores[f"win_{kind}_clip"]
        truth = np.array([labels_txt.index(str(scores["dev_label"][c])) for c in clip])  # in-vocabulary clips only
        hit = win_probs.argmax(1) == truth
        figures[f"windows_{kind}_top1"] = float(hit.mean())  # pooled over every window
        figures[f"windows_{kind}_clip_mean"] = float(np.mean([hit[clip == c].mean() for c in np.unique(clip)]))
        figures[f"windows_{kind}_smoothed_top1"] = float(np.mean(smoothed_top(win_probs, clip, SMOOTHING) == truth))
        # what `live` shows as "unknown" on in-vocabulary footage at the clip-level threshold
        window_top = apply_temperature(win_probs, temperature).max(1)
        figures[f"windows_{kind}_unknown"] = float(np.mean(window_top < choice.threshold))
        if demo.size:
            figures[f"windows_{kind}_demo"] = f"{int(hit[clip == demo[0]].sum())}/{int((clip == demo[0]).sum())}"
    for name, values in {"max_probability": max_p, "energy": energy, **(extra_open_set or {})}.items():
        values = np.asarray(values, float)
        strict = choose_threshold(values[in_vocab], in_ok, values[~in_vocab], max_drop)
        figures[f"ood_rejected_{name}"] = strict.ood_rejected
        figures[f"auroc_{name}"] = auroc(values[in_vocab], values[~in_vocab])
    block = {"temperature": round(temperature, 4), "unknown_threshold": round(choice.threshold, 4),
             "score": method,
             "fitted_on": "temperature: NLL on val_part (188 held-out Penn clips); threshold: the real-video "
                          f"dev set (at most {max_drop:.0%} in-vocabulary top-1 lost)"}
    return block, figures, per_clip


def plot_confusions(scores: dict, per_clip: dict, folder: Path) -> None:
    from posec3d.engine.metrics import confusion_matrix
    from posec3d.engine.plots import plot_confusion

    labels_txt, probs, labels = scores["labels"], scores["val_probs"], scores["val_labels"]
    n = len(labels_txt)
    plot_confusion(confusion_matrix(probs.argmax(1), labels, n), folder / "penn_action_confusion.png",
                   labels_txt, f"val_part, {len(labels)} held-out Penn clips (10 clips x flip), row-normalised")
    dev = [c for c in per_clip.values() if c["split"] == "penn"]
    idx = {k: i for i, k in enumerate(labels_txt)}
    plot_confusion(confusion_matrix(np.array([idx[c["top"]] for c in dev]), np.array([idx[c["label"]] for c in dev]), n),
                   folder / "penn_action_dev_confusion.png", labels_txt,
                   f"real-video dev set, {len(dev)} clips (MediaPipe poses), row-normalised")


def write_result(path: Path, block: dict, figures: dict, per_clip: dict) -> None:
    from posec3d.files import atomic_write_text

    atomic_write_text(path, json.dumps({"calibration": block, "figures": figures, "clips": per_clip}, indent=1))
    print(f"wrote {path}: {block}")


def model_parser(doc: str, default_out: Path) -> argparse.ArgumentParser:
    """The arguments every script that scores one model on val_part and the dev set takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("checkpoint")
    parser.add_argument("--max-drop", type=float, default=0.01,
                        help="In-vocabulary top-1 the unknown threshold may cost on the dev set (default 1 point).")
    parser.add_argument("-o", "--out", type=Path, default=default_out)
    return parser


def main() -> None:
    parser = model_parser(__doc__, REPO / "work_dirs/penn_action/calibration.json")
    parser.add_argument("--figures", type=Path, help="Write the val_part and dev-set confusion matrices here.")
    parser.add_argument("--scores", type=Path, help="Also keep every clip's scores here (.npz; fuse_streams.py reads "
                                                     "them). Default: next to --out.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    scores = score_model(args.config, args.checkpoint)
    save_scores(args.scores or args.out.with_suffix(".scores.npz"), scores)
    block, figures, per_clip = evaluate(scores, args.max_drop)
    print(json.dumps(figures, indent=1))
    if args.figures is not None:
        plot_confusions(scores, per_clip, args.figures)
    write_result(args.out, block, figures, per_clip)


if __name__ == "__main__":
    main()
