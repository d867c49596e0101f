"""Read and write checkpoints in the pyskl / mmaction2 layout (SPEC §8).

A checkpoint is ``{'meta': {...}, 'state_dict': {...}, ...}`` (optimizer, message_hub and
param_schedulers entries are ignored) or a bare state dict. Keys may carry a DDP ``module.``
prefix. Our modules use the checkpoint key names, so loading never maps keys.
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from posec3d.errors import CheckpointError, short_repr
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


def _inert_globals() -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for name, base in _INERT_CLASSES.items():
        module, _, qualname = name.rpartition(".")
        out[(module, qualname)] = type(qualname, (base,), {"__module__": module})
    return out


_allow_unsafe_default = False


@contextlib.contextmanager
def unsafe_loading_allowed(enabled: bool = True):
    """Within this block, checkpoints load with plain ``torch.load`` (for ``--allow-unsafe``: files from
    a trusted source that pickle other Python objects)."""
    global _allow_unsafe_default
    before, _allow_unsafe_default = _allow_unsafe_default, bool(enabled)
    try:
        yield
    finally:
        _allow_unsafe_default = before


_UNSAFE_HINT = "if you trust the file, pass --allow-unsafe, or allow_unsafe=True in Python"


def load_checkpoint_file(path: str | os.PathLike, allow_unsafe: bool | None = None) -> Any:
    """The object stored in a checkpoint file, loaded safely (or with ``torch.load`` if ``allow_unsafe``).

    The safe path reads torch's zip format (and the legacy pre-1.6 format) through
    ``posec3d.safe_pickle``: tensors, numbers, containers, plain numpy values and inert stand-ins for
    mmengine / mmcv bookkeeping objects; storages are sized before they are read, and the load is
    bounded by the file size. Any other global is refused before it is called.
    """
    from posec3d.errors import short_repr
    from posec3d.safe_pickle import LEGACY_MAGIC, PickleLimitError, UnsafePickleError, Budget, load_legacy_torch, load_torch_zip

    path = Path(path)
    if allow_unsafe is None:
        allow_unsafe = _allow_unsafe_default
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: file not found")
    try:
        if allow_unsafe:
            return torch.load(path, map_location="cpu", weights_only=False)
        if zipfile.is_zipfile(path):
            return load_torch_zip(path, extra_globals=_inert_globals())
        with open(path, "rb") as f:
            head = f.read(16)
        if head.startswith(b"PK\x03\x04"):
            raise CheckpointError(f"checkpoint {path}: truncated or damaged (a zip file without its directory)")
        if not head.startswith(b"\x80") or b"\x8a\x0a" + LEGACY_MAGIC.to_bytes(10, "little") not in head:
            raise CheckpointError(f"checkpoint {path}: not a checkpoint (neither a torch zip file nor a "
                                  "legacy torch file)")
        return load_legacy_torch(path.read_bytes(), Budget(path.stat().st_size))
    except CheckpointError:
        raise
    except PickleLimitError as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    except UnsafePickleError as e:
        raise CheckpointError(f"checkpoint {path}: unsafe, not loaded: {e}; it holds more than tensors, numbers "
                              f"and containers ({_UNSAFE_HINT})") from None
    except OSError as e:
        raise CheckpointError(f"checkpoint {path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # noqa: BLE001 - only checked constructors ran: the stream is damaged
        hint = "" if allow_unsafe else "; it is damaged or not a checkpoint"
        raise CheckpointError(f"checkpoint {path}: cannot be loaded ({type(e).__name__}: "
                              f"{short_repr(str(e).strip().splitlines()[-1] if str(e).strip() else '', 150)}){hint}") from None


def read_checkpoint(path: str | os.PathLike, allow_unsafe: bool | None = None, map_location: Any = "cpu") -> dict:
    """Load a checkpoint file into a dict with a ``state_dict`` entry (a bare state dict is wrapped).

    See ``load_checkpoint_file`` for what loads safely; ``allow_unsafe=True`` (or the
    ``unsafe_loading_allowed()`` block the CLI's ``--allow-unsafe`` opens) unpickles anything: only
    for files from a trusted source.
    """
    path = Path(path)
    obj = load_checkpoint_file(path, allow_unsafe)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path}: expected a dict, found {type(obj).__name__}")
    if "state_dict" in obj:
        ckpt = dict(obj)
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        ckpt = {"state_dict": obj}
    else:
        raise CheckpointError(f"checkpoint {path}: no 'state_dict' entry and not a bare state dict "
                              f"(top-level keys: {short_repr(sorted(map(str, obj))[:10], 200)})")
    state = ckpt["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' is not a mapping of tensors")
    if not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"checkpoint {path}: 'state_dict' has keys that are not strings")
    state = _strip_prefix(state, "module.")
    if map_location not in (None, "cpu") and not (isinstance(map_location, torch.device) and map_location.type == "cpu"):
        state = OrderedDict((k, v.to(map_location)) for k, v in state.items())
    ckpt["state_dict"] = state
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
        for k in own:
            # The first conv's second dimension is the input channels (joints or limbs): a checkpoint
            # for another skeleton layout leaves it freshly initialised, which changes what the model sees.
            if (k in state and own[k].dim() == 5 and state[k].dim() == 5 and state[k].shape[1] != own[k].shape[1]
                    and state[k].shape[0] == own[k].shape[0]):
                warnings.warn(f"{source}: input conv {k} re-initialised: the checkpoint has {state[k].shape[1]} "
                              f"input channels, this model {own[k].shape[1]} (another joint count or layout)",
                              stacklevel=3)
        parts = [f"{label} ({len(keys)}): {_describe(keys, 8)}" for label, keys in
                 (("skipped shape-mismatched tensors", mismatched), ("missing keys", reported_missing),
                  ("unexpected keys", unexpected)) if keys]
        if parts:
            warnings.warn(f"{source}: " + "; ".join(parts), stacklevel=3)
    return {"missing": missing, "unexpected": unexpected, "mismatched": mismatched}


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True, allow_unsafe: bool | None = None,
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
