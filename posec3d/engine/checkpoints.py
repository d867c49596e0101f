"""Training checkpoints: what resume needs, in the pyskl / mmaction2 layout.

A file holds ``meta`` (epoch, iter, seed, config text, ...), ``state_dict`` (the recognizer, no
``module.`` prefix), ``optimizer``, plus our extras ``scaler`` and ``rng`` (torch, numpy and
Python RNG states stored as tensors and ints, so ``torch.load(weights_only=True)`` reads them).
pyskl and mmaction2 tools read ``state_dict`` / ``meta`` and ignore the rest.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posec3d.errors import CheckpointError

EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pth$")


def capture_rng() -> dict:
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(path: Path, model: torch.nn.Module, optimizer, scaler, *, epoch: int, iteration: int,
                             seed: int, config_text: str, extra_meta: dict | None = None) -> None:
    """Write everything resume needs (atomically, through the models package's writer)."""
    from posec3d import __version__
    from posec3d.models.checkpoint import save_checkpoint

    meta = {"epoch": int(epoch), "iter": int(iteration), "seed": int(seed), "config": config_text,
            "time": time.strftime("%Y%m%d_%H%M%S"), "posec3d_version": __version__, **(extra_meta or {})}
    extra: dict[str, Any] = {"optimizer": optimizer.state_dict(), "rng": capture_rng()}
    if scaler is not None:
        extra["scaler"] = scaler.state_dict()
    save_checkpoint(path, model.state_dict(), meta=meta, **extra)


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or unsafe content
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a checkpoint dict")
    return ckpt


def resume_state(path: str | Path) -> dict:
    """The parts of a training checkpoint that resume needs; errors if it is weights only."""
    ckpt = read_checkpoint(path)
    missing = [k for k in ("state_dict", "optimizer", "meta") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: cannot resume from it, it lacks {missing} (weights only? "
                              "use --load-from to fine-tune from it instead)")
    meta = ckpt["meta"]
    if "epoch" not in meta or "iter" not in meta:
        raise CheckpointError(f"{path}: meta lacks 'epoch'/'iter'; cannot resume")
    return ckpt


def find_latest(work_dir: Path) -> Path | None:
    """``latest.pth`` if present, else the highest ``epoch_N.pth``."""
    latest = work_dir / "latest.pth"
    if latest.is_file():
        return latest
    epochs = sorted((int(m.group(1)), p) for p in work_dir.glob("epoch_*.pth") if (m := EPOCH_FILE.match(p.name)))
    return epochs[-1][1] if epochs else None


def prune_epoch_checkpoints(work_dir: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``epoch_N.pth`` (keep <= 0 keeps all)."""
    if keep <= 0:
        return []
    epochs = sorted((int(m.group(1)), p) for p in work_dir.glob("epoch_*.pth") if (m := EPOCH_FILE.match(p.name)))
    doomed = [p for _, p in epochs[:-keep]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed
