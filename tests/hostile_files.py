"""Hostile files, written opcode by opcode (nothing binary is committed): forged numpy pointers,
memory and time bombs, code-running reducers. Shared by the loader tests and the CLI corpus.

Every payload that could run code would create ``marker`` (a path the test plants and checks).
"""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

PROTO2 = b"\x80\x02"
MARK, STOP, TUPLE, EMPTY_TUPLE, REDUCE, BUILD = b"(", b".", b"t", b")", b"R", b"b"
EMPTY_LIST, APPEND, APPENDS, EMPTY_DICT, SETITEM, SETITEMS = b"]", b"a", b"e", b"}", b"s", b"u"
NONE, TRUE, FALSE, POP = b"N", b"\x88", b"\x89", b"0"


class Raw(bytes):
    """Opcodes spliced into ``enc`` output as they are."""


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def enc(obj) -> bytes:
    """Opcodes for plain Python values (and Raw splices)."""
    if isinstance(obj, Raw):
        return bytes(obj)
    if obj is None:
        return NONE
    if obj is True or obj is False:
        return TRUE if obj else FALSE
    if isinstance(obj, int):
        if -2**31 <= obj < 2**31:
            return b"J" + struct.pack("<i", obj)
        raw = obj.to_bytes((obj.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, str):
        data = obj.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(obj, bytes):
        return b"B" + struct.pack("<I", len(obj)) + obj  # protocol 3 BINBYTES
    if isinstance(obj, tuple):
        return MARK + b"".join(enc(x) for x in obj) + TUPLE
    if isinstance(obj, list):
        return EMPTY_LIST + (MARK + b"".join(enc(x) for x in obj) + APPENDS if obj else b"")
    if isinstance(obj, dict):
        return EMPTY_DICT + (MARK + b"".join(enc(k) + enc(v) for k, v in obj.items()) + SETITEMS if obj else b"")
    raise TypeError(type(obj))


def pickle_of(obj) -> bytes:
    return b"\x80\x03" + enc(obj) + STOP


# --- payloads (each is the opcodes of one value) ---------------------------------------------------

def np_dtype(code: str, state: tuple) -> Raw:
    """``numpy.dtype(code, False, True)`` + BUILD(state): numpy's own hook trusts the state."""
    return Raw(glob("numpy", "dtype") + enc((code, False, True)) + REDUCE + enc(state) + BUILD)


# An object dtype whose state clears NPY_LIST_PICKLE (flags 0): numpy then copies raw bytes into the
# array as PyObject pointers (SIGSEGV on first use with numpy 2.x; a step towards code execution).
FORGED_OBJECT_STATE = (3, "|", None, None, None, -1, -1, 0)
# A float dtype claiming object flags (NPY_ITEM_REFCOUNT and friends): corrupts numpy's state.
FLAGGED_FLOAT_STATE = (3, "|", None, None, None, -1, -1, 63)


def forged_pointer_array() -> Raw:
    """``_reconstruct`` + ``ndarray.__setstate__`` with raw bytes as "object" data: pointers 0x4141..."""
    return Raw(glob("numpy.core.multiarray", "_reconstruct") + enc((Raw(glob("numpy", "ndarray")), (0,), b"b"))
               + REDUCE + enc((1, (2,), np_dtype("O8", FORGED_OBJECT_STATE), False, b"A" * 16)) + BUILD)


def flagged_float_array() -> Raw:
    return Raw(glob("numpy.core.multiarray", "_reconstruct") + enc((Raw(glob("numpy", "ndarray")), (0,), b"b"))
               + REDUCE + enc((1, (2,), np_dtype("f8", FLAGGED_FLOAT_STATE), False, b"A" * 16)) + BUILD)


def forged_pointer_frombuffer() -> Raw:
    return Raw(glob("numpy.core.numeric", "_frombuffer")
               + enc((b"A" * 16, np_dtype("O8", FORGED_OBJECT_STATE), (2,), "C")) + REDUCE)


def forged_pointer_scalar() -> Raw:
    return Raw(glob("numpy.core.multiarray", "scalar") + enc((np_dtype("O8", FORGED_OBJECT_STATE), b"A" * 8))
               + REDUCE)


def object_dtype_array() -> Raw:
    """An honest object array (numpy itself would rebuild it by calling what it holds)."""
    return Raw(glob("numpy.core.multiarray", "_reconstruct") + enc((Raw(glob("numpy", "ndarray")), (0,), b"b"))
               + REDUCE + enc((1, (1,), np_dtype("O8", (3, "|", None, None, None, -1, -1, 63)), False, [1]))
               + BUILD)


def structured_dtype_array() -> Raw:
    state = (3, "|", None, ("a",), {"a": (Raw(np_dtype("f4", (3, "<", None, None, None, -1, -1, 0))), 0)}, 4, 1, 16)
    return Raw(glob("numpy.core.multiarray", "_reconstruct") + enc((Raw(glob("numpy", "ndarray")), (0,), b"b"))
               + REDUCE + enc((1, (1,), np_dtype("V4", state), False, b"AAAA")) + BUILD)


def huge_array_claim(elements: int = 10**12) -> Raw:
    """An array whose shape claims ``elements`` float32 values but carries 16 bytes."""
    plain = (3, "<", None, None, None, -1, -1, 0)
    return Raw(glob("numpy.core.multiarray", "_reconstruct") + enc((Raw(glob("numpy", "ndarray")), (0,), b"b"))
               + REDUCE + enc((1, (elements,), np_dtype("f4", plain), False, b"A" * 16)) + BUILD)


def huge_reconstruct_shape() -> Raw:
    return Raw(glob("numpy.core.multiarray", "_reconstruct")
               + enc((Raw(glob("numpy", "ndarray")), (10**11,), b"b")) + REDUCE)


def huge_bytearray(n: int = 2 * 10**9) -> Raw:
    return Raw(glob("builtins", "bytearray") + enc((n,)) + REDUCE)


def huge_range() -> Raw:
    return Raw(glob("builtins", "range") + enc((10**12,)) + REDUCE)


def bytes8_claim() -> Raw:
    """BINBYTES8 claiming 2**40 bytes (a C unpickler allocates the claim before reading)."""
    return Raw(b"\x8e" + struct.pack("<Q", 2**40) + b"AAAA")


def billion_laughs(levels: int = 40, first_memo: int = 100) -> Raw:
    """A list that, expanded, holds 2**levels strings: each level is [previous, previous] via the memo."""
    out = enc("lol") + put(first_memo) + POP
    for i in range(levels):
        out += EMPTY_LIST + MARK + get(first_memo + i) + get(first_memo + i) + APPENDS + put(first_memo + i + 1) + POP
    return Raw(out + get(first_memo + levels))


def encode_amplifier(copies: int = 20000, size: int = 2**20) -> Raw:
    """``_codecs.encode`` of one memoised 1 MB string, ``copies`` times: 20 GB from a 1.2 MB file."""
    call = glob("_codecs", "encode") + MARK + get(900) + enc("latin1") + TUPLE + REDUCE
    return Raw(enc("A" * size) + put(900) + EMPTY_LIST + MARK + call * copies + APPENDS)


def deep_nesting(levels: int = 100_000) -> Raw:
    return Raw(EMPTY_LIST * levels + APPEND * (levels - 1))


def self_containing() -> Raw:
    return Raw(EMPTY_LIST + put(7) + get(7) + APPEND)


def runs_code(marker: Path, module: str = "posix", name: str = "system") -> Raw:
    """``os.system('touch MARKER')``: the classic reducer payload."""
    return Raw(glob(module, name) + enc((f"touch {marker}",)) + REDUCE)


def torch_storage_claim() -> Raw:
    """A plain-pickled tensor whose legacy storage claims 10**12 floats."""
    legacy = (b"\x80\x02" + enc(0x1950A86A20F9469CFC6C) + b"." + b"\x80\x02" + enc(1001) + b"."
              + b"\x80\x02" + enc({"protocol_version": 1001, "little_endian": True}) + b"."
              + b"\x80\x02" + glob("torch._utils", "_rebuild_tensor_v2")
              + MARK + b"(" + enc("storage") + glob("torch", "FloatStorage") + enc("0") + enc("cpu")
              + enc(10**12) + NONE + TUPLE + b"Q" + enc(0) + enc((10**12,)) + enc((1,)) + FALSE
              + Raw(glob("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE) + TUPLE + REDUCE + b"."
              + b"\x80\x02" + enc(["0"]) + b".")
    return Raw(glob("torch.storage", "_load_from_bytes") + enc((legacy,)) + REDUCE)


# --- files -------------------------------------------------------------------------------------

def annotation_with(value: Raw | object, where: str = "label") -> bytes:
    """A one-sample annotation file (dict with split + annotations) carrying ``value`` as ``where``."""
    sample = {"frame_dir": "clip", "label": 0, "img_shape": (64, 64), "original_shape": (64, 64),
              "total_frames": 2}
    sample[where] = value
    return pickle_of({"split": {"train": ["clip"], "val": ["clip"]}, "annotations": [sample]})


def torch_zip_with(data_pkl: bytes, extra: dict[str, bytes] | None = None, deflate: bool = False) -> bytes:
    """A torch.save-style zip whose ``archive/data.pkl`` is ``data_pkl``."""
    buf = io.BytesIO()
    mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", mode) as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", b"little")
        for name, data in (extra or {}).items():
            zf.writestr(f"archive/{name}", data)
    return buf.getvalue()


def checkpoint_with(value: Raw | object) -> bytes:
    return torch_zip_with(b"\x80\x02" + enc({"meta": value, "state_dict": {}}) + STOP)


def checkpoint_storage_claim(numel: int = 10**11) -> bytes:
    """A zip checkpoint whose one tensor claims ``numel`` floats over a 16-byte record."""
    tensor = (glob("torch._utils", "_rebuild_tensor_v2") + MARK + MARK + enc("storage")
              + glob("torch", "FloatStorage") + enc("0") + enc("cpu") + enc(numel) + TUPLE + b"Q"
              + enc(0) + enc((numel,)) + enc((1,)) + FALSE + glob("collections", "OrderedDict") + EMPTY_TUPLE
              + REDUCE + TUPLE + REDUCE)
    data = b"\x80\x02" + enc({"state_dict": {"w": Raw(tensor)}}) + STOP
    return torch_zip_with(data, {"data/0": b"A" * 16})


def zip_bomb_checkpoint(claimed: int = 0xFFFFFF00) -> bytes:
    """A zip checkpoint whose deflated storage record claims ~4 GB once inflated (sizes patched in)."""
    data = bytearray(torch_zip_with(b"\x80\x02" + enc({"state_dict": {}}) + STOP, {"data/0": bytes(4096)},
                                    deflate=True))
    name = b"archive/data/0"
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + len(name)] == name:
                data[start + size_at:start + size_at + 4] = struct.pack("<I", claimed)
            start += 4
    return bytes(data)
