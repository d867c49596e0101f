"""PoseC3D backbones, heads, recognizers and checkpoint I/O.

``build_model(cfg)`` turns a config's ``model`` dict (pyskl or mmaction2 spelling) into a
recognizer whose parameter names equal the released checkpoint keys.
"""
from __future__ import annotations

import copy

from torch import nn

from posec3d.errors import ConfigError
from posec3d.models import c3d, heads, recognizer, rgbpose, slowonly, x3d  # noqa: F401  (registration)
from posec3d.models.fuse import fuse_conv_bn, optimize_for_inference, to_channels_last
from posec3d.models.recognizer import MMRecognizer3D, Recognizer3D
from posec3d.registry import MODELS

__all__ = ["build_model", "fuse_conv_bn", "optimize_for_inference", "to_channels_last", "Recognizer3D", "MMRecognizer3D"]


def build_model(cfg: dict) -> nn.Module:
    """Build a recognizer from a ``model`` dict, or from a whole config dict holding one."""
    if isinstance(cfg, dict) and "type" not in cfg and isinstance(cfg.get("model"), dict):
        cfg = cfg["model"]
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise ConfigError(f"model config must be a dict with a 'type' key, got {type(cfg).__name__}")
    return MODELS.build(copy.deepcopy(dict(cfg)))
