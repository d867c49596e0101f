"""Model speed on this CPU: forward (batch 1 and 8) and a training step (batch 8) per backbone.

Prints ONE JSON object. Input 17×48×56×56 fp32, ``torch.set_num_threads(2)``. For each of
slowonly / c3d / x3d: the plain eval forward and train step, then the same with the fastest
inference option found (BN folding, channels-last 3D layout, inference_mode; optionally
torch.compile with --compile), GFLOP/s from SPEC §4.7 MACs against a dense fp32 matmul.
The CPU is shared, so the process sleeps rather than spins in OpenMP waits and keeps freed
memory (both reported); ``*_cpu_ms`` = process CPU time / threads, a load-independent view.
Usage: python bench/model.py [--models slowonly,c3d,x3d] [--repeats 3] [--compile]
"""
from __future__ import annotations

import os

# The CPU is shared: sleeping (not spinning) OpenMP workers stop burning the time slices other
# processes need, which at load > 2 changes wall times several-fold. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F

from posec3d.models import build_model, fuse_conv_bn

INPUT = (17, 48, 56, 56)
GMACS_48x56 = {"slowonly": 15.63, "c3d": 16.78, "x3d": 0.57}  # SPEC §4.7, one view
PEER_MS = {"forward_ms_per_clip_b1": 650.7, "forward_ms_per_clip_b8": 955.88, "train_ms_per_clip_b8": 23520.96 / 8}

HEAD = dict(type="I3DHead", num_classes=60, dropout_ratio=0.5, average_clips="prob")
MODELS = {
    "slowonly": dict(type="Recognizer3D", cls_head=dict(HEAD, in_channels=512), backbone=dict(
        type="ResNet3dSlowOnly", depth=50, in_channels=17, base_channels=32, num_stages=3, out_indices=(2,),
        stage_blocks=(4, 6, 3), conv1_stride_s=1, pool1_stride_s=1, inflate=(0, 1, 1), spatial_strides=(2, 2, 2),
        temporal_strides=(1, 1, 2), dilations=(1, 1, 1))),
    "c3d": dict(type="Recognizer3D", cls_head=dict(HEAD, in_channels=256), backbone=dict(
        type="C3D", in_channels=17, base_channels=32, num_stages=3, temporal_downsample=False)),
    "x3d": dict(type="Recognizer3D", cls_head=dict(HEAD, in_channels=216), backbone=dict(
        type="X3D", gamma_d=1, in_channels=17, base_channels=24, num_stages=3, se_ratio=None, use_swish=False,
        stage_blocks=(2, 5, 3), spatial_strides=(2, 2, 2))),
}


def keep_freed_memory() -> bool:
    """glibc: serve every allocation from the heap and never give it back (mallopt), so feature
    maps above the 32 MB mmap threshold stop page-faulting afresh on every forward (~10 %)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2 ** 30))
    except (OSError, AttributeError):
        return False


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def forward_cpu_ms(model, batch: int, channels_last: bool = False, inference_mode: bool = False) -> float:
    """Process CPU time / threads of one forward, per clip (after a warm-up call)."""
    x = torch.rand(batch, *INPUT)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with (torch.inference_mode if inference_mode else torch.no_grad)():
        model(x)
        start = time.process_time()
        model(x)
    return (time.process_time() - start) * 1000 / torch.get_num_threads() / batch


def forward_ms(model, batch: int, repeats: int, channels_last: bool = False, inference_mode: bool = False) -> float:
    x = torch.rand(batch, *INPUT)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    ctx = torch.inference_mode if inference_mode else torch.no_grad

    def run():
        with ctx():
            model(x)
    return median_ms(run, repeats) / batch


def train_ms(model, batch: int, steps: int, channels_last: bool = False) -> float:
    """forward + CE + backward + clip_grad_norm(40) + SGD(momentum) step, per clip."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=3e-4)
    x = torch.rand(batch, *INPUT)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    labels = torch.randint(0, 60, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 40)
        opt.step()
    ms = median_ms(step, steps) / batch
    model.eval()
    return ms


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    ms = median_ms(lambda: torch.mm(a, b), repeats)
    return 2 * n ** 3 / (ms / 1000) / 1e9


