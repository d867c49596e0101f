"""`posec3d export-onnx`: the CLI end to end, and the ONNX graph against the golden logits."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from posec3d.errors import ConfigError
from posec3d.models.onnx_export import compare_with_onnxruntime, export_onnx

from .conftest import golden_outputs, load_golden_model

CONFIGS = "configs/ntu60_xsub"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "posec3d", "export-onnx", *args], capture_output=True, text=True,
                          timeout=300)


def test_x3d_dynamic_batch_matches_golden_logits(golden_models, rand_inputs, tmp_path):
    out = tmp_path / "x3d.onnx"
    name = "x3d_shallow_ntu60_xsub_joint"
    res = _cli(f"{CONFIGS}/x3d_shallow_joint.py", str(golden_models / f"{name}.pth"), "-o", str(out),
               "--batch", "dynamic")
    assert res.returncode == 0, res.stderr
    diff = float(re.search(r"max abs difference (\S+)", res.stdout).group(1))
    assert diff < 1e-4
    graph = onnx.load(str(out))
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17
    # Independent oracle: onnxruntime on the golden input against mmaction2's logits (batch 2 ≠ export batch).
    x = (rand_inputs["rand17_u8"].astype(np.float32) / 255)[:, 0]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(logits, golden_outputs(golden_models, name)["rand/cls_score"], atol=1e-4, rtol=1e-4)


def test_c3d_static_batch(golden_models, tmp_path):
    out = tmp_path / "c3d.onnx"
    res = _cli(f"{CONFIGS}/c3d_light_joint.py", str(golden_models / "c3d_light_ntu60_xsub_joint.pth"),
               "-o", str(out), "--clip-len", "16", "--size", "32", "--fuse-bn")
    assert res.returncode == 0, res.stderr
    assert float(re.search(r"max abs difference (\S+)", res.stdout).group(1)) < 1e-4
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 17, 16, 32, 32]
    assert not [n for n in onnx.load(str(out)).graph.node if n.op_type == "BatchNormalization"]


@pytest.mark.slow
def test_slowonly_export(golden_models, summary, tmp_path):
    model = load_golden_model(golden_models, summary, "slowonly_r50_ntu60_xsub_keypoint").eval()
    export_onnx(model, tmp_path / "so.onnx", (17, 48, 64, 64))
    x = torch.rand(1, 17, 48, 64, 64, generator=torch.Generator().manual_seed(0))
    assert compare_with_onnxruntime(model, tmp_path / "so.onnx", x) < 1e-4


def test_errors_are_one_line(golden_models, summary, tmp_path):
    res = _cli(f"{CONFIGS}/x3d_shallow_joint.py", str(golden_models / "c3d_light_ntu60_xsub_joint.pth"),
               "-o", str(tmp_path / "x.onnx"))
    assert res.returncode == 1 and "does not fit the model" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x.onnx").exists()
    res = _cli(f"{CONFIGS}/x3d_shallow_joint.py", str(golden_models / "x3d_shallow_ntu60_xsub_joint.pth"),
               "-o", str(tmp_path / "x.onnx"), "--batch", "many")
    assert res.returncode == 1 and "--batch" in res.stderr
    model = load_golden_model(golden_models, summary, "rgbpose_conv3d_ntu60_slim")
    with pytest.raises(ConfigError, match="RGBPose"):
        export_onnx(model, tmp_path / "r.onnx", (3, 8, 64, 64))
