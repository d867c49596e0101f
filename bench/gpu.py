"""GPU checks and speeds (called by bench/gpu.sh, which adds training and DDP): prints ONE JSON object.

- heatmaps: the CUDA batch heatmaps (torch scatter) against the CPU ones (numpy per sample), joints and
  limbs, 10 clips x flip, real NTU skeletons: max |difference| must be <= 1e-5;
- amp: one SlowOnly-R50 training step (batch 8, 17x48x56x56), fp32 / fp16 autocast + GradScaler / bf16
  autocast, each plain and channels-last 3D: ms per step and clips/s;
- ddp: a one-process DDP (nccl) smoke run of the engine's training step, weights = without DDP;
- inference: the test forward (20 views = 10 clips x flip, 64x64) plain vs the tester's fast path
  (engine.speedups: folded BN, channels-last 3D, inference mode), fp32 and fp16 autocast: clips/s, and
  the fast path's scores against the plain ones.

    python bench/gpu.py [--device cuda] [--quick]   (--device cpu --quick only checks that the code runs)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from posec3d.data import skeletons as S  # noqa: E402
from posec3d.data.annotations import load_annotation_file  # noqa: E402
from posec3d.data.heatmap import flip_permutation  # noqa: E402
from posec3d.data.heatmap_torch import batch_heatmaps  # noqa: E402
from posec3d.engine.speedups import EvalSpeedups, prepare_for_testing  # noqa: E402
from posec3d.models import build_model  # noqa: E402

SLOWONLY = dict(type="Recognizer3D", cls_head=dict(type="I3DHead", in_channels=512, num_classes=60, dropout_ratio=0.5,
                                                   average_clips="prob"),
                backbone=dict(type="ResNet3dSlowOnly", depth=50, in_channels=17, base_channels=32, num_stages=3,
                              out_indices=(2,), stage_blocks=(4, 6, 3), conv1_stride_s=1, pool1_stride_s=1,
                              inflate=(0, 1, 1), spatial_strides=(2, 2, 2), temporal_strides=(1, 1, 2),
                              dilations=(1, 1, 1)))


def shared_dir() -> Path:
    return Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")).resolve()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` after warm-up (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heatmap_check(device: torch.device, batch: int) -> dict:
    """Real NTU skeletons, 48-frame windows of 10 clips x flip at 64x64, CUDA vs CPU."""
    anns = load_annotation_file(shared_dir() / "data" / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl")["annotations"]
    rng = np.random.default_rng(0)
    kps, scores = [], []
    for i in range(batch):
        a = anns[i % len(anns)]
        kp = a["keypoint"][:, :480].astype(np.float32)  # (M, T, 17, 2) pixels
        t = kp.shape[1]
        idx = np.sort(rng.integers(0, t, 480))  # 10 clips x 48 frames
        lo, hi = np.nanmin(kp, axis=(0, 1, 2)), np.nanmax(kp, axis=(0, 1, 2))
        kp = (kp[:, idx] - lo) / np.maximum(hi - lo, 1) * 63  # into a 64x64 frame
        kps.append(np.pad(kp, ((0, 2 - kp.shape[0]), (0, 0), (0, 0), (0, 0))))
        sc = a["keypoint_score"][:, idx].astype(np.float32)
        scores.append(np.pad(sc, ((0, 2 - sc.shape[0]), (0, 0), (0, 0))))
    kp, sc = torch.from_numpy(np.stack(kps)), torch.from_numpy(np.stack(scores))
    out = {}
    for kind, limbs, flip in (
            ("joints", None, flip_permutation(17, S.COCO17_LEFT_KP, S.COCO17_RIGHT_KP)),
            ("limbs", S.CONFIG_LIMBS, flip_permutation(len(S.CONFIG_LIMBS), S.CONFIG_LEFT_LIMB, S.CONFIG_RIGHT_LIMB))):
        kw = dict(limbs=limbs, views=(10, 48), flip_perm=flip)
        cpu = batch_heatmaps(kp, sc, 64, 64, backend="numpy", **kw)
        dev = batch_heatmaps(kp.to(device), sc.to(device), 64, 64, backend="torch", **kw)
        diff = float((dev.cpu() - cpu).abs().max())
        seconds = timed(lambda: batch_heatmaps(kp.to(device), sc.to(device), 64, 64, backend="torch", **kw), device, 5)
        cpu_seconds = timed(lambda: batch_heatmaps(kp, sc, 64, 64, backend="numpy", **kw), torch.device("cpu"), 3, 1)
        out[kind] = {"max_abs_diff": diff, "ok": diff <= 1e-5, "shape": list(dev.shape),
                     "device_samples_per_s": round(batch / seconds, 1), "cpu_samples_per_s": round(batch / cpu_seconds, 1)}
    return out


def amp_steps(device: torch.device, batch: int, repeats: int, clip=(48, 56, 56)) -> dict:
    x = torch.rand(batch, 1, 17, *clip, device=device)
    y = torch.randint(0, 60, (batch,), device=device)
    out = {}
    for layout in ("default", "channels_last"):
        for precision in ("fp32", "fp16", "bf16"):
            if precision == "fp16" and device.type != "cuda":
                continue
            torch.manual_seed(0)
            model = build_model(SLOWONLY).to(device).train()
            if layout == "channels_last":
                model.to(memory_format=torch.channels_last_3d)
                model.channels_last = True
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
            scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
            dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
            losses = []

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = model.forward_train(x, y)["loss_cls"]
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 40)
                (scaler.step(opt), scaler.update()) if scaler is not None else opt.step()
                losses.append(float(loss))
            seconds = timed(step, device, repeats)
            out[f"{precision}/{layout}"] = {"ms_per_step": round(seconds * 1000, 1),
                                            "clips_per_s": round(batch / seconds, 2),
                                            "finite": bool(np.isfinite(losses).all())}
            del model, opt
    base = out["fp32/default"]["ms_per_step"]
    for v in out.values():
        v["speedup_vs_fp32_default"] = round(base / v["ms_per_step"], 2)
    return out


def inference(device: torch.device, samples: int, repeats: int, views: int = 20, clip=(48, 64, 64)) -> dict:
    torch.manual_seed(0)
    plain = build_model(SLOWONLY).to(device).eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding has something to fold
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    fast = prepare_for_testing(copy.deepcopy(plain), EvalSpeedups())
    x = torch.rand(samples, views, 17, *clip, device=device)
    out = {}
    with torch.no_grad():
        ref = plain.forward_test(x)
    with torch.inference_mode():
        got = fast.forward_test(x)
    out["fast_vs_plain_max_abs_diff"] = float((ref - got).abs().max())
    for name, model, ctx, dtype in (("plain_fp32", plain, torch.no_grad, None), ("fast_fp32", fast, torch.inference_mode, None),
                                    ("fast_fp16", fast, torch.inference_mode, torch.float16),
                                    ("fast_bf16", fast, torch.inference_mode, torch.bfloat16)):
        if dtype is torch.float16 and device.type != "cuda":
            continue

        def run():
            with ctx(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                model.forward_test(x)
        seconds = timed(run, device, repeats, warmup=1)
        out[name] = {"clips_per_s": round(samples * views / seconds, 1), "videos_per_s": round(samples / seconds, 2)}
    return out


def ddp_smoke(device: torch.device, steps: int) -> dict:
    """One-process DDP over the device's backend (nccl on CUDA, gloo on CPU): the training step of
    the engine (TrainStep, as `posec3d train` wraps it) must give the weights of the same steps
    without DDP (one rank: the all-reduce averages one gradient)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from posec3d.engine.trainer import TrainStep

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{29500 + os.getpid() % 1000}", rank=0, world_size=1)
    try:
        small = copy.deepcopy(SLOWONLY)
        small["backbone"].update(stage_blocks=(1, 1, 1))
        small["cls_head"]["dropout_ratio"] = 0.0
        torch.manual_seed(0)
        x = torch.rand(2, 1, 17, 16, 32, 32, device=device)
        y = torch.randint(0, 60, (2,), device=device)
        weights = []
        for wrap in (False, True):
            torch.manual_seed(0)
            model = build_model(small).to(device).train()
            step = TrainStep(model)
            if wrap:
                step = DistributedDataParallel(step, device_ids=[device.index or 0] if device.type == "cuda" else None)
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                step(x, y)["loss_cls"].backward()
                opt.step()
            weights.append([p.detach().clone() for p in model.parameters()])
        diff = max(float((a - b).abs().max()) for a, b in zip(*weights))
        return {"backend": dist.get_backend(), "world_size": dist.get_world_size(), "steps": steps,
                "max_abs_weight_diff_vs_no_ddp": diff, "ok": diff <= 1e-5}
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: only checks that the code runs")
    parser.add_argument("--parts", default="heatmaps,amp,inference,ddp")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: CUDA is not available (torch " + torch.__version__ + "); this benchmark needs a GPU")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    q = args.quick
    out = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda, "quick": q}
    parts = args.parts.split(",")
    if "heatmaps" in parts:
        out["heatmaps"] = heatmap_check(device, 1 if q else 32)
    tiny = (8, 32, 32)  # --quick: only checks that the code runs
    if "amp" in parts:
        out["amp_train_step"] = {"batch": 2 if q else 8, **(amp_steps(device, 2, 1, tiny) if q else amp_steps(device, 8, 5))}
    if "inference" in parts:
        out["inference_10clips_flip"] = inference(device, 1, 1, 4, tiny) if q else inference(device, 4, 5)
    if "ddp" in parts:
        out["ddp_one_process"] = ddp_smoke(device, 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