def inference_variants(model, compile_too: bool) -> dict:
    """name -> (model, channels_last input?, inference_mode?)"""
    fused = fuse_conv_bn(copy.deepcopy(model))
    variants = {
        "channels_last_3d": (copy.deepcopy(model).to(memory_format=torch.channels_last_3d), True, False),
        "fuse_bn+channels_last_3d+inference_mode": (
            copy.deepcopy(fused).to(memory_format=torch.channels_last_3d), True, True),
        "fuse_bn+inference_mode": (fused, False, True),
    }
    if compile_too:
        variants["torch.compile+fuse_bn+channels_last_3d"] = (
            torch.compile(copy.deepcopy(fused).to(memory_format=torch.channels_last_3d)), True, True)
    return variants


def bench_model(name: str, repeats: int, train_steps: int, compile_too: bool) -> dict:
    torch.manual_seed(0)
    model = build_model(MODELS[name]).eval()
    res = {
        "forward_ms_per_clip_b1": forward_ms(model, 1, repeats),
        "forward_ms_per_clip_b8": forward_ms(model, 8, max(1, repeats - 1)),
        "train_ms_per_clip_b8": train_ms(copy.deepcopy(model), 8, train_steps),
    }
    candidates = {}
    for option, (variant, cl, im) in inference_variants(model, compile_too).items():
        candidates[option] = forward_ms(variant, 1, repeats, cl, im)
    best = min(candidates, key=candidates.get)
    variant, cl, im = inference_variants(model, False).get(best) or inference_variants(model, True)[best]
    res.update(
        best_option=best,
        best_forward_ms_per_clip_b1=candidates[best],
        best_forward_ms_per_clip_b8=forward_ms(variant, 8, max(1, repeats - 1), cl, im),
        forward_cpu_ms_per_clip_b1=forward_cpu_ms(model, 1),
        best_forward_cpu_ms_per_clip_b1=forward_cpu_ms(variant, 1, cl, im),
        candidates_forward_ms_per_clip_b1=candidates,
        best_train_option="channels_last_3d",
        best_train_ms_per_clip_b8=train_ms(copy.deepcopy(model).to(memory_format=torch.channels_last_3d), 8,
                                           train_steps, channels_last=True),
    )
    gflop = 2 * GMACS_48x56[name]
    res["gflops_per_s"] = {
        "forward_b1": gflop / (res["forward_ms_per_clip_b1"] / 1000),
        "best_forward_b1": gflop / (res["best_forward_ms_per_clip_b1"] / 1000),
        "best_forward_b8": gflop / (res["best_forward_ms_per_clip_b8"] / 1000),
    }
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="slowonly,c3d,x3d")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=1, help="timed steps after one warm-up step")
    parser.add_argument("--compile", action="store_true", help="also try torch.compile (slow to compile)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    malloc_tuned = keep_freed_memory()
    load_start = os.getloadavg()
    out = {"input": list(INPUT), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "malloc_keep_freed_memory": malloc_tuned,
           "matmul_gflops_per_s": matmul_gflops(), "peer_slowonly_ms": PEER_MS}
    for name in args.models.split(","):
        out[name] = bench_model(name, args.repeats, args.train_steps, args.compile)
        peak = out["matmul_gflops_per_s"]
        out[name]["roofline_ratio_best_b8"] = out[name]["gflops_per_s"]["best_forward_b8"] / peak
    out["loadavg_start_end"] = [round(load_start[0], 2), round(os.getloadavg()[0], 2)]
    if "slowonly" in out:
        so = out["slowonly"]
        out["slowonly_speedup_vs_peer"] = {
            "forward_b1": PEER_MS["forward_ms_per_clip_b1"] / so["best_forward_ms_per_clip_b1"],
            "forward_b8": PEER_MS["forward_ms_per_clip_b8"] / so["best_forward_ms_per_clip_b8"],
            "train_b8": PEER_MS["train_ms_per_clip_b8"] / min(so["train_ms_per_clip_b8"], so["best_train_ms_per_clip_b8"]),
        }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
