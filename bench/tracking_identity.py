"""Benchmark: identity switches of the PoseTracker on the shared clips. Prints one JSON object.

MediaPipe runs once per clip (untracked detections cached in ``--cache``, ~2-3 CPU-minutes the
first time); then the tracker replays them. Per clip:
- ``tracks``: tracks created (the shared clips hold 1 person, 2 in the NTU hugging clips);
- ``switches``: detections given a new track id where a known track's last box overlapped them
  by IoU >= 0.3 (a person who got a new identity);
- ``duplicates``: pairs of detections of one frame with different ids overlapping by IoU >= 0.5
  (the same person in two slots).
``--record FILE`` also writes the detection windows tests/pose/test_tracking.py replays.

    python bench/tracking_identity.py [--cache /tmp/tracking_detections.pkl]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared"))
RECORDED = [("kinetics/ta_chi.mp4", 155, 190), ("kinetics/skateboarding.mp4", 36, 72), ("ntu/demo_skeleton.mp4", 44, 72)]


def detections(cache: Path) -> dict:
    from posec3d.pose.estimators.blazepose import MediaPipePose
    from posec3d.pose.extract import iter_video_poses

    found = pickle.loads(cache.read_bytes()) if cache.is_file() else {}
    videos = SHARED / "data" / "videos"
    for path in sorted(videos.glob("*/*")):
        key = path.relative_to(videos).as_posix()
        if key not in found:
            with MediaPipePose(max_persons=2) as est:
                found[key] = [(k.copy(), s.copy(), b.copy()) for _, _, k, s, b in iter_video_poses(path, est)]
            cache.write_bytes(pickle.dumps(found))
    return found


def measure(frames) -> dict:
    from posec3d.pose.geometry import box_iou
    from posec3d.pose.tracking import PoseTracker

    tracker, last, switches, duplicates = PoseTracker(), {}, 0, 0
    for t, (kp, sc, bx) in enumerate(frames):
        ids = tracker.update(kp, sc, bx)
        iou = box_iou(bx, bx)
        for i, j in enumerate(ids):
            if j not in last and t > 0 and any(box_iou(bx[i:i + 1], b[None])[0, 0] >= 0.3 for b in last.values()):
                switches += 1
        duplicates += sum(1 for a in range(len(ids)) for b in range(a + 1, len(ids))
                          if ids[a] != ids[b] and iou[a, b] >= 0.5)
        last.update({j: bx[i] for i, j in enumerate(ids)})
    return {"frames": len(frames), "tracks": len(tracker.tracks), "switches": switches, "duplicates": duplicates,
            "slots": len(tracker.slots(2))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tracking_detections.pkl"))
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args()
    found = detections(args.cache)
    clips = {k: measure(v) for k, v in found.items()}
    print(json.dumps({"clips": clips, "switches": sum(c["switches"] for c in clips.values()),
                      "duplicates": sum(c["duplicates"] for c in clips.values()),
                      "load_avg_1min": os.getloadavg()[0]}))
    if args.record:
        doc = {"source": "Untracked per-frame MediaPipePose(max_persons=2) detections (posec3d.pose.extract."
                         "iter_video_poses, short side 540) of clips in ../shared/data/videos, recorded by "
                         "bench/tracking_identity.py", "clips": {}}
        for name, lo, hi in RECORDED:
            doc["clips"][name] = {"first_frame": lo, "frames": [
                {"keypoints": np.round(k, 1).tolist(), "scores": np.round(s, 3).tolist(), "boxes": np.round(b, 1).tolist()}
                for k, s, b in found[name][lo:hi]]}
        args.record.write_text(json.dumps(doc, separators=(",", ":")))


if __name__ == "__main__":
    main()
