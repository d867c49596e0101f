"""`posec3d export-onnx`: a config + checkpoint to an ONNX file, checked with onnxruntime."""
from __future__ import annotations

from typing import Optional

import typer


def _config_model_and_clip(config: str) -> tuple[dict, int | None, int | None]:
    """The config's ``model`` dict, plus clip length and crop size from its test pipeline if found."""
    from posec3d.engine.config import load_config, model_cfg, pipeline_cfg
    from posec3d.errors import ConfigError

    cfg = load_config(config)
    clip_len = size = None
    try:
        pipeline = pipeline_cfg(cfg, "test")
    except (ConfigError, KeyError, TypeError, ValueError):
        pipeline = []
    for step in pipeline or []:
        if step.get("type") == "UniformSampleFrames":
            clip_len = int(step.get("clip_len", 48))
        elif step.get("type") == "CenterCrop":
            crop = step.get("crop_size")
            size = int(crop if isinstance(crop, int) else crop[0])
        elif step.get("type") == "Resize" and step.get("keep_ratio") is False:
            size = int(step["scale"][0])
    return dict(model_cfg(cfg)), clip_len, size


def export_onnx_command(
    config: str = typer.Argument(..., help="Config file (pyskl or mmaction2 layout)."),
    checkpoint: str = typer.Argument(..., help="Checkpoint (.pth) for the config's model."),
    output: str = typer.Option(..., "-o", "--output", help="Where to write the .onnx file."),
    batch: str = typer.Option("1", "--batch", help="Batch size of the graph: a number, or 'dynamic'."),
    clip_len: Optional[int] = typer.Option(None, "--clip-len", help="Frames per clip (default: the test "
                                           "pipeline's, else 48)."),
    size: Optional[int] = typer.Option(None, "--size", help="Heatmap height = width (default: the test "
                                       "pipeline's, else 64)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 or newer)."),
    fuse_bn: bool = typer.Option(False, "--fuse-bn", help="Fold BatchNorm into the convolutions first."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load a checkpoint that pickles Python "
                                      "objects (runs code from the file: trusted files only)."),
) -> None:
    """Export a skeleton model to ONNX and print the max abs difference to torch (onnxruntime)."""
    import torch

    from posec3d.errors import ConfigError
    from posec3d.models import build_model, fuse_conv_bn
    from posec3d.models.checkpoint import load_checkpoint
    from posec3d.models.onnx_export import compare_with_onnxruntime, export_onnx

    from posec3d.files import check_writable

    check_writable(output)
    dynamic = batch == "dynamic"
    if not dynamic and not (batch.isdigit() and int(batch) > 0):
        raise ConfigError(f"--batch must be a positive number or 'dynamic', got {batch!r}")
    model_dict, cfg_clip, cfg_size = _config_model_and_clip(config)
    model = build_model(model_dict)
    load_checkpoint(model, checkpoint, strict=True, allow_unsafe=allow_unsafe)
    model.eval()
    if fuse_bn:
        fuse_conv_bn(model)
    in_channels = getattr(model.backbone, "in_channels", None)
    if in_channels is None:
        raise ConfigError(f"{config}: cannot tell the model's input channels; only skeleton models export")
    shape = (in_channels, clip_len or cfg_clip or 48, size or cfg_size or 64, size or cfg_size or 64)
    example_batch = 2 if dynamic else int(batch)
    exporter = export_onnx(model, output, shape, batch=1 if dynamic else int(batch), dynamic_batch=dynamic,
                           opset=opset)
    x = torch.rand(example_batch, *shape, generator=torch.Generator().manual_seed(0))
    diff = compare_with_onnxruntime(model, output, x)
    typer.echo(f"wrote {output} (input {'B' if dynamic else batch}x{'x'.join(map(str, shape))}, opset {opset}, "
               f"{exporter} exporter)")
    typer.echo(f"onnxruntime vs torch on a random input of batch {example_batch}: max abs difference {diff:.3g}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("export-onnx")(export_onnx_command)
