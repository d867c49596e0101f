"""End-to-end training throughput on the CPU: clips/s and the share of step time spent waiting for data.

Runs the real training loop (``posec3d.engine.trainer.train``) for a few steps of X3D-shallow and
SlowOnly-R50 (the repo's NTU60 joint configs, SPEC §3 pipelines: 48 frames, 56x56 crops) on real
2-person NTU skeletons (shared/data/skeleton/ntu60_mediapipe_coco17_samples.pkl, repeated), with
heatmaps drawn on the loader (numpy, per sample) or in the batch (torch), 2 loader workers.
Prints ONE JSON object. ``data_wait_fraction`` counts the time the loop waits for the loader plus,
for ``batch``, drawing the heatmaps in the main process; the first batch of an epoch (worker start-up)
is left out of the steady-state figures and reported separately.

    python bench/train.py [--steps 6] [--batch 8] [--models x3d_shallow slowonly_r50]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = {
    "x3d_shallow": REPO / "configs" / "ntu60_xsub" / "x3d_shallow_joint.py",
    "slowonly_r50": REPO / "configs" / "ntu60_xsub" / "slowonly_r50_joint.py",
}


def shared_dir() -> Path:
    return Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")).resolve()


def run_one(name: str, heatmap_on: str, steps: int, batch: int, workers: int) -> dict:
    import torch

    from posec3d.data.annotations import load_annotation_file
    from posec3d.engine.config import load_config
    from posec3d.engine.trainer import train

    ann = shared_dir() / "data" / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl"
    n = len(load_annotation_file(ann)["split"]["xsub_val"])
    times = -(-(steps + 1) * batch // n)  # enough repeats for steps + 1 batches (the first is warm-up)
    cfg = load_config(CONFIGS[name], [
        f"data.train.dataset.ann_file={ann}", "data.train.dataset.split=xsub_val", f"data.train.times={times}",
        f"data.videos_per_gpu={batch}", f"data.workers_per_gpu={workers}", "total_epochs=1",
        f"heatmap_on={heatmap_on}", "log_config.interval=1000"])
    with tempfile.TemporaryDirectory() as wd:
        t0 = time.perf_counter()
        result = train(cfg, wd, seed=0, echo=lambda _m: None)
        wall = time.perf_counter() - t0
    epoch = [r for r in result.history if r["mode"] == "epoch"][-1]
    # Steady state: drop the first batch (loader workers starting) from both clocks.
    first_batch_samples = min(batch, epoch["samples"])
    data = epoch["data_time"] - epoch["first_batch_wait"]
    total = data + epoch["compute_time"] * (epoch["samples"] - first_batch_samples) / epoch["samples"]
    return {
        "clips_per_s": round((epoch["samples"] - first_batch_samples) / total, 3),
        "data_wait_fraction": round(data / total, 4),
        "data_wait_fraction_incl_first_batch": round(epoch["data_wait_fraction"], 4),
        "first_batch_wait_s": round(epoch["first_batch_wait"], 2),
        "steps": int(result.iterations), "batch": batch, "clip": "17x48x56x56",
        "wall_s": round(wall, 1), "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="measured training steps per run")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--placements", nargs="+", default=["loader", "batch"], choices=["loader", "batch"])
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = {}
    for name in args.models:
        for placement in args.placements:
            results[f"{name}/{placement}"] = run_one(name, placement, args.steps, args.batch, args.workers)
    print(json.dumps({
        "what": "end-to-end training on CPU (real loop, real NTU skeletons, SPEC §3 train pipeline), "
                f"{args.workers} loader workers; steady state excludes the first batch",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg": [round(x, 2) for x in os.getloadavg()]},
        "target": "data_wait_fraction < 0.10 for slowonly_r50 with 2 loader workers",
        "results": results,
    }, indent=1))


if __name__ == "__main__":
    main()
