"""Heatmap speed: numpy path, a plain reference loop, the batched torch path, the test pipeline.

Prints one JSON object. ``torch_batch32_*`` is ``batch_heatmaps`` as the engine calls it on CPU
(backend 'auto' = the numpy drawing per sample into one batch tensor); ``torch_scatter_*`` forces
the torch scatter kernel that GPUs use. One core: torch.set_num_threads(1) and one BLAS/OpenMP thread (set before
numpy loads). Each figure is the median of >= 5 repeats. Input: the golden NTU-like sample p2_f100
(2 persons, 100 frames, 1080x1920) through the peer's workload pipeline (test-mode sampling of 48
frames, PoseCompact, Resize(-1,64), Resize((56,56), keep_ratio=False)); the test pipeline is the
NTU60 10-clip x flip one at 64x64.

    python bench/heatmap.py [--repeats 5] [--shared ../shared]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from posec3d.data import skeletons as S  # noqa: E402
from posec3d.data.heatmap import joint_heatmaps, limb_heatmaps  # noqa: E402
from posec3d.data.heatmap_torch import batch_heatmaps  # noqa: E402
from posec3d.data.pipeline import Compose  # noqa: E402

LEFT, RIGHT = list(S.COCO17_LEFT_KP), list(S.COCO17_RIGHT_KP)


def reference_joints(kp, score, h, w, sigma=0.6, eps=1e-4):
    """mmaction2-style loop: per frame, per joint, per person, one window patch (float32)."""
    m, t, v = kp.shape[:3]
    out = np.zeros((t, v, h, w), np.float32)
    for i in range(t):
        for j in range(v):
            for p in range(m):
                s = score[p, i, j]
                if s < eps:
                    continue
                mx, my = kp[p, i, j]
                # Window bounds in float64, as mmaction2 computed them under numpy 1.x.
                x0, x1 = max(int(float(mx) - 3 * sigma), 0), min(int(float(mx) + 3 * sigma) + 1, w)
                y0, y1 = max(int(float(my) - 3 * sigma), 0), min(int(float(my) + 3 * sigma) + 1, h)
                if x0 >= x1 or y0 >= y1:
                    continue
                x = np.arange(x0, x1, dtype=np.float32)
                y = np.arange(y0, y1, dtype=np.float32)[:, None]
                patch = np.exp(-((x - mx) ** 2 + (y - my) ** 2) / 2 / sigma ** 2) * s
                out[i, j, y0:y1, x0:x1] = np.maximum(out[i, j, y0:y1, x0:x1], patch)
    return out


def reference_limbs(kp, score, limbs, h, w, sigma=0.6, eps=1e-4):
    """mmaction2-style loop over frames, limbs and persons with a clamped projection per window."""
    m, t, _ = kp.shape[:3]
    out = np.zeros((t, len(limbs), h, w), np.float32)
    for i in range(t):
        for c, (ia, ib) in enumerate(limbs):
            for p in range(m):
                a, b = kp[p, i, ia], kp[p, i, ib]
                val = min(score[p, i, ia], score[p, i, ib])
                if val < eps:
                    continue
                ax, ay, bx, by = (float(c) for c in (a[0], a[1], b[0], b[1]))
                x0 = max(int(min(ax, bx) - 3 * sigma), 0)
                x1 = min(int(max(ax, bx) + 3 * sigma) + 1, w)
                y0 = max(int(min(ay, by) - 3 * sigma), 0)
                y1 = min(int(max(ay, by) + 3 * sigma) + 1, h)
                if x0 >= x1 or y0 >= y1:
                    continue
                x = np.arange(x0, x1, dtype=np.float32)
                y = np.arange(y0, y1, dtype=np.float32)[:, None]
                d2a = (x - a[0]) ** 2 + (y - a[1]) ** 2
                d2b = (x - b[0]) ** 2 + (y - b[1]) ** 2
                d2ab = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
                if d2ab < 1:  # too short: a joint map at a (its own window), peak s_a
                    x0, x1 = max(int(ax - 3 * sigma), 0), min(int(ax + 3 * sigma) + 1, w)
                    y0, y1 = max(int(ay - 3 * sigma), 0), min(int(ay + 3 * sigma) + 1, h)
                    if x0 >= x1 or y0 >= y1:
                        continue
                    x = np.arange(x0, x1, dtype=np.float32)
                    y = np.arange(y0, y1, dtype=np.float32)[:, None]
                    patch = np.exp(-((x - a[0]) ** 2 + (y - a[1]) ** 2) / 2 / sigma ** 2) * score[p, i, ia]
                else:
                    tt = (d2a - d2b + d2ab) / 2 / d2ab
                    px, py = a[0] + tt * (b[0] - a[0]), a[1] + tt * (b[1] - a[1])
                    d2 = np.where(tt <= 0, d2a, np.where(tt >= 1, d2b, (x - px) ** 2 + (y - py) ** 2))
                    patch = np.exp(-d2 / 2 / sigma ** 2) * val
                out[i, c, y0:y1, x0:x1] = np.maximum(out[i, c, y0:y1, x0:x1], patch)
    return out


CPU_MS: dict = {}  # process CPU time per call: what the figures would be on an idle core


def median_ms(fn, repeats: int, inner: int = 1, name: str | None = None) -> float:
    """Median wall-clock ms per call over ``repeats`` (each the mean of ``inner`` calls)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(inner):
            fn()
        wall.append((time.perf_counter() - t0) / inner * 1000)
        cpu.append((time.process_time() - c0) / inner * 1000)
    if name:
        CPU_MS[name] = round(statistics.median(cpu), 3)
    return statistics.median(wall)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    repeats = max(5, args.repeats)

    with np.load(Path(args.shared) / "golden" / "transforms" / "pose_p2_f100.npz") as z:
        raw = dict(keypoint=z["input/keypoint"], keypoint_score=z["input/keypoint_score"],
                   img_shape=tuple(int(v) for v in z["input/img_shape"]),
                   total_frames=int(z["input/total_frames"]), label=0)

    def sample() -> dict:
        return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in raw.items()}

    head = [dict(type="UniformSampleFrames", clip_len=48, num_clips=1, test_mode=True),
            dict(type="PoseDecode"), dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True)]
    s56 = Compose(head + [dict(type="Resize", scale=(-1, 64)),
                          dict(type="Resize", scale=(56, 56), keep_ratio=False)])(sample())
    kp, score = s56["keypoint"].astype(np.float32), s56["keypoint_score"]
    h, w = s56["img_shape"]
    limbs = [tuple(p) for p in S.CONFIG_LIMBS]

    result: dict = {}
    result["joint_ms"] = median_ms(name="joint_ms", fn=lambda: joint_heatmaps(kp, score, h, w), repeats=repeats, inner=20)
    result["limb_ms"] = median_ms(name="limb_ms", fn=lambda: limb_heatmaps(kp, score, limbs, h, w), repeats=repeats, inner=10)
    result["ref_joint_ms"] = median_ms(name="ref_joint_ms", fn=lambda: reference_joints(kp, score, h, w), repeats=repeats)
    result["ref_limb_ms"] = median_ms(name="ref_limb_ms", fn=lambda: reference_limbs(kp, score, limbs, h, w), repeats=repeats)

    bkp = torch.from_numpy(np.repeat(kp[None], 32, axis=0))
    bsc = torch.from_numpy(np.repeat(score[None], 32, axis=0))
    joint_b = median_ms(name="torch_batch32_joint_ms", fn=lambda: batch_heatmaps(bkp, bsc, h, w, views=(1, 48)),
                        repeats=repeats)
    limb_b = median_ms(name="torch_batch32_limb_ms",
                       fn=lambda: batch_heatmaps(bkp, bsc, h, w, limbs=limbs, views=(1, 48)), repeats=repeats)
    result["torch_batch32_joint_samples_per_s"] = 32 / joint_b * 1000
    result["torch_batch32_limb_samples_per_s"] = 32 / limb_b * 1000
    # The same batches through the pure torch scatter kernel (what runs on a GPU).
    joint_t = median_ms(name="torch_scatter_batch32_joint_ms", repeats=repeats,
                        fn=lambda: batch_heatmaps(bkp, bsc, h, w, views=(1, 48), backend="torch"))
    limb_t = median_ms(name="torch_scatter_batch32_limb_ms", repeats=repeats,
                       fn=lambda: batch_heatmaps(bkp, bsc, h, w, limbs=limbs, views=(1, 48), backend="torch"))
    result["torch_scatter_batch32_joint_samples_per_s"] = 32 / joint_t * 1000
    result["torch_scatter_batch32_limb_samples_per_s"] = 32 / limb_t * 1000

    test = Compose([
        dict(type="UniformSampleFrames", clip_len=48, num_clips=10, test_mode=True),
        dict(type="PoseDecode"), dict(type="PoseCompact", hw_ratio=1.0, allow_imgpad=True),
        dict(type="Resize", scale=(-1, 64)), dict(type="CenterCrop", crop_size=64),
        dict(type="GeneratePoseTarget", sigma=0.6, use_score=True, with_kp=True, with_limb=False,
             double=True, left_kp=LEFT, right_kp=RIGHT),
        dict(type="FormatShape", input_format="NCTHW_Heatmap"), dict(type="PackActionInputs"),
    ])
    shape = tuple(test(sample())["imgs"].shape)
    result["test_pipeline_joint_ms"] = median_ms(name="test_pipeline_joint_ms", fn=lambda: test(sample()), repeats=repeats, inner=2)
    result["test_pipeline_output_shape"] = list(shape)

    # Sanity: the fast paths agree with the reference loops on this input.
    result["max_abs_diff_joint_vs_ref"] = float(np.abs(joint_heatmaps(kp, score, h, w) - reference_joints(kp, score, h, w)).max())
    result["max_abs_diff_limb_vs_ref"] = float(np.abs(limb_heatmaps(kp, score, limbs, h, w) - reference_limbs(kp, score, limbs, h, w)).max())
    result["cpu_ms"] = CPU_MS
    result["settings"] = dict(torch_threads=torch.get_num_threads(), repeats=repeats, statistic="median",
                              sample="golden p2_f100: 2 persons x 48 frames x 17 joints, 56x56",
                              cpu_count=os.cpu_count(), loadavg=[round(x, 2) for x in os.getloadavg()])
    for k, v in list(result.items()):
        if isinstance(v, float) and math.isfinite(v) and not k.startswith("max_abs"):
            result[k] = round(v, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
