"""Benchmark: end-to-end pose extraction speed (decode, detect, pose, track). Prints one JSON object.

For 1 and 2 workers, `build_dataset` (fresh cache) runs over two copies of the NTU drinking clip
(1920x1080, 103 frames) and, separately, two copies of the Kinetics clean-and-jerk clip (340x256,
300 frames); frames per second = frames / wall time, process start and model loading included.
`*_steady` is one in-process `extract_video` call with the model already loaded, with its CPU
time per frame: on a shared machine wall-clock figures depend on the other users' load, while
1000 / cpu_ms_per_frame is what one otherwise idle core would reach.
`ntu_fps` / `kinetics_fps` / `build_dataset_videos_per_min` are the best worker count's figures.
The machine's 1-minute load average is recorded because its CPUs may be shared.

    python bench/extract.py [--workers 1 2]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")) / "data"
NTU = SHARED / "videos/ntu/S001C001P001R001A001_rgb.avi"
KINETICS = SHARED / "videos/kinetics/clean_and_jerk.mp4"
REFERENCE = SHARED / "skeleton/ntu60_mediapipe_coco17_samples.pkl"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (all threads)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_build(videos: list[Path], workers: int, folder: Path) -> dict:
    from posec3d.pose.dataset_builder import build_dataset

    folder.mkdir(parents=True)
    lines = []
    for i, video in enumerate(videos):
        copy = folder / f"{i}_{video.name}"  # distinct files, so each copy is really extracted
        shutil.copyfile(video, copy)
        lines.append(f"{copy.name}\t0")
    (folder / "list.txt").write_text("\n".join(lines) + "\n")
    start, cpu = time.perf_counter(), cpu_seconds()
    report = build_dataset([folder / "list.txt"], folder / "out.pkl", workers=workers,
                           cache_dir=folder / "cache")
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    assert report.extracted == len(videos) and not report.failures, report.failures
    return {"videos": len(videos), "frames": report.frames, "seconds": round(wall, 2),
            "fps": round(report.frames / wall, 1), "videos_per_min": round(60 * len(videos) / wall, 1),
            "cpu_ms_per_frame": round(1000 * cpu / report.frames, 1)}


def steady(video: Path) -> tuple[dict, dict]:
    from posec3d.pose.estimators import MediaPipePose
    from posec3d.pose.extract import extract_video

    with MediaPipePose(max_persons=2) as est:
        extract_video(video, est, max_frames=3)  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        ann = extract_video(video, est)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = ann["total_frames"]
    # CPU time per frame (all threads) bounds the speed on an otherwise idle machine from below:
    # one core doing all of it would reach 1000 / cpu_ms frames/s.
    return {"fps": round(frames / wall, 1), "cpu_ms_per_frame": round(1000 * cpu / frames, 1),
            "idle_machine_fps_lower_bound": round(frames / cpu, 1)}, ann


def reference_error(ann: dict) -> dict:
    """Pixel distance to the shared full-resolution extraction of the same clip (same model)."""
    with open(REFERENCE, "rb") as f:
        ref = {a["frame_dir"]: a for a in pickle.load(f)["annotations"]}["S001C001P001R001A001"]
    both = (ann["keypoint_score"][0] > 0.5) & (ref["keypoint_score"][0] > 0.5)
    dist = np.linalg.norm(ann["keypoint"][0] - ref["keypoint"][0], axis=-1)[both]
    body = np.median(np.ptp(ref["keypoint"][0][..., 1], axis=-1))
    return {"median_px": round(float(np.median(dist)), 2), "p90_px": round(float(np.percentile(dist, 90)), 2),
            "body_height_px": round(float(body), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from posec3d.pose.extract import DEFAULT_SHORT_SIDE

    load_before = os.getloadavg()[0]
    ntu_steady, ntu_ann = steady(NTU)
    kin_steady, _ = steady(KINETICS)
    per_workers = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            ntu = timed_build([NTU, NTU], workers, Path(tmp) / f"ntu{workers}")
            kin = timed_build([KINETICS, KINETICS], workers, Path(tmp) / f"kin{workers}")
            per_workers[str(workers)] = {
                "ntu": ntu, "kinetics": kin,
                "videos_per_min": round(60 * 4 / (ntu["seconds"] + kin["seconds"]), 1)}
    best = lambda key: max(v[key]["fps"] for v in per_workers.values())  # noqa: E731
    print(json.dumps({
        "ntu_fps": best("ntu"),
        "kinetics_fps": best("kinetics"),
        "build_dataset_videos_per_min": max(v["videos_per_min"] for v in per_workers.values()),
        "ntu_steady": ntu_steady,
        "kinetics_steady": kin_steady,
        "workers": per_workers,
        "ntu_keypoint_error_vs_full_resolution": reference_error(ntu_ann),
        "short_side": DEFAULT_SHORT_SIDE,
        "model": "MediaPipe PoseLandmarker full (bundled), max_persons=2, second_pass=auto",
        "cpus": os.cpu_count(),
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
