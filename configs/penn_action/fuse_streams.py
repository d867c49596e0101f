"""Late fusion of two Penn Action models (e.g. a joint and a limb stream), scored offline.

``python configs/penn_action/fuse_streams.py A.scores.npz B.scores.npz -o cand/fusion.json``

The inputs are the per-clip scores ``calibrate.py`` keeps (``--scores``). The fused score is
``w * p_A + (1 - w) * p_B`` (probabilities averaged over each model's test views, as pyskl's
two-stream ensembles average them); ``w`` is chosen on val_part alone (top-1, ties by NLL) from a
grid of 0.05 steps, or given with ``--weight``. The fused scores then go through calibrate.py's
``evaluate``: the same temperature, threshold and four selection figures as a single model.

For "unknown" two more open-set scores are measured (AUROC and the out-of-vocabulary rate at the
threshold that loses no more than 1 point of correct dev clips): the streams' agreement, the overlap
``sum_c min(p_A, p_B)`` of their two distributions (1 when they agree exactly), and the fused top
probability times that agreement.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from calibrate import WINDOWS, evaluate, load_scores, plot_confusions, save_scores, write_result  # noqa: E402


def fuse(a: dict, b: dict, weight: float) -> dict:
    out = dict(a)
    # (the sliding-window scores too, when both files have them: same clips, same spans)
    windows = [f"win_{kind}_probs" for kind in WINDOWS if f"win_{kind}_probs" in a and f"win_{kind}_probs" in b]
    for key in ("val_probs", "dev_probs", "dev_logits", *windows):
        out[key] = (weight * a[key].astype(np.float64) + (1 - weight) * b[key].astype(np.float64)).astype(np.float32)
    return out


def check_same_clips(a: dict, b: dict) -> None:
    for key in ("labels", "val_labels", "dev_names", "dev_split", "dev_label",
                *(f"win_{kind}_clip" for kind in WINDOWS if f"win_{kind}_clip" in a and f"win_{kind}_clip" in b)):
        if list(np.asarray(a[key]).tolist()) != list(np.asarray(b[key]).tolist()):
            raise SystemExit(f"the two score files differ in {key}: score both models on the same clips")


def val_nll(probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels].astype(np.float64), 1e-12, None))))


def choose_weight(a: dict, b: dict, grid: np.ndarray) -> tuple[float, list[tuple[float, float, float]]]:
    """The grid weight with the best val_part top-1, ties broken by the lower NLL; and the whole curve."""
    curve = []
    for w in grid:
        p = w * a["val_probs"].astype(np.float64) + (1 - w) * b["val_probs"].astype(np.float64)
        curve.append((float(w), float(np.mean(p.argmax(1) == a["val_labels"])), val_nll(p, a["val_labels"])))
    best = max(curve, key=lambda row: (row[1], -row[2]))
    return best[0], curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="scores of stream A (.npz from calibrate.py)")
    parser.add_argument("b", type=Path, help="scores of stream B")
    parser.add_argument("--weight", type=float, help="w of stream A (default: chosen on val_part)")
    parser.add_argument("--max-drop", type=float, default=0.01)
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--figures", type=Path, help="Write the fused confusion matrices here.")
    args = parser.parse_args()

    a, b = load_scores(args.a), load_scores(args.b)
    check_same_clips(a, b)
    weight, curve = choose_weight(a, b, np.round(np.arange(0, 1.0001, 0.05), 2))
    for w, top1, loss in curve:
        print(f"w(A) {w:.2f}: val_part top-1 {top1:.4f}, NLL {loss:.4f}")
    if args.weight is not None:
        weight = args.weight
    print(f"fusing with w(A) = {weight:.2f}")
    fused = fuse(a, b, weight)
    agreement = np.minimum(a["dev_probs"], b["dev_probs"]).sum(1)
    block, figures, per_clip = evaluate(fused, args.max_drop, extra_open_set={
        "agreement": agreement, "max_probability_x_agreement": fused["dev_probs"].max(1) * agreement})
    block["fusion_weight_a"] = weight
    figures["fusion_weight_a"] = weight
    print(json.dumps(figures, indent=1))
    save_scores(args.out.with_suffix(".scores.npz"), fused)
    if args.figures is not None:
        plot_confusions(fused, per_clip, args.figures)
    write_result(args.out, block, figures, per_clip)


if __name__ == "__main__":
    main()
