"""Bounded, restricted unpickling for every pickle posec3d reads (annotations, score dumps,
checkpoints, caches). Files may come from anywhere, so loading one must never run code, crash the
interpreter or exhaust the machine:

- Only allow-listed globals resolve (plain containers, numbers, plain numpy arrays / scalars,
  torch tensors); every other global is refused before it is called.
- numpy values are rebuilt by our own checked constructors, never by numpy's pickle hooks: a dtype
  must be a plain number or bool (no object, structured, subarray, string or flagged dtypes), and an
  array's byte count must match its shape before any memory is allocated. (numpy's own
  ``dtype.__setstate__`` trusts its input: a forged state makes numpy read raw bytes as object
  pointers.)
- Loading is bounded: bytes created by constructors and items reachable through shared references
  (memo "billion laughs") are budgeted relative to the file size, nesting is limited, and the loaded
  object is checked for cycles, all without recursion.

The pure-Python unpickler is used on purpose: it reads length-prefixed data without allocating the
claimed length first, and it lets every opcode that builds or mutates objects be checked.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import mmap
import os
import pickle
import struct
import time
import zipfile
from typing import Any, BinaryIO, Callable

MAX_DEPTH = 64  # real annotation files nest 5 levels, checkpoints about 8
BASE_ITEMS = 2_000_000  # items reachable from the result, on top of one per byte of the file
BASE_BYTES = 256 * 2**20  # bytes built by constructors, on top of 4x the file size
BASE_SECONDS = 10.0  # time to load, on top of one second per MB of file
_CHUNK = 1024
_PLAIN_KINDS = "biufc"  # bool, signed, unsigned, float, complex
_PLAIN_CODES = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global outside the allow-list or builds a value that is not plain data."""


class PickleLimitError(UnsafePickleError):
    """The pickle would allocate or expand beyond the budget for its size, or nests too deeply."""


def gigabytes(n: int) -> str:
    """A byte count for messages: "3,725 GB", "1.50 GB", "256 MB", "12 KB"."""
    if n >= 10 * 2**30:
        return f"{n / 2**30:,.0f} GB"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GB"
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} KB"


