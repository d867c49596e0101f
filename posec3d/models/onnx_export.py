"""ONNX export of single-input recognizers, and a check of the result with onnxruntime.

The dynamo-based exporter (``torch.onnx.export(dynamo=True)``) needs ``onnxscript``; when it is
missing or fails, the TorchScript-based exporter is used. Both give opset ≥ 17 graphs.
"""
from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posec3d.errors import ConfigError
from posec3d.files import atomic_write_bytes


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: str, opset: int, dynamic_batch: bool) -> None:
    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=["input"],
                                output_names=["logits"], dynamic_shapes=dynamic_shapes, external_data=False)
    program.save(path)


def _export_torchscript(model: nn.Module, example: torch.Tensor, path: str, opset: int, dynamic_batch: bool) -> None:
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and constant-folding notices from the exporter
        torch.onnx.export(model, (example,), path, dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, do_constant_folding=True)


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: tuple[int, int, int, int], batch: int = 1,
                dynamic_batch: bool = False, opset: int = 17) -> str:
    """Write ``model`` (eval mode, (B, C, T, H, W) → logits) to ``path``; returns the exporter used.

    ``input_shape`` is (C, T, H, W); ``batch`` the example's batch size (and the fixed batch size
    unless ``dynamic_batch``). The file is written atomically.
    """
    if opset < 17:
        raise ConfigError(f"ONNX export: opset must be at least 17, got {opset}")
    if getattr(model, "cls_head", None) is not None and not hasattr(model.cls_head, "fc_cls"):
        raise ConfigError("ONNX export supports single-input recognizers (SlowOnly, C3D, X3D), not RGBPose")
    model = model.eval()
    example = torch.rand(batch, *input_shape)
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = str(Path(tmp) / "model.onnx")
        for name, exporter in (("dynamo", _export_dynamo), ("torchscript", _export_torchscript)):
            try:
                with torch.no_grad():
                    exporter(model, example, tmp_path, opset, dynamic_batch)
            except Exception as e:  # noqa: BLE001 - any exporter failure means: try the other one
                errors.append(f"{name}: {type(e).__name__}: {e}")
                continue
            atomic_write_bytes(path, Path(tmp_path).read_bytes())
            return name
    raise ConfigError("ONNX export failed with both exporters:\n" + "\n".join(errors))


def compare_with_onnxruntime(model: nn.Module, path: str | os.PathLike, x: torch.Tensor) -> float:
    """Max |torch − onnxruntime| of the logits on input ``x``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (ort_out,) = session.run(None, {name: x.numpy()})
    with torch.no_grad():
        ref = model.eval()(x).numpy()
    if ort_out.shape != ref.shape:
        raise AssertionError(f"ONNX output shape {ort_out.shape} differs from torch {ref.shape}")
    return float(np.abs(ort_out - ref).max())
