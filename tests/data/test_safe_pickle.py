"""The bounded, restricted unpickler in-process: real data loads exactly as pickle would load it, and
each hostile construction (tests/hostile_files.py) is refused with the right kind of error, fast."""
from __future__ import annotations

import collections
import io
import pickle
import time

import numpy as np
import pytest
import torch

from posec3d.safe_pickle import PickleLimitError, UnsafePickleError, load_legacy_torch, safe_loads, Budget
from tests import hostile_files as H


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
                and a.flags.f_contiguous == b.flags.f_contiguous and np.array_equal(a, b, equal_nan=True))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and (a == b or a != a)


PLAIN = {
    "f4": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    "f2": np.linspace(0, 1, 5, dtype=np.float16),
    "big-endian": np.arange(6, dtype=">f8"),
    "fortran": np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4)),
    "bool": np.array([True, False, True]),
    "u1": np.arange(255, dtype=np.uint8),
    "c8": np.array([1 + 2j], np.complex64),
    "empty": np.zeros((0, 17, 2), np.float32),
    "scalars": [np.float32(1.5), np.int64(-3), np.bool_(True), np.float64("nan")],
    "builtins": [1, 2.5, "x", b"raw", bytearray(b"ba"), (1, 2), {3}, frozenset({4}), 1 + 2j, None, True, 10**30,
                 slice(1, 5, 2), range(3)],
    "ordered": collections.OrderedDict(a=1, b=[2]),
    "tensor": torch.arange(6.0).reshape(2, 3)[:, 1:],
}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_loads_exactly_as_pickle_loads_it(protocol):
    data = pickle.dumps(PLAIN, protocol=protocol)
    assert _same(safe_loads(data), pickle.loads(data))


def test_shared_references_stay_shared():
    shared = np.ones(3, np.float32)
    loaded = safe_loads(pickle.dumps({"a": shared, "b": shared, "t": (shared, shared)}, protocol=4))
    assert loaded["a"] is loaded["b"] is loaded["t"][0] is loaded["t"][1]


REFUSED = {
    "forged-pointer-reconstruct": (H.forged_pointer_array, UnsafePickleError, "'O8' refused"),
    "forged-pointer-frombuffer": (H.forged_pointer_frombuffer, UnsafePickleError, "'O8' refused"),
    "forged-pointer-scalar": (H.forged_pointer_scalar, UnsafePickleError, "'O8' refused"),
    "flagged-float": (H.flagged_float_array, UnsafePickleError, "flags"),
    "object-array": (H.object_dtype_array, UnsafePickleError, "'O8' refused"),
    "structured": (H.structured_dtype_array, UnsafePickleError, "'V4' refused"),
    "array-claims-1e12": (H.huge_array_claim, PickleLimitError, "would allocate 3,725 GB"),
    "reconstruct-shape": (H.huge_reconstruct_shape, UnsafePickleError, "only plain ndarrays"),
    "bytearray-2GB": (H.huge_bytearray, UnsafePickleError, "bytearray(2000000000) refused"),
    "range-1e12": (H.huge_range, PickleLimitError, "would expand to 1,000,000,000,000 items"),
    "billion-laughs": (H.billion_laughs, PickleLimitError, "would expand to"),
    "encode-amplifier": (H.encode_amplifier, PickleLimitError, "would allocate"),
    "nested-1e5": (H.deep_nesting, PickleLimitError, "nested deeper than 64"),
    "self-containing": (H.self_containing, UnsafePickleError, "contains itself"),
    "torch-storage-claim": (H.torch_storage_claim, PickleLimitError, "tensor storage '0' refused"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_values_are_refused_quickly(case, tmp_path):
    build, error, words = REFUSED[case]
    start = time.perf_counter()
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        safe_loads(H.annotation_with(build()))
    assert time.perf_counter() - start < 5


def test_reducers_that_run_code_are_refused(tmp_path):
    marker = tmp_path / "MARKER"
    for module, name in (("posix", "system"), ("os", "system"), ("builtins", "eval"), ("subprocess", "call")):
        with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
            safe_loads(H.annotation_with(H.runs_code(marker, module, name)))
    assert not marker.exists()


def test_binbytes8_claim_does_not_allocate():
    with pytest.raises(Exception) as e:
        safe_loads(H.annotation_with(H.bytes8_claim()))
    assert not isinstance(e.value, MemoryError)


def test_legacy_torch_bytes_load_and_are_sized():
    buf = io.BytesIO()
    t = torch.arange(10, dtype=torch.int16)
    torch.save(t, buf, _use_new_zipfile_serialization=False)
    assert torch.equal(load_legacy_torch(buf.getvalue(), Budget(len(buf.getvalue()))), t)
    with pytest.raises(UnsafePickleError, match="bad magic"):
        load_legacy_torch(pickle.dumps(1, protocol=2) + buf.getvalue(), Budget(100))


def test_budget_grows_with_the_file():
    """A legitimately large array loads: the limits are relative to the file size."""
    big = np.zeros(80 * 2**20 // 4, np.float32)  # 80 MB of data in an 80 MB file
    assert safe_loads(pickle.dumps(big, protocol=4)).shape == big.shape


@pytest.mark.parametrize("container", ["dict", "set"])
def test_colliding_hash_keys_are_cut_off_at_the_deadline(container):
    """Integers that are multiples of 2**61 - 1 all hash to 0: each insertion scans the previous keys.
    Filling in chunks against a deadline turns that quadratic load into a one-line refusal."""
    keys = [k * (2**61 - 1) for k in range(1, 40_001)]
    value = {k: 0 for k in keys[:10]} if container == "dict" else set(keys[:10])  # the same opcodes, fewer keys
    data = pickle.dumps(value, protocol=4)
    from posec3d.safe_pickle import SafeUnpickler

    assert safe_loads(data) == value
    big = pickle.dumps({k: 0 for k in keys} if container == "dict" else set(keys), protocol=4)
    start = time.perf_counter()
    with pytest.raises(PickleLimitError, match="would take more than"):
        SafeUnpickler(io.BytesIO(big), budget=Budget(len(big), seconds=0.5)).load()
    assert time.perf_counter() - start < 5


def test_loading_speed_of_real_data_is_kept(data_dir):
    """The chunked filling costs little on a real file (pure-Python unpickling itself is ~8x slower
    than C pickle; this guards against a further regression)."""
    path = data_dir / "datasets" / "penn_action" / "penn_action_train_gt13_2d.pkl"
    from posec3d.safe_pickle import load_path

    load_path(path)
    start = time.perf_counter()
    load_path(path)
    assert time.perf_counter() - start < 10