class Budget:
    """Bytes and items a load may create, proportional to the size of what is being read."""

    def __init__(self, source_bytes: int, seconds: float | None = None):
        self.source_bytes = source_bytes
        self.max_bytes = 4 * source_bytes + BASE_BYTES
        self.max_items = source_bytes + BASE_ITEMS
        self.used_bytes = 0
        # Keys whose hashes all collide make each insertion scan the previous ones (quadratic time in
        # C, uninterruptible): dicts and sets are filled in chunks against this deadline. Real files
        # load at tens of MB per second.
        self.seconds = BASE_SECONDS + source_bytes / 2**20 if seconds is None else seconds
        self.deadline = time.monotonic() + self.seconds

    def check_time(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise PickleLimitError(f"{what} refused: loading would take more than {self.seconds:.0f} s "
                                   "(keys whose hashes collide?)")

    def fill(self, target: Any, items: Any, what: str) -> None:
        """``target.update(items)`` (a dict from pairs, or a set), in chunks within the deadline."""
        items = list(items)
        for start in range(0, len(items), _CHUNK):
            target.update(items[start:start + _CHUNK])
            self.check_time(what)

    def spend(self, nbytes: int, what: str) -> None:
        self.used_bytes += nbytes
        if nbytes > self.max_bytes or self.used_bytes > self.max_bytes:
            raise PickleLimitError(f"{what} refused: would allocate {gigabytes(max(nbytes, self.used_bytes))} "
                                   f"(limit {gigabytes(self.max_bytes)} for a {gigabytes(self.source_bytes)} file)")

    def check_items(self, n: int, what: str) -> None:
        if n > self.max_items:
            raise PickleLimitError(f"{what} refused: would expand to {n:,} items, would allocate "
                                   f"{gigabytes(8 * n)} (limit {self.max_items:,} items for a "
                                   f"{gigabytes(self.source_bytes)} file)")


# --- numpy values, rebuilt only through checked constructors -------------------------------------

class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NDARRAY = _Marker("numpy.ndarray")  # only ever an argument of _reconstruct


class _PendingDtype:
    """What ``numpy.dtype(code, align, copy)`` + BUILD describe; the real dtype is made once the
    state is checked (or, without a state, from the code alone)."""

    __slots__ = ("code", "byteorder", "built")

    def __init__(self, code: str):
        self.code, self.byteorder, self.built = code, "=", False

    def __setstate__(self, state: Any) -> None:
        # numpy's state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]).
        if self.built:
            raise UnsafePickleError("numpy dtype state given twice")
        if not isinstance(state, tuple) or len(state) != 8:
            raise UnsafePickleError(f"numpy dtype {self.code}: unsupported state (only plain number "
                                    "and bool dtypes are loaded)")
        version, byteorder, subarray, names, fields, elsize, alignment, flags = state
        if (version not in (3, 4) or byteorder not in ("<", ">", "|", "=") or subarray is not None
                or names is not None or fields is not None or elsize != -1 or alignment != -1
                or flags != 0 or type(flags) is not int):
            raise UnsafePickleError(f"numpy dtype {self.code}: refused a dtype state with fields, subarrays, "
                                    "sizes or flags (only plain number and bool dtypes are loaded)")
        self.byteorder, self.built = byteorder, True

    def resolve(self):
        import numpy as np

        dt = np.dtype(self.code)
        if self.byteorder in ("<", ">") and dt.itemsize > 1:
            dt = dt.newbyteorder(self.byteorder)
        if dt.kind not in _PLAIN_KINDS or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
            raise UnsafePickleError(f"numpy dtype {self.code}: not a plain number or bool dtype")
        return dt


def _make_dtype(code: Any, align: Any = False, copy: Any = True) -> _PendingDtype:
    if type(code) is not str or code not in _PLAIN_CODES or type(align) is not bool or type(copy) is not bool:
        raise UnsafePickleError(f"numpy dtype {_short(code)} refused: only plain number and bool dtypes are "
                                "loaded (no object, string, structured or void dtypes)")
    return _PendingDtype(code)


def _dtype_of(value: Any):
    if not isinstance(value, _PendingDtype):
        raise UnsafePickleError(f"numpy value with dtype {_short(value)} refused: not a plain dtype")
    return value.resolve()


def _shape_of(shape: Any) -> tuple[int, ...]:
    if (not isinstance(shape, tuple) or len(shape) > 32
            or not all(type(s) is int and s >= 0 for s in shape)):
        raise UnsafePickleError(f"numpy array shape {_short(shape)} refused: not a tuple of sizes")
    return shape


class _PendingArray:
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` + BUILD(state): the array is made by
    ``_finish`` once its state passed the checks."""

    __slots__ = ("budget", "array")

    def __init__(self, budget: Budget):
        self.budget, self.array = budget, None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise UnsafePickleError("numpy array state given twice")
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # (version, shape, dtype, is_fortran, data)
        if not isinstance(state, tuple) or len(state) != 4:
            raise UnsafePickleError("numpy array with an unsupported state refused")
        shape, dtype, fortran, data = state
        self.array = _array_from_bytes(data, _dtype_of(dtype), _shape_of(shape), "F" if fortran else "C",
                                       self.budget, native=True)


def _array_from_bytes(data: Any, dtype, shape: tuple[int, ...], order: Any, budget: Budget, native: bool = False):
    import numpy as np

    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy array data of type {type(data).__name__} refused (object arrays and "
                                "out-of-band buffers are not loaded)")
    if order not in ("C", "F"):
        raise UnsafePickleError(f"numpy array order {_short(order)} refused")
    count = 1
    for s in shape:
        count *= s
    nbytes = count * dtype.itemsize
    if nbytes != len(data):
        what = f"numpy array of shape {_short(shape)} {dtype}"
        if nbytes > len(data):
            budget.spend(nbytes, what)  # a claim beyond the budget says so; a small one is just damaged
        raise UnsafePickleError(f"{what} claims {count} elements ({gigabytes(nbytes)}) but carries "
                                f"{len(data)} bytes")
    budget.spend(nbytes, f"numpy array of shape {_short(shape)}")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order=order)
    # As numpy itself: ndarray.__setstate__ hands back native byte order (values converted), _frombuffer
    # keeps the stored one.
    if native and not dtype.isnative:
        return array.astype(dtype.newbyteorder("="), order=order)
    return array.copy(order=order)


def _reconstruct_factory(budget: Budget) -> Callable:
    def _reconstruct(subtype: Any, shape: Any = (0,), typecode: Any = b"b") -> _PendingArray:
        if subtype is not _NDARRAY or shape != (0,) or not isinstance(typecode, (bytes, str)) or len(typecode) > 1:
            raise UnsafePickleError(f"numpy _reconstruct({_short(subtype)}, {_short(shape)}) refused: only "
                                    "plain ndarrays are loaded")
        return _PendingArray(budget)
    return _reconstruct


def _frombuffer_factory(budget: Budget) -> Callable:
    def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any):
        if isinstance(buf, pickle.PickleBuffer):
            buf = bytes(buf.raw())
        return _array_from_bytes(buf, _dtype_of(dtype), _shape_of(shape), order, budget)
    return _frombuffer


def _scalar(dtype: Any, data: Any = None):
    import numpy as np

    dt = _dtype_of(dtype)
    if not isinstance(data, bytes) or len(data) != dt.itemsize:
        raise UnsafePickleError(f"numpy scalar of dtype {dt} refused: its data is not {dt.itemsize} bytes")
    value = np.frombuffer(data, dtype=dt)
    return (value.astype(dt.newbyteorder("=")) if not dt.isnative else value)[0]


# --- builtins, with their arguments checked ----------------------------------------------------

def _factories(budget: Budget) -> dict[tuple[str, str], Any]:
    def encode(text: Any, encoding: Any = "latin1"):
        # Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`; no other codec is needed.
        if type(text) is not str or type(encoding) is not str or codecs.lookup(encoding).name != "iso8859-1":
            raise UnsafePickleError(f"refusing _codecs.encode({_short(text)}, {_short(encoding)})")
        budget.spend(len(text), "bytes value")
        return text.encode("latin1")

    def make_bytearray(source: Any = b"", encoding: Any = None):
        if isinstance(source, str) and encoding is not None:
            source = encode(source, encoding)
        if not isinstance(source, (bytes, bytearray)):
            raise UnsafePickleError(f"bytearray({_short(source)}) refused: only bytes are loaded")
        budget.spend(len(source), "bytearray")
        return bytearray(source)

    def make_bytes(source: Any = b"", encoding: Any = None):
        # protocol 2 writes b"" as `bytes()`; nothing else needs this constructor (bytes(N) allocates N)
        if isinstance(source, str) and encoding is not None:
            return encode(source, encoding)
        if not isinstance(source, (bytes, bytearray)):
            raise UnsafePickleError(f"bytes({_short(source)}) refused: only bytes are loaded")
        return bytes(source)

    def collection(kind: type) -> Callable:
        def build(items: Any = ()):
            if not isinstance(items, (list, tuple, set, frozenset)):
                raise UnsafePickleError(f"{kind.__name__}({_short(items)}) refused: only lists of items are loaded")
            budget.spend(8 * len(items), kind.__name__)
            filled: set = set()
            budget.fill(filled, items, kind.__name__)
            return filled if kind is set else frozenset(filled)
        return build

    def make_range(*args: Any):
        if not 1 <= len(args) <= 3 or not all(type(a) is int for a in args):
            raise UnsafePickleError(f"range{_short(args)} refused")
        r = range(*args)
        budget.check_items(len(r), "range")
        return r

    def make_complex(real: Any = 0, imag: Any = 0):
        if not all(type(x) in (int, float) for x in (real, imag)):
            raise UnsafePickleError(f"complex({_short(real)}, {_short(imag)}) refused")
        return complex(real, imag)

    def make_slice(*args: Any):
        if not 1 <= len(args) <= 3 or not all(a is None or type(a) is int for a in args):
            raise UnsafePickleError(f"slice{_short(args)} refused")
        return slice(*args)

    def ordered_dict(items: Any = ()):
        if not isinstance(items, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2
                                                           for p in items):
            raise UnsafePickleError(f"OrderedDict({_short(items)}) refused")
        out = collections.OrderedDict()
        budget.fill(out, items, "OrderedDict")
        return out

    out: dict[tuple[str, str], Any] = {
        ("builtins", "set"): collection(set),
        ("builtins", "frozenset"): collection(frozenset),
        ("builtins", "complex"): make_complex,
        ("builtins", "bytearray"): make_bytearray,
        ("builtins", "bytes"): make_bytes,
        ("builtins", "slice"): make_slice,
        ("builtins", "range"): make_range,
        ("collections", "OrderedDict"): ordered_dict,
        ("_codecs", "encode"): encode,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _make_dtype,
    }
    # numpy 1.x writes `numpy.core.*`, numpy 2.x `numpy._core.*`; both load under either.
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = _reconstruct_factory(budget)
        out[(mod, "scalar")] = _scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):
        out[(mod, "_frombuffer")] = _frombuffer_factory(budget)
    return out


