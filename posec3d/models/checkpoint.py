"""Read and write checkpoints in the pyskl / mmaction2 layout (SPEC §8).

A checkpoint is ``{'meta': {...}, 'state_dict': {...}, ...}`` (optimizer, message_hub and
param_schedulers entries are ignored) or a bare state dict. Keys may carry a DDP ``module.``
prefix. Our modules use the checkpoint key names, so loading never maps keys.
"""
from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from posec3d.errors import CheckpointError
from posec3d.files import atomic_write_bytes

IGNORED_MISSING = ("num_batches_tracked",)  # old checkpoints lack these BN counters


class _Inert:
    """Stands in for a bookkeeping class of mmengine / mmcv: keeps its pickled state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state


class _InertDict(dict):
    """Stands in for a dict subclass (mmengine / mmcv ConfigDict)."""

    def __setstate__(self, state):
        self.state = state


# Objects that real training checkpoints carry beside the weights (message_hub, meta); they are
# rebuilt as inert stand-ins so these files load without unpickling arbitrary code.
_INERT_CLASSES = {
    "mmengine.logging.history_buffer.HistoryBuffer": _Inert,
    "mmengine.config.config.ConfigDict": _InertDict,
    "mmcv.utils.config.ConfigDict": _InertDict,
    "addict.addict.Dict": _InertDict,
}


def _benign_globals() -> dict[str, Any]:
    """Name -> object for the non-tensor globals a checkpoint may use without being unsafe."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    out: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):  # written by numpy 1.x / 2.x
        out[f"{mod}._reconstruct"] = multiarray._reconstruct
        out[f"{mod}.scalar"] = multiarray.scalar
    for name in dir(getattr(np, "dtypes", None)):
        if name.endswith("DType"):
            out[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    for name, base in _INERT_CLASSES.items():
        module, _, qualname = name.rpartition(".")
        out[name] = type(qualname, (base,), {"__module__": module})
    return out


def _load_with_benign_globals(path: Path, map_location: Any) -> Any:
    """``torch.load(weights_only=True)`` that also accepts numpy values and mmengine/mmcv
    bookkeeping objects; any other global makes it refuse (CheckpointError)."""
    needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    benign = _benign_globals()
    refused = [g for g in needed if g not in benign]
    if refused:
        shown = ", ".join(refused[:5]) + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise CheckpointError(
            f"checkpoint {path}: refused to load, it pickles Python objects beyond tensors, numbers and "
            f"containers ({shown}). Loading it would run code from the file; if you trust the file, pass "
            f"allow_unsafe=True (CLI: --allow-unsafe).")
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in benign.items()]):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()
        raise CheckpointError(f"checkpoint {path}: cannot be unpickled safely "
                              f"({next((r for r in reason if 'but got' in r), reason[-1] if reason else e)}); "
                              "if you trust the file, pass allow_unsafe=True (CLI: --allow-unsafe)") from e


def read_checkpoint(path: str | os.PathLike, allow_unsafe: bool = False, map_location: Any = "cpu") -> dict:
    """Load a checkpoint file into a dict with a ``state_dict`` entry (a bare state dict is wrapped).

    Loading uses ``torch.load(weights_only=True)``, which refuses pickled code; numpy values and
    mmengine / mmcv bookkeeping objects (message_hub history buffers, ConfigDicts) are accepted as
    inert data. ``allow_unsafe=True`` unpickles anything: only for files from a trusted source.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        try:
            obj = torch.load(path, map_location=map_location, weights_only=not allow_unsafe)
        except pickle.UnpicklingError as e:
            if allow_unsafe or not zipfile.is_zipfile(path):
                reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                hint = "" if allow_unsafe else "; if you trust the file, pass allow_unsafe=True (CLI: --allow-unsafe)"
                raise CheckpointError(f"checkpoint {path}: cannot be unpickled safely ({reason}){hint}") from e
            obj = _load_with_benign_globals(path, map_location)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ModuleNotFoundError) as e:
        raise CheckpointError(f"checkpoint {path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, found {type(obj).__name__}")
    if "state_dict" in obj:
        ckpt = dict(obj)
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        ckpt = {"state_dict": obj}
    else:
        raise CheckpointError(f"checkpoint {path}: no 'state_dict' entry and not a bare state dict "
                              f"(top-level keys: {sorted(map(str, obj))[:10]})")
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' is not a mapping of tensors")
    ckpt["state_dict"] = _strip_prefix(state, "module.")
    return ckpt


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> "OrderedDict[str, torch.Tensor]":
    if state and all(k.startswith(prefix) for k in state):
        return OrderedDict((k[len(prefix):], v) for k, v in state.items())
    return OrderedDict(state)


def _describe(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], strict: bool = True,
               source: str = "checkpoint") -> dict[str, list[str]]:
    """Copy ``state`` into ``model``; returns the missing / unexpected / mismatched key lists.

    strict: any difference raises one `CheckpointError` listing all of them.
    non-strict (fine-tuning): tensors of another shape are skipped, and every difference is
    reported through ``warnings.warn``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or mismatched):
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_describe(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_describe(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {_describe(mismatched)}")
        raise CheckpointError(f"{source} does not fit the model built from the config; " + "; ".join(parts))
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(usable, strict=False)
    if not strict:
        reported_missing = [k for k in missing if not k.endswith(IGNORED_MISSING)]
        for label, keys in (("skipped shape-mismatched tensors", mismatched), ("missing keys", reported_missing),
                            ("unexpected keys", unexpected)):
            if keys:
                warnings.warn(f"{source}: {label} ({len(keys)}): {_describe(keys)}", stacklevel=3)
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True, allow_unsafe: bool = False,
                    map_location: Any = "cpu") -> dict:
    """Load a pyskl / mmaction2 checkpoint file into ``model``; returns the whole checkpoint dict.

    ``strict=True`` needs exactly the model's keys and shapes; ``strict=False`` loads what fits
    (e.g. a backbone under a classifier of another size) and warns about the rest.
    """
    ckpt = read_checkpoint(path, allow_unsafe=allow_unsafe, map_location=map_location)
    load_state(model, ckpt["state_dict"], strict=strict, source=f"checkpoint {path}")
    return ckpt


def save_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor], meta: dict | None = None,
                    **extra: Any) -> None:
    """Write ``{'meta': meta, 'state_dict': ..., **extra}`` atomically (pyskl / mmaction2 layout).

    Tensors are moved to the CPU (standard layout) so the file loads anywhere; ``extra`` holds e.g. ``optimizer``.
    """
    if isinstance(state_dict, nn.Module):
        state_dict = state_dict.state_dict()
    state = OrderedDict((k, v.detach().cpu().contiguous()) for k, v in _strip_prefix(state_dict, "module.").items())
    buffer = io.BytesIO()
    torch.save({"meta": dict(meta or {}), "state_dict": state, **extra}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
