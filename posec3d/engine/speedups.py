"""The fast paths of ``test`` and ``train``: which speed-ups each uses, read from the config.

Two optional config dicts of ours; every key turns one speed-up off (or on):

    test_speedups = dict(fuse_bn=True, channels_last=True, inference_mode=True, fuse_activations=True,
                         views_per_forward=1)
    train_speedups = dict(channels_last='auto', fused_optimizer='auto', compile=False, compile_cache=None,
                          keep_freed_memory='auto')

Testing: BN folded into the convolutions, ReLUs and residual adds fused into them as oneDNN post-ops
(``fuse_activations``, CPU), channels-last 3D weights and inputs, ``torch.inference_mode``, and on
CPU the views of a batch (clips x flips) through the network ``views_per_forward`` at a time
(``Recognizer3D.forward_test``'s ``max_testing_views``, unless the config sets that). One view per
forward measured 1.8x faster than all 20 NTU views at once (SlowOnly, 64x64, 2 threads: 3.8 vs 6.8 s
per sample): a view's feature maps (<= 25 MB) are reused from the heap, while 20 views' (up to
500 MB) are fresh memory mapped at every layer, and their page faults cost more than the
convolutions. ``None`` puts all views in one forward (what GPUs want). The scores equal the plain
eval path's up to float rounding (< 1e-4, tested on the released SlowOnly checkpoint).

Training: ``'auto'`` means what measurement on this project's CPU chose per model family
(``TRAIN_AUTO``; ``python bench/train_variants.py`` re-measures). Channels-last 3D helps the
ResNet-style SlowOnly and the depthwise X3D (oneDNN's blocked 3D convolutions) but not C3D; the fused
optimizer kernel is available (``fused_optimizer=True``) but measured no win. ``keep_freed_memory``
(glibc, CPU): freed blocks up to 1 GB stay in the heap during training instead of going back to the
OS, so that the next iteration's activations (~80 MB tensors at batch 4) reuse them instead of
faulting in fresh pages: SlowOnly steps 4.6 -> 3.5 s (batch 4, 2 threads, alternating runs); the
engine's loaders return the freed memory (``malloc_trim``) before they fork their workers, or those
would share GBs of free heap copy-on-write and every first write to it would copy a page. ``compile=True`` wraps the training step in ``torch.compile``
(opt-in: the first steps compile for minutes); its cache goes to ``compile_cache`` (default:
``<work_dir>/.compile_cache``) so a resumed run reuses it. bf16 autocast on CPU stays opt-in
(``train --amp``): it changes the numerics (accuracy parity not shown), and it measured slower for
SlowOnly and X3D, faster only for C3D, on this AMX/AVX-512-bf16 CPU.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from posec3d.errors import ConfigError

TEST_KEYS = {"fuse_bn": True, "channels_last": True, "inference_mode": True, "fuse_activations": True,
             "views_per_forward": 1}
TRAIN_KEYS = {"channels_last": "auto", "fused_optimizer": "auto", "compile": False, "compile_cache": None,
              "keep_freed_memory": "auto"}

# Training-step speed-ups measured on this project's 2-core AVX-512 CPU (2 threads, batch 4, 17x48x56x56,
# variants alternating, load 9-16; re-run: python bench/train_variants.py). Channels-last 3D: X3D 2.5x,
# SlowOnly 1.6-2.2x, C3D 0.84x (slower: its plain 3x3x3 convolutions are already fast in oneDNN's
# default layout). The fused SGD kernel was no measurable win for any family (the optimizer step
# is under 1 % of a training step), so 'auto' leaves it off. bf16 autocast: X3D 0.28x, SlowOnly
# 0.56x, C3D 1.43x.
TRAIN_AUTO = {
    # keep_freed_memory: measured for SlowOnly only (the others keep glibc's default).
    "ResNet3dSlowOnly": {"channels_last": True, "fused_optimizer": False, "keep_freed_memory": True},
    "X3D": {"channels_last": True, "fused_optimizer": False},
    "C3D": {"channels_last": False, "fused_optimizer": False},
}


def _options(cfg: Mapping, key: str, known: dict) -> dict:
    given = cfg.get(key) or {}
    if not isinstance(given, Mapping):
        raise ConfigError(f"{cfg.get('_filename') or 'config'}: {key} must be a dict, got {given!r}")
    unknown = set(given) - set(known)
    if unknown:
        raise ConfigError(f"{cfg.get('_filename') or 'config'}: unknown {key} keys {sorted(unknown)} "
                          f"(known: {', '.join(known)})")
    return {**known, **dict(given)}


@dataclass(frozen=True)
class EvalSpeedups:
    fuse_bn: bool = True
    channels_last: bool = True
    inference_mode: bool = True
    fuse_activations: bool = True
    views_per_forward: int | None = 1

    @classmethod
    def from_config(cls, cfg: Mapping) -> "EvalSpeedups":
        o = _options(cfg, "test_speedups", TEST_KEYS)
        views = o["views_per_forward"]
        if views is not None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise ConfigError(f"{cfg.get('_filename') or 'config'}: test_speedups.views_per_forward must be a "
                              f"positive integer or None, got {views!r}")
        return cls(bool(o["fuse_bn"]), bool(o["channels_last"]), bool(o["inference_mode"]),
                   bool(o["fuse_activations"]), views)


def prepare_for_testing(model: nn.Module, speedups: EvalSpeedups) -> nn.Module:
    """The loaded model on its evaluation fast path (in place; inference only from here on)."""
    from posec3d.models.fuse import fuse_conv_activations, fuse_conv_bn, to_channels_last

    model.eval()
    if speedups.fuse_bn:
        fuse_conv_bn(model)
        if speedups.fuse_activations:  # needs the folded BN: the post-ops follow the conv directly
            fuse_conv_activations(model)
    # Only recognizers that convert their own inputs (Recognizer3D): RGBPose feeds two streams.
    if speedups.channels_last and hasattr(model, "channels_last"):
        to_channels_last(model)
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    if (speedups.views_per_forward is not None and on_cpu and hasattr(model, "channels_last")
            and getattr(model, "max_testing_views", 0) is None):  # a config's own max_testing_views wins
        model.max_testing_views = speedups.views_per_forward
    return model


@dataclass(frozen=True)
class TrainSpeedups:
    channels_last: bool
    fused_optimizer: bool
    compile: bool
    compile_cache: str | None
    keep_freed_memory: bool = False


def backbone_type(model_cfg: Mapping) -> str:
    return str((model_cfg.get("backbone") or {}).get("type", ""))


def train_speedups(cfg: Mapping, model_cfg: Mapping, device: torch.device) -> TrainSpeedups:
    """Resolve ``train_speedups`` ('auto' = the measured choice for this backbone family)."""
    o = _options(cfg, "train_speedups", TRAIN_KEYS)
    auto = TRAIN_AUTO.get(backbone_type(model_cfg), {"channels_last": False, "fused_optimizer": False})

    def choose(name: str) -> bool:
        value = o[name]
        if value == "auto":
            return bool(auto.get(name, False))
        if not isinstance(value, bool):
            raise ConfigError(f"{cfg.get('_filename') or 'config'}: train_speedups.{name} must be True, False or "
                              f"'auto', got {value!r}")
        return value

    fused = choose("fused_optimizer") and device.type in ("cpu", "cuda")
    keep = choose("keep_freed_memory") and device.type == "cpu"  # on a GPU host memory is not the issue
    return TrainSpeedups(choose("channels_last"), fused, bool(o["compile"]), o["compile_cache"], keep)


def apply_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last 3D for training: weights now, inputs inside ``Recognizer3D.extract_feat``.

    Parameters keep their identity (``Module.to`` swaps ``.data``), so build the optimizer after.
    """
    if not hasattr(model, "channels_last"):
        return model  # RGBPose: two input streams, not measured
    from posec3d.models.fuse import to_channels_last

    return to_channels_last(model)