# --- torch tensors: storages are read by us, sized before allocation ----------------------------

class _StorageKind:
    def __init__(self, name: str):
        self.name = name

    def dtype(self):
        return _STORAGE_DTYPES[self.name]()


def _storage_dtypes() -> dict[str, Callable]:
    names = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
             "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
             "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}

    def getter(dtype_name: str) -> Callable:
        def get():
            import torch
            return getattr(torch, dtype_name)
        return get
    return {k: getter(v) for k, v in names.items()}


_STORAGE_DTYPES = _storage_dtypes()


class StorageSource:
    """Raw storage bytes by key: the ``data/`` records of a torch zip, or a legacy file's tail."""

    def read(self, key: str, nbytes: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


def _torch_factories(budget: Budget) -> dict[tuple[str, str], Any]:
    try:
        import torch
        import torch._utils
    except ImportError:  # torch is a dependency, but keep plain numpy files loadable without it
        return {}

    def check_hooks(hooks: Any) -> None:
        if hooks not in (None, {}, ()) and not (isinstance(hooks, dict) and not hooks):
            raise UnsafePickleError("tensor backward hooks refused")

    def rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       hooks: Any = None, metadata: Any = None):
        if not isinstance(storage, torch.storage.TypedStorage):
            raise UnsafePickleError(f"tensor over {type(storage).__name__} refused")
        size, stride = tuple(size) if isinstance(size, (tuple, list)) else size, tuple(stride) if isinstance(stride, (tuple, list)) else stride
        if (type(offset) is not int or offset < 0 or not isinstance(size, tuple) or not isinstance(stride, tuple)
                or len(size) != len(stride) or len(size) > 32
                or not all(type(s) is int and s >= 0 for s in size) or not all(type(s) is int and s >= 0 for s in stride)
                or type(requires_grad) is not bool or (metadata is not None and not isinstance(metadata, dict))):
            raise UnsafePickleError("tensor with malformed size, stride or offset refused")
        check_hooks(hooks)
        if 0 not in size:
            last = offset + sum((s - 1) * st for s, st in zip(size, stride))
            if last >= storage._size():
                raise UnsafePickleError(f"tensor of size {_short(size)} reaches element {last} of a storage of "
                                        f"{storage._size()} elements")
        t = torch.empty(0, dtype=storage.dtype).set_(storage._untyped_storage, offset, size, stride)
        t.requires_grad_(requires_grad) if t.is_floating_point() or not requires_grad else None
        return t

    def rebuild_tensor_v1(storage: Any, offset: Any, size: Any, stride: Any):
        return rebuild_tensor(storage, offset, size, stride)

    def rebuild_parameter(data: Any, requires_grad: Any = True, hooks: Any = None):
        if type(data) is not torch.Tensor or type(requires_grad) is not bool:
            raise UnsafePickleError("parameter refused: not a plain tensor")
        check_hooks(hooks)
        return torch.nn.Parameter(data, requires_grad=requires_grad and data.is_floating_point())

    def torch_size(dims: Any = ()):
        if not isinstance(dims, (tuple, list)) or not all(type(d) is int and d >= 0 for d in dims) or len(dims) > 32:
            raise UnsafePickleError(f"torch.Size({_short(dims)}) refused")
        return torch.Size(dims)

    def load_from_bytes(data: Any):
        # A plain-pickled tensor (mmaction2 score dumps) stores its storage as legacy torch.save bytes.
        if not isinstance(data, bytes):
            raise UnsafePickleError("torch storage bytes refused: not bytes")
        return load_legacy_torch(data, budget)

    out: dict[tuple[str, str], Any] = {
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): rebuild_tensor_v1,
        ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): load_from_bytes,
        ("torch", "Size"): torch_size,
    }
    for name in _STORAGE_DTYPES:
        out[("torch", name)] = _StorageKind(name)
    return out


