"""Restricted unpickling: annotation and score files may come from anywhere, so loading one must
never run code. Only plain containers, numpy arrays/dtypes/scalars and torch tensors are rebuilt;
any other global in the pickle stream is refused before it is called.
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
from typing import Any, BinaryIO


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list."""


def _encode_latin1(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`; no other codec is needed.
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    out: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    # numpy 1.x writes `numpy.core.*`, numpy 2.x `numpy._core.*`; both must load under either.
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = multiarray._reconstruct
        out[(mod, "scalar")] = multiarray.scalar
    # Protocol-5 pickles of contiguous arrays go through `numeric._frombuffer`.
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        out[(mod, "_frombuffer")] = numeric._frombuffer
    return out


def _load_torch_storage(data: bytes):
    import torch

    # A plain-pickled tensor stores its storage as torch.save bytes; read those with torch's own
    # restricted loader.
    return torch.load(io.BytesIO(data), weights_only=True)


def _torch_globals() -> dict[tuple[str, str], Any]:
    try:
        import torch
        import torch._utils
    except ImportError:  # torch is a dependency, but keep plain numpy files loadable without it
        return {}
    return {
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_torch_storage,
        ("torch", "Size"): torch.Size,
    }


_BUILTINS = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _encode_latin1,
}

_ALLOWED: dict[tuple[str, str], Any] | None = None


def _allowed() -> dict[tuple[str, str], Any]:
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = {**_BUILTINS, **_numpy_globals(), **_torch_globals()}
    return _ALLOWED


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allow-listed globals."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # Python 2 / protocol < 3 spelling
            module = "builtins"
        try:
            return _allowed()[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global '{module}.{name}'") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing persistent ids (not a plain pickle)")


def safe_load(f: BinaryIO) -> Any:
    """Unpickle one object from an open binary file, allowing only data types."""
    return SafeUnpickler(f).load()


def safe_loads(data: bytes) -> Any:
    return safe_load(io.BytesIO(data))
