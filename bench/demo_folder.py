"""Benchmark: `posec3d demo-folder --workers 2` against `--workers 1` on the same folder. One JSON object.

Each run is the real command in a fresh process (start-up, model loading, pose extraction, the
recognizer, the annotated videos unless --no-video, the reports) writing to a fresh output folder,
so no cache is reused. The worker counts alternate in pairs (1, 2, 2, 1, 1, 2, ...), so that
neither always runs first on a machine whose load drifts. Prints medians of the wall times, their
ratio (one worker / N workers: > 1 means N workers are faster), the CPU time of each run (the
command and its worker processes), whether the predictions (top-k labels and scores of
predictions.csv) are the same for every run, and the load average through the run.

    python bench/demo_folder.py [VIDEO_DIR] [--pairs 2] [--workers 2] [--no-video] [--max-frames N]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")).resolve()


def children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def predictions(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keep = [k for k in rows[0] if k.startswith("top") or k in ("path", "error")] if rows else []
    return sorted(({k: r[k] for k in keep} for r in rows), key=lambda r: r["path"])


def run(video_dir: Path, out: Path, workers: int, extra: list[str]) -> dict:
    argv = [sys.executable, "-m", "posec3d", "demo-folder", str(video_dir), "-o", str(out),
            "--workers", str(workers), *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    if done.returncode != 0:
        sys.exit(f"bench/demo_folder.py: {' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return {"workers": workers, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "load": round(os.getloadavg()[0], 2), "predictions": predictions(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video_dir", nargs="?", default=str(SHARED / "data" / "videos"))
    parser.add_argument("--pairs", type=int, default=2, help="(1 worker, N workers) pairs, alternating order")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-video", action="store_true", help="pass --no-video to both (reports only)")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()
    extra = (["--no-video"] if args.no_video else []) + (
        ["--max-frames", str(args.max_frames)] if args.max_frames else [])
    video_dir = Path(args.video_dir)
    tmp = Path(tempfile.mkdtemp(prefix="demo_folder_bench_"))
    load = [os.getloadavg()]
    runs: list[dict] = []
    try:
        for p in range(args.pairs):
            order = [1, args.workers] if p % 2 == 0 else [args.workers, 1]
            for workers in order:
                out = tmp / f"run{len(runs)}_w{workers}"
                print(f"[demo_folder.py {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] pair {p + 1}: "
                      f"--workers {workers}", file=sys.stderr, flush=True)
                runs.append(run(video_dir, out, workers, extra))
                shutil.rmtree(out, ignore_errors=True)
                load.append(os.getloadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    one = [r for r in runs if r["workers"] == 1]
    many = [r for r in runs if r["workers"] == args.workers]
    reference = runs[0]["predictions"]
    out = {"what": __doc__.splitlines()[0], "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "command": f"posec3d demo-folder {video_dir} -o OUT --workers N {' '.join(extra)}".strip(),
           "videos": len(reference),
           "seconds_1_worker": statistics.median(r["seconds"] for r in one),
           f"seconds_{args.workers}_workers": statistics.median(r["seconds"] for r in many),
           "cpu_seconds_1_worker": statistics.median(r["cpu_seconds"] for r in one),
           f"cpu_seconds_{args.workers}_workers": statistics.median(r["cpu_seconds"] for r in many),
           "speedup": round(statistics.median(r["seconds"] for r in one)
                            / statistics.median(r["seconds"] for r in many), 3),
           "target": 1.8,
           "same_predictions": all(r["predictions"] == reference for r in runs),
           "runs": [{k: v for k, v in r.items() if k != "predictions"} for r in runs],
           "loadavg_1min_start_end_max": [round(load[0][0], 2), round(load[-1][0], 2), round(max(x[0] for x in load), 2)]}
    out["met"] = out["speedup"] >= out["target"] and out["same_predictions"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