# --- the unpickler ------------------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    from posec3d.errors import short_repr

    return short_repr(value, limit)


class SafeUnpickler(pickle._Unpickler):  # type: ignore[name-defined]
    """Pure-Python unpickler that resolves only allow-listed globals, builds only checked values and
    stays within a budget proportional to ``source_bytes``."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def __init__(self, file: BinaryIO, source_bytes: int | None = None, *, budget: Budget | None = None,
                 storages: StorageSource | None = None, extra_globals: dict[tuple[str, str], Any] | None = None):
        super().__init__(file)
        if budget is None:
            budget = Budget(source_bytes if source_bytes is not None else _remaining(file))
        self.budget = budget
        self.storages = storages
        self.allowed = {**_factories(budget), **(extra_globals or {})}
        self.torch_loaded = False
        self.inert = tuple(v for v in (extra_globals or {}).values() if isinstance(v, type))
        self.storage_cache: dict[str, Any] = {}
        self.single_sets = 0

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 spellings (`__builtin__.xrange`, ...), as pickle's own find_class maps them
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if module.startswith("torch") and not self.torch_loaded:  # import torch only for files that need it
            self.allowed.update(_torch_factories(self.budget))
            self.torch_loaded = True
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"refusing to load global '{module[:80]}.{name[:80]}'") from None

    def persistent_load(self, pid: Any) -> Any:
        if self.storages is None:
            raise UnsafePickleError("refusing persistent ids (not a plain pickle)")
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], _StorageKind) or not isinstance(pid[2], str) or type(pid[4]) is not int
                or pid[4] < 0 or (len(pid) == 6 and pid[5] is not None)):
            raise UnsafePickleError(f"refusing persistent id {_short(pid)}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in self.storage_cache:
            import torch

            dtype = kind.dtype()
            nbytes = numel * torch.empty(0, dtype=dtype).element_size()
            self.budget.spend(nbytes, f"tensor storage {_short(key)}")
            data = self.storages.read(key, nbytes)
            untyped = torch.UntypedStorage.from_buffer(data, dtype=torch.uint8) if nbytes else torch.UntypedStorage(0)
            self.storage_cache[key] = (kind.name, torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype,
                                                                             _internal=True))
        name, storage = self.storage_cache[key]
        if name != kind.name:
            raise UnsafePickleError(f"storage {_short(key)} used with two dtypes")
        return storage

    def _build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, (_PendingDtype, _PendingArray)) or (self.inert and isinstance(inst, self.inert)):
            inst.__setstate__(state)
        elif type(inst) is collections.OrderedDict and isinstance(state, dict) and all(type(k) is str for k in state):
            inst.__dict__.update(state)  # torch state dicts carry `_metadata` this way
        else:
            raise UnsafePickleError(f"refusing to set the state of a {type(inst).__name__}")
    dispatch[pickle.BUILD[0]] = _build

    def _newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not (self.inert and isinstance(cls, type) and issubclass(cls, self.inert)) or not isinstance(args, tuple):
            raise UnsafePickleError(f"refusing to create a {_short(cls)} object")
        self.append(cls(*args))
    dispatch[pickle.NEWOBJ[0]] = _newobj

    def _newobj_ex(self) -> None:
        raise UnsafePickleError("refusing NEWOBJ_EX")
    dispatch[pickle.NEWOBJ_EX[0]] = _newobj_ex
    dispatch[pickle.INST[0]] = _newobj_ex
    dispatch[pickle.OBJ[0]] = _newobj_ex

    def _bytearray8(self) -> None:
        (n,) = struct.unpack("<Q", self.read(8))
        data = self.read(n)  # reads what is there, never allocates the claim first
        if len(data) != n:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))
    dispatch[pickle.BYTEARRAY8[0]] = _bytearray8

    def _mark(self) -> None:
        if len(self.metastack) >= MAX_DEPTH * 4:
            raise PickleLimitError(f"pickle refused: nested deeper than {MAX_DEPTH} levels")
        pickle._Unpickler.dispatch[pickle.MARK[0]](self)  # type: ignore[attr-defined]
    dispatch[pickle.MARK[0]] = _mark

    def _append(self) -> None:
        value = self.stack.pop()
        target = self.stack[-1]
        if type(target) is not list:
            raise UnsafePickleError(f"refusing to append to a {type(target).__name__}")
        target.append(value)
    dispatch[pickle.APPEND[0]] = _append

    def _appends(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not list:
            raise UnsafePickleError(f"refusing to append to a {type(target).__name__}")
        target.extend(items)
    dispatch[pickle.APPENDS[0]] = _appends

    def _setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set(self.stack[-1], [key, value])
    dispatch[pickle.SETITEM[0]] = _setitem

    def _setitems(self) -> None:
        items = self.pop_mark()
        self._set(self.stack[-1], items)
    dispatch[pickle.SETITEMS[0]] = _setitems

    def _set(self, target: Any, items: list) -> None:
        if type(target) not in (dict, collections.OrderedDict) and not (
                self.inert and isinstance(target, self.inert) and isinstance(target, dict)):
            raise UnsafePickleError(f"refusing to set items of a {type(target).__name__}")
        if len(items) == 2:  # SETITEM, one pair: the common case, checked against the clock now and then
            target[items[0]] = items[1]
            self.single_sets += 1
            if not self.single_sets % _CHUNK:
                self.budget.check_time("dict")
            return
        self.budget.fill(target, zip(items[::2], items[1::2]), "dict")

    def _additems(self) -> None:
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise UnsafePickleError(f"refusing to add items to a {type(target).__name__}")
        self.budget.fill(target, items, "set")
    dispatch[pickle.ADDITEMS[0]] = _additems

    def load(self) -> Any:
        try:
            return _finish(super().load(), self.budget, self.inert)
        except RecursionError:
            raise PickleLimitError(f"pickle refused: nested deeper than {MAX_DEPTH} levels") from None
        except MemoryError:
            raise PickleLimitError(f"pickle refused: would allocate more than {gigabytes(self.budget.max_bytes)}") from None


def _remaining(file: BinaryIO) -> int:
    try:
        pos = file.tell()
        end = file.seek(0, os.SEEK_END)
        file.seek(pos)
        return end - pos
    except (OSError, AttributeError, ValueError):
        return 0


_CONTAINERS = (list, tuple, set, frozenset, dict, collections.OrderedDict)


def _finish(root: Any, budget: Budget, inert: tuple = ()) -> Any:
    """Replace pending numpy values by the checked arrays / dtypes, and refuse results that nest too
    deeply, refer to themselves or expand (through shared references) beyond the item budget.

    Iterative and memoised by identity, so a "billion laughs" DAG costs one visit per distinct object."""
    done: dict[int, tuple[Any, int]] = {}  # id -> (replacement, expanded item count)
    keep: list[Any] = []  # keeps visited objects alive so their ids stay unique
    path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        obj, children_done = stack.pop()
        oid = id(obj)
        if not children_done:
            if oid in done:
                continue
            kids = _children(obj, inert)
            if kids is None:
                done[oid] = (_leaf(obj), len(obj) if type(obj) is range else 1)
                keep.append(obj)
                continue
            path.add(oid)
            if len(path) > MAX_DEPTH:
                raise PickleLimitError(f"pickle refused: nested deeper than {MAX_DEPTH} levels")
            stack.append((obj, True))
            for kid in kids:
                if id(kid) in path:
                    raise UnsafePickleError(f"pickle refused: a {type(kid).__name__} contains itself")
                if id(kid) not in done:
                    stack.append((kid, False))
            continue
        path.discard(oid)
        keep.append(obj)
        done[oid] = _rebuild(obj, done, inert)
        budget.check_items(done[oid][1], "pickle")
    return done[id(root)][0]


def _children(obj: Any, inert: tuple) -> list | None:
    t = type(obj)
    if t in (list, tuple, set, frozenset):
        return list(obj)
    if t in (dict, collections.OrderedDict):
        return [*obj.keys(), *obj.values()]
    if inert and isinstance(obj, inert):
        kids = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
        return kids + ([*obj.keys(), *obj.values()] if isinstance(obj, dict) else [])
    return None


def _leaf(obj: Any) -> Any:
    if isinstance(obj, _PendingDtype):
        return obj.resolve()
    if isinstance(obj, _PendingArray):
        if obj.array is None:
            raise UnsafePickleError("numpy array without data refused")
        return obj.array
    if isinstance(obj, (_Marker, _StorageKind)) or callable(obj) and not isinstance(obj, type(None)) and _is_factory(obj):
        raise UnsafePickleError(f"pickle refused: it returns the constructor {_short(obj)} itself")
    return obj


def _is_factory(obj: Any) -> bool:
    return getattr(obj, "__module__", None) == __name__ and callable(obj) and not isinstance(obj, type)


def _rebuild(obj: Any, done: dict[int, tuple[Any, int]], inert: tuple) -> tuple[Any, int]:
    t = type(obj)
    size = 1
    if t is list:
        for i, kid in enumerate(obj):
            new, n = done[id(kid)]
            size += n
            if new is not kid:
                obj[i] = new
        return obj, size
    if t in (dict, collections.OrderedDict):
        for key in list(obj):
            new_key, nk = done[id(key)]
            value = obj[key]
            new, n = done[id(value)]
            size += nk + n
            if new_key is not key:
                raise UnsafePickleError("pickle refused: a numpy value used as a dict key")
            if new is not value:
                obj[key] = new
        return obj, size
    if t in (tuple, set, frozenset):
        items = []
        changed = False
        for kid in obj:
            new, n = done[id(kid)]
            size += n
            changed |= new is not kid
            items.append(new)
        if changed:
            if t is not tuple:
                raise UnsafePickleError("pickle refused: a numpy value inside a set")
            obj = tuple(items)
        return obj, size
    # an inert stand-in object: its items and attributes
    if isinstance(obj, dict):
        for key in list(obj):
            value = obj[key]
            new, n = done[id(value)]
            size += n + done[id(key)][1]
            if done[id(key)][0] is not key:
                raise UnsafePickleError("pickle refused: a numpy value used as a dict key")
            if new is not value:
                obj[key] = new
    for name, value in list(vars(obj).items() if hasattr(obj, "__dict__") else ()):
        new, n = done[id(value)]
        size += n
        if new is not value:
            setattr(obj, name, new)
    return obj, size


def safe_load(f: BinaryIO, source_bytes: int | None = None, **kwargs: Any) -> Any:
    """Unpickle one object from an open binary file, allowing only plain data within a budget."""
    return SafeUnpickler(f, source_bytes, **kwargs).load()


def safe_loads(data: bytes, **kwargs: Any) -> Any:
    return SafeUnpickler(io.BytesIO(data), len(data), **kwargs).load()


def load_path(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Unpickle a file through a read-only memory map (length claims never allocate)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise pickle.UnpicklingError("empty file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return SafeUnpickler(m, size, **kwargs).load()  # type: ignore[arg-type]


# --- torch files: the zip format of torch.save, and the legacy format inside pickled tensors -----

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _ZipStorages(StorageSource):
    def __init__(self, zf: zipfile.ZipFile, prefix: str):
        self.zf, self.prefix = zf, prefix

    def read(self, key: str, nbytes: int) -> bytes:
        name = f"{self.prefix}data/{key}"
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            raise UnsafePickleError(f"tensor storage {_short(key)} is missing from the file") from None
        if info.file_size != nbytes:
            raise UnsafePickleError(f"tensor storage {_short(key)} holds {info.file_size} bytes, "
                                    f"its tensor claims {nbytes}")
        return self.zf.read(info)


def load_torch_zip(path: str | os.PathLike, extra_globals: dict[tuple[str, str], Any] | None = None) -> Any:
    """Load a ``torch.save`` zip file through the safe unpickler (storages sized before reading)."""
    size = os.path.getsize(path)
    budget = Budget(size)
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        budget.spend(max(0, total - 2 * size), "zip contents")  # stored entries never exceed the file
        pickles = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") == 1]
        if len(pickles) != 1:
            raise pickle.UnpicklingError("zip file without exactly one <name>/data.pkl (not a torch checkpoint)")
        prefix = pickles[0].filename[: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in zf.namelist() and zf.read(order).strip() not in (b"little", b""):
            raise UnsafePickleError("big-endian torch files are not supported")
        data = zf.read(pickles[0])
        return SafeUnpickler(io.BytesIO(data), budget=budget, storages=_ZipStorages(zf, prefix),
                             extra_globals=extra_globals).load()


def load_legacy_torch(data: bytes, budget: Budget) -> Any:
    """The legacy (pre-zip) ``torch.save`` layout: magic, protocol, sys info, the object, the storage
    keys, then each storage as an 8-byte element count and its raw bytes."""
    f = io.BytesIO(data)

    def part(storages: StorageSource | None = None) -> Any:
        return SafeUnpickler(f, budget=budget, storages=storages).load()

    if part() != LEGACY_MAGIC:
        raise UnsafePickleError("not a torch legacy file (bad magic number)")
    if type(part()) is not int:
        raise UnsafePickleError("torch legacy file with a bad protocol version")
    part()  # sys info: a dict of plain values
    # The object refers to storages that only follow it: read it with placeholders, then fill them.
    pending: dict[str, tuple[_StorageKind, int]] = {}

    unpickler = SafeUnpickler(f, budget=budget, storages=StorageSource())
    cache = unpickler.storage_cache

    def persistent_load(pid: Any) -> Any:
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], _StorageKind) or not isinstance(pid[2], str) or type(pid[4]) is not int
                or pid[4] < 0 or (len(pid) == 6 and pid[5] is not None)):
            raise UnsafePickleError(f"refusing persistent id {_short(pid)}")
        import torch

        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in cache:
            dtype = kind.dtype()
            nbytes = numel * torch.empty(0, dtype=dtype).element_size()
            budget.spend(nbytes, f"tensor storage {_short(key)}")
            if nbytes > len(data):
                raise UnsafePickleError(f"tensor storage {_short(key)} claims {nbytes} bytes in a "
                                        f"{len(data)}-byte record")
            untyped = torch.UntypedStorage(nbytes)
            cache[key] = (kind.name, torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True))
            pending[key] = (torch.empty(0, dtype=dtype).element_size(), nbytes)
        return cache[key][1]

    unpickler.persistent_load = persistent_load  # type: ignore[method-assign]
    obj = unpickler.load()
    keys = part()
    import torch

    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(pending):
        raise UnsafePickleError("torch legacy file: storage keys do not match the object")
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8) or b"\0" * 8)
        element_size, nbytes = pending[key]
        raw = f.read(nbytes)
        if len(raw) != nbytes or count * element_size != nbytes:
            raise UnsafePickleError(f"torch legacy file: storage {_short(key)} is truncated")
        if nbytes:
            cache[key][1]._untyped_storage.copy_(torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8))
    return obj
