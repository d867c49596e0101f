"""Benchmark: `posec3d live` on real clips. Prints one JSON object.

Cases: one person (Kinetics clean-and-jerk, 340x256, 30 fps, 300 frames) and two persons at 1080p
(NTU hugging clip ntu_sample.avi, 1920x1080, 30 fps, 72 frames). Each round runs every case twice,
alternating: `--no-realtime` (every frame, as fast as it goes: `fps`, and `cpu_ms_per_frame`,
all threads' CPU time per frame) and paced at the clip's own rate like a camera (`dropped_frac`,
`frame_latency_ms_p50/p95`: frame decoded -> frame drawn, `label_latency_ms_p95`: the window's
last frame decoded -> its label out). The recognizer and the default windows (3 model clips, a
new one every clip) are those of `posec3d live`; the annotated MP4 is written too unless
`--no-out`. Medians over rounds. The 1-minute load average is recorded before and after: on a
shared machine wall-clock figures depend on the other users' load, while 1000 / cpu_ms_per_frame
x (cores used, up to 2) bounds what an idle machine would reach.

    python bench/live.py [--rounds 1] [--no-out] [--pose-workers N]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")) / "data"
CASES = {"one_person_340x256": SHARED / "videos/kinetics/clean_and_jerk.mp4",
         "two_persons_1080p": SHARED / "videos/ntu/ntu_sample.avi"}
TARGETS = {"one_person_340x256": {"dropped_frac_max": 0.05},
           "two_persons_1080p": {"fps_min": 20.0},
           "all": {"label_latency_ms_p95_max": 500.0, "frame_latency_ms_p95_max": 150.0}}


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def run(video: Path, recognizer, realtime: bool, out: Path | None, pose_workers: int | None) -> dict:
    from posec3d.stream.live import run_live

    cpu = cpu_seconds()
    summary = run_live(video, recognizer, out=out, realtime=realtime, pose_workers=pose_workers)
    d = summary.to_dict()
    d["cpu_ms_per_frame"] = round((cpu_seconds() - cpu) * 1000 / max(1, summary.processed), 1)
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-out", action="store_true", help="do not write the annotated MP4")
    parser.add_argument("--pose-workers", type=int, default=None,
                        help="as `posec3d live --pose-workers` (default: the command's own default)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    from posec3d.stream import load_recognizer

    torch.set_num_threads(1)  # as `posec3d live` does
    recognizer = load_recognizer()
    load_before = os.getloadavg()
    runs: dict[str, dict[str, list[dict]]] = {name: {"no_realtime": [], "paced": []} for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, video in CASES.items():
                out = None if args.no_out else Path(tmp) / f"{name}.mp4"
                runs[name]["no_realtime"].append(run(video, recognizer, False, out, args.pose_workers))
                runs[name]["paced"].append(run(video, recognizer, True, out, args.pose_workers))
    load_after = os.getloadavg()

    def med(items, key):
        values = [r[key] for r in items if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    result: dict = {"rounds": args.rounds, "writes_mp4": not args.no_out,
                    "pose_workers": runs[next(iter(CASES))]["no_realtime"][0]["pose_workers"]}
    for name, r in runs.items():
        fast, paced = r["no_realtime"], r["paced"]
        result[name] = {
            "frames": fast[0]["frames"], "fps": med(fast, "fps"), "cpu_ms_per_frame": med(fast, "cpu_ms_per_frame"),
            "dropped_frac": med(paced, "dropped_frac"), "paced_fps": med(paced, "fps"),
            "frame_latency_ms_p50": med(paced, "frame_latency_ms_p50"),
            "frame_latency_ms_p95": med(paced, "frame_latency_ms_p95"),
            "label_latency_ms_p95": med(paced, "label_latency_ms_p95"),
            "windows": fast[0]["windows"], "windows_skipped_paced": med(paced, "windows_skipped"),
        }
    one, two = result["one_person_340x256"], result["two_persons_1080p"]
    lat = TARGETS["all"]
    result["targets"] = {
        "one_person_keeps_up (dropped <= 5%)": one["dropped_frac"] <= TARGETS["one_person_340x256"]["dropped_frac_max"],
        "two_persons_1080p_fps >= 20": two["fps"] >= TARGETS["two_persons_1080p"]["fps_min"],
        "label_latency_p95 <= 500 ms": all((c["label_latency_ms_p95"] or 1e9) <= lat["label_latency_ms_p95_max"]
                                           for c in (one, two)),
        "frame_latency_p95 <= 150 ms": all((c["frame_latency_ms_p95"] or 1e9) <= lat["frame_latency_ms_p95_max"]
                                           for c in (one, two)),
    }
    result["loadavg_1min_before"] = round(load_before[0], 2)
    result["loadavg_1min_after"] = round(load_after[0], 2)
    result["cpus"] = os.cpu_count()
    result["machine"] = platform.machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