def compile_step(step: nn.Module, cache: str | None, work_dir: Path) -> nn.Module:
    """``torch.compile`` with a persistent inductor cache (reused by a resumed run)."""
    cache_dir = Path(cache) if cache else work_dir / ".compile_cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir.resolve())
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    return torch.compile(step)


def describe(s: TrainSpeedups) -> str:
    on = [name for name, flag in (("channels-last 3D", s.channels_last), ("fused SGD/Adam", s.fused_optimizer),
                                  ("torch.compile", s.compile), ("freed memory kept", s.keep_freed_memory)) if flag]
    return ", ".join(on) if on else "none"


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_BLOCK, _KEPT_FREE = 1 << 30, 1 << 31
# What glibc's own dynamic thresholds grow to once large blocks have been freed.
_DEFAULT_BLOCK, _DEFAULT_FREE = 32 << 20, 64 << 20


def _glibc():
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, Windows, musl): nothing to tune
        return None


@contextlib.contextmanager
def freed_memory_kept(enabled: bool = True):
    """Within the block, blocks up to 1 GB come from (and go back to) the heap, and up to 2 GB of
    freed memory stays there, instead of each large tensor being a fresh mmap whose pages fault in
    one by one. Afterwards the thresholds go back to what glibc settles on by itself and the freed
    memory is returned to the OS. A no-op where the C library is not glibc."""
    libc = _glibc() if enabled else None
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _KEPT_BLOCK)
    libc.mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_BLOCK)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_FREE)
        libc.malloc_trim(0)


def release_freed_memory() -> None:
    """Give the heap's free pages back to the OS (before forking: a child shares every page of
    the parent copy-on-write, so the parent's next write to each would copy it)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
