"""Training-step variants per model family, alternating in one run: what ``train_speedups='auto'`` chose.

One SlowOnly / C3D / X3D training step (forward_train + backward + clip_grad_norm(40) + SGD momentum)
on random 17x48x56x56 clips, for each variant: ``plain``, ``cl`` (channels-last 3D), ``fused`` /
``foreach`` / ``noforeach`` (SGD implementation), ``bf16`` (CPU autocast); combine with ``+``.
Variants alternate within every round, so machine load hits all alike. Prints ONE JSON object per family.

    python bench/train_variants.py [--families x3d,c3d,slowonly] [--batch 4] [--rounds 4]
        [--variants plain,cl,cl+fused,plain+bf16] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # a shared CPU: no spinning OpenMP workers

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from model import MODELS  # noqa: E402  (the benchmark model dicts of bench/model.py)

from posec3d.models import build_model  # noqa: E402


def make_step(family: str, variant: str, x: torch.Tensor, y: torch.Tensor):
    parts = set(variant.split("+"))
    torch.manual_seed(0)
    model = build_model(MODELS[family]).train()
    if "cl" in parts:
        model.to(memory_format=torch.channels_last_3d)
        model.channels_last = True
    kw = {"fused": True} if "fused" in parts else {"foreach": True} if "foreach" in parts else \
        {"foreach": False} if "noforeach" in parts else {}
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4, **kw)
    bf16 = "bf16" in parts

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", enabled=bf16, dtype=torch.bfloat16):
            loss = model.forward_train(x, y)["loss_cls"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 40)
        opt.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="x3d,c3d,slowonly")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variants", default="plain,cl,cl+fused,cl+foreach,plain+bf16")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    x = torch.rand(args.batch, 1, 17, 48, 56, 56)
    y = torch.randint(0, 60, (args.batch,))
    for family in args.families.split(","):
        load = [os.getloadavg()[0]]
        steps = {v: make_step(family, v, x, y) for v in variants}
        for v in variants:
            steps[v]()  # warm-up (oneDNN primitive creation)
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                start = time.perf_counter()
                steps[v]()
                times[v].append(time.perf_counter() - start)
        load.append(os.getloadavg()[0])
        ms = {v: statistics.median(t) * 1000 / args.batch for v, t in times.items()}
        print(json.dumps({"family": family, "batch": args.batch, "threads": args.threads,
                          "ms_per_clip": {v: round(m, 1) for v, m in ms.items()},
                          "speedup_vs_" + variants[0]: {v: round(ms[variants[0]] / m, 3) for v, m in ms.items()},
                          "all_seconds": {v: [round(s, 3) for s in t] for v, t in times.items()},
                          "loadavg_1min_start_end": load}), flush=True)


if __name__ == "__main__":
    main()
