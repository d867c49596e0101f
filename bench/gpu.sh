#!/usr/bin/env bash
# One GPU benchmark run, under 8 minutes; prints ONE JSON object on stdout (progress on stderr).
#   1. bench/gpu.py: CUDA batch heatmaps = the CPU ones (<= 1e-5), joints and limbs; SlowOnly AMP
#      fp32 / fp16 / bf16 training steps, default layout vs channels-last 3D; inference clips/s,
#      plain vs the tester's fast path (and the fast path's scores against the plain ones);
#   2. bench/train.py: SlowOnly-R50 training clips/s through the real loop (engine.trainer.train),
#      heatmaps drawn in the loader (numpy, per sample) vs on the GPU (heatmap_on='batch');
#   bench/gpu.py also runs the DDP smoke run: one process, nccl, the engine's training step.
# Usage: bash bench/gpu.sh [out.json]      (from the repo root; needs CUDA, fails clearly without it)
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=${1:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/posec3d_gpu_bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)

if ! $PY -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA device (torch.cuda.is_available() is False); run it on a machine with an NVIDIA GPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$WORK/nvidia_smi.txt" 2>&1 || true

step() {  # step NAME SECONDS CMD... : run with a time limit, keep stdout as NAME.json, note the status
    local name=$1 limit=$2; shift 2
    echo "[gpu.sh $(date +%H:%M:%S)] $name (limit ${limit}s)" >&2
    timeout "$limit" "$@" > "$WORK/$name.json" 2> "$WORK/$name.err"
    echo $? > "$WORK/$name.rc"
    [ "$(cat "$WORK/$name.rc")" = 0 ] || tail -5 "$WORK/$name.err" >&2
}

step gpu 240 $PY bench/gpu.py --device cuda
step train 150 $PY bench/train.py --models slowonly_r50 --steps 8 --batch 16 --workers 4

$PY - "$WORK" "$START" "$OUT" <<'EOF'
import json, os, sys, time
from pathlib import Path
work, start, out = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
result = {"what": "bench/gpu.sh: GPU checks and speeds of posec3d", "gpu": (work / "nvidia_smi.txt").read_text().strip()}
for name in ("gpu", "train"):
    rc = int((work / f"{name}.rc").read_text())
    entry = {"returncode": rc, "timed_out": rc == 124}
    try:
        entry.update(json.loads((work / f"{name}.json").read_text()))
    except json.JSONDecodeError:
        entry["error"] = (work / f"{name}.err").read_text()[-1500:]
    result[name] = entry
heat = result["gpu"].get("heatmaps", {})
ddp = result["gpu"].get("ddp_one_process", {})
result["checks"] = {
    "heatmaps_cuda_equal_cpu_1e-5": bool(heat) and all(v.get("ok") for v in heat.values()),
    "ddp_nccl_one_process": bool(ddp.get("ok")) and ddp.get("backend") == "nccl",
    "fast_inference_equals_plain_1e-4": result["gpu"].get("inference_10clips_flip", {}).get(
        "fast_vs_plain_max_abs_diff", 1.0) <= 1e-4,
    "all_steps_exited_0": all(result[n]["returncode"] == 0 for n in ("gpu", "train")),
}
result["elapsed_s"] = round(time.time() - start, 1)
text = json.dumps(result, indent=1)
print(text)
if out:
    from posec3d.files import atomic_write_text
    atomic_write_text(out, text + "\n")
EOF
