"""Average the weights of checkpoints of one architecture (a fine-tuned model and the one it started from).

``python configs/penn_action/weight_average.py A.pth B.pth [C.pth ...] --weights 0.5 0.5 -o out.pth``

Interpolating a fine-tuned model with its starting point ("WiSE-FT", Wortsman et al., CVPR 2022)
often holds up better under a distribution shift than either end; here the shift is from Penn's
annotated joints to MediaPipe poses of real videos. Floating tensors (BN statistics included) are
averaged with the given weights; integer ones (BN counters) are taken from the first checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from posec3d.models.checkpoint import read_checkpoint, save_checkpoint


def average_state_dicts(states: list[dict], weights: list[float]) -> dict:
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise ValueError("checkpoints of different architectures cannot be averaged")
    total = float(sum(weights))
    out = {}
    for k in keys:
        if states[0][k].is_floating_point():
            out[k] = sum(w / total * s[k].float() for w, s in zip(weights, states))
        else:
            out[k] = states[0][k].clone()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--weights", nargs="+", type=float)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args()
    weights = args.weights or [1.0] * len(args.checkpoints)
    if len(weights) != len(args.checkpoints):
        parser.error("give one weight per checkpoint")
    states = [read_checkpoint(p)["state_dict"] for p in args.checkpoints]
    meta = {"averaged_from": [str(p) for p in args.checkpoints], "weights": weights}
    save_checkpoint(args.out, average_state_dicts(states, weights), meta=meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
