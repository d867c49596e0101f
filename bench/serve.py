"""Benchmark: `posec3d serve` under load. Prints one JSON object.

Starts a real server (`python -m posec3d serve`, bundled model, its default --concurrency 2 unless
given) on a free loopback port and posts a short clip (the first --seconds of the Kinetics
clean-and-jerk clip, short side 240) to ``/api/v1/predict`` from 1 and then 4 concurrent clients:
requests per second and p50 / p95 latency per level. Then the server's RSS (VmRSS of the server
process) after a warm-up (two requests per worker thread), after the two load levels, and again
after --rss-requests more from 4 clients: ``rss_growth`` is the last over the after-levels figure,
minus one (the issue asks for at most 0.10). The 1-minute load average is recorded because the
machine's CPUs may be shared: absolute figures move with it.

    python bench/serve.py [--seconds 1] [--requests 8] [--rss-requests 50] [--concurrency 2]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")) / "data"
CLIP = SHARED / "videos/kinetics/clean_and_jerk.mp4"


def short_clip(dst: Path, seconds: float) -> Path:
    from posec3d.render import VideoWriter
    from posec3d.pose.video import VideoReader

    with VideoReader(CLIP, short_side=240) as reader:
        frames = [rgb for _, (_, rgb) in zip(range(round(seconds * reader.fps)), reader)]
        with VideoWriter(dst, fps=reader.fps, width=reader.out_width, height=reader.out_height) as writer:
            for rgb in frames:
                writer.write(rgb)
    return dst


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of the posted clip")
    ap.add_argument("--requests", type=int, default=8, help="requests per concurrency level")
    ap.add_argument("--rss-requests", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = short_clip(Path(tmp) / "clip.mp4", args.seconds)
        body = clip.read_bytes()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), TMPDIR=tmp)
        server = subprocess.Popen([sys.executable, "-m", "posec3d", "serve", "--port", str(port),
                                   "--concurrency", str(args.concurrency)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            started = time.perf_counter()
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    if server.poll() is not None or time.perf_counter() - started > 300:
                        raise SystemExit("posec3d serve did not start")
                    time.sleep(0.5)
            startup_s = time.perf_counter() - started

            def predict(_=None) -> float:
                t = time.perf_counter()
                r = httpx.post(f"{url}/api/v1/predict", files={"video": ("clip.mp4", body, "video/mp4")},
                               timeout=600)
                r.raise_for_status()
                return time.perf_counter() - t

            # Warm-up, on every worker thread: first-request costs (estimator load, allocator growth).
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(predict, range(2 * args.concurrency)))
            rss_before = rss_mb(server.pid)
            levels = {}
            for clients in (1, 4):
                t = time.perf_counter()
                with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                    latencies = list(pool.map(predict, range(args.requests)))
                wall = time.perf_counter() - t
                levels[f"clients_{clients}"] = {
                    "requests": args.requests, "requests_per_s": round(args.requests / wall, 3),
                    "p50_s": round(float(np.percentile(latencies, 50)), 3),
                    "p95_s": round(float(np.percentile(latencies, 95)), 3)}
            rss_mid = rss_mb(server.pid)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(predict, range(args.rss_requests)))
            rss_after = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(json.dumps({
        "clip_seconds": args.seconds, "clip_bytes": len(body), "server_concurrency": args.concurrency,
        "startup_s": round(startup_s, 2), **levels,
        "rss_mb_after_warmup": round(rss_before, 1), "rss_mb_after_levels": round(rss_mid, 1),
        "rss_requests": args.rss_requests, "rss_mb_after_rss_requests": round(rss_after, 1),
        "rss_growth": round(rss_after / rss_mid - 1, 4),
        "loadavg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
