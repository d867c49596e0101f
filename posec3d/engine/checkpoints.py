"""Training checkpoints: what resume needs, in the pyskl / mmaction2 layout.

A file holds ``meta`` (epoch, iter, seed, config text, ...), ``state_dict`` (the recognizer, no
``module.`` prefix), ``optimizer``, plus our extras ``scaler`` and ``rng`` (torch, numpy and
Python RNG states stored as tensors and ints, so the safe checkpoint loader reads them).
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

from posec3d.errors import CheckpointError, short_repr

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
    """A whole training checkpoint (safe loading, see ``models.checkpoint.load_checkpoint_file``)."""
    from posec3d.models.checkpoint import load_checkpoint_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    ckpt = load_checkpoint_file(path)
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: not a checkpoint dict (found {type(ckpt).__name__})")
    return ckpt


def _is_count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


def resume_state(path: str | Path) -> dict:
    """The parts of a training checkpoint that resume needs, checked; errors if it is weights only."""
    ckpt = read_checkpoint(path)
    missing = [k for k in ("state_dict", "optimizer", "meta") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: cannot resume from it, it lacks {missing} (weights only? "
                              "use --load-from to fine-tune from it instead)")
    meta = ckpt["meta"]
    if not isinstance(meta, dict) or "epoch" not in meta or "iter" not in meta:
        raise CheckpointError(f"{path}: meta lacks 'epoch'/'iter'; cannot resume")
    for key in ("epoch", "iter", "seed"):
        if key in meta and not _is_count(meta[key]):
            raise CheckpointError(f"{path}: meta {key!r} must be a non-negative integer, got "
                                  f"{short_repr(meta[key])}; cannot resume")
    if not isinstance(ckpt["state_dict"], dict) or not isinstance(ckpt["optimizer"], dict):
        raise CheckpointError(f"{path}: 'state_dict' and 'optimizer' must be dicts; cannot resume")
    if "rng" in ckpt:
        _check_rng(ckpt["rng"], path)
    return ckpt


def _check_rng(state: Any, path: str | Path) -> None:
    """The RNG states ``capture_rng`` writes; anything else would fail (or crash) inside torch / numpy."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: bad RNG state ({what}); cannot resume")

    if not isinstance(state, dict):
        raise bad(f"a {type(state).__name__}, not a dict")
    t = state.get("torch")
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or t.shape != torch.get_rng_state().shape:
        raise bad("torch state is not the generator's byte tensor")
    n = state.get("numpy")
    if (not isinstance(n, dict) or not isinstance(n.get("key"), torch.Tensor) or tuple(n["key"].shape) != (624,)
            or not _is_count(n.get("pos")) or n["pos"] > 624 or n.get("has_gauss") not in (0, 1)
            or not isinstance(n.get("cached_gaussian"), float)):
        raise bad("numpy MT19937 state")
    if "key" in n and ((n["key"] < 0).any() or (n["key"] >= 2**32).any()):
        raise bad("numpy key outside 32 bits")
    p = state.get("python")
    ref = random.getstate()
    if (not isinstance(p, dict) or p.get("version") != ref[0] or not isinstance(p.get("state"), list)
            or len(p["state"]) != len(ref[1]) or not all(_is_count(x) and x < 2**32 for x in p["state"][:-1])
            or not _is_count(p["state"][-1]) or p["state"][-1] > 624
            or not (p.get("gauss") is None or isinstance(p["gauss"], float))):
        raise bad("Python random state")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Any, path: str | Path) -> None:
    """``optimizer.load_state_dict`` with the per-parameter tensors checked against the parameters,
    which torch only notices at the first step (as a raw RuntimeError)."""
    where = f"{path}: optimizer state does not fit this config"
    groups = optimizer.param_groups
    try:
        saved_groups, saved_state = state["param_groups"], state["state"]
        ids = [i for g in saved_groups for i in g["params"]]
        params = [p for g in groups for p in g["params"]]
        if len(ids) != len(params):
            raise CheckpointError(f"{where} ({len(ids)} parameters saved, {len(params)} in the model)")
        for i, p in zip(ids, params):
            for name, value in (saved_state.get(i) or {}).items():
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                    raise CheckpointError(f"{where} ({name} of parameter {i} has shape {tuple(value.shape)}, "
                                          f"the parameter {tuple(p.shape)})")
        optimizer.load_state_dict(state)
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, RuntimeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{where} ({type(e).__name__}: {short_repr(str(e), 150)})") from None


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
