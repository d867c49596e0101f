"""Checkpoint reading/writing in the pyskl / mmaction2 layouts, strict and non-strict loading."""
from __future__ import annotations

import copy
import os
import pickle

import pytest
import torch

from posec3d.errors import CheckpointError
from posec3d.models import build_model
from posec3d.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

X3D = "x3d_shallow_ntu60_xsub_joint"  # the smallest golden checkpoint (1.1 MB)


class NotATensor:
    """A custom class pickled into a checkpoint: loading it needs arbitrary code execution."""

    def __init__(self, value):
        self.value = value


@pytest.fixture(scope="module")
def x3d_state(golden) -> dict:
    raw = torch.load(golden / "models" / f"{X3D}.pth", weights_only=True)
    return raw["state_dict"]


@pytest.fixture
def x3d_model(summary):
    return build_model(summary[X3D]["model_cfg"])


def _assert_equal_state(model, state):
    own = model.state_dict()
    assert list(own) == list(state)
    for k, v in state.items():
        assert torch.equal(own[k], v), k


def test_golden_checkpoint_loads_strictly_with_meta(golden, x3d_model, x3d_state):
    ckpt = load_checkpoint(x3d_model, golden / "models" / f"{X3D}.pth")
    assert ckpt["meta"]["mmaction2_version"] == "1.2.0"
    _assert_equal_state(x3d_model, x3d_state)


@pytest.mark.parametrize("layout", ["bare", "module_prefix", "mmengine_training", "pyskl_training"])
def test_checkpoint_layouts(tmp_path, x3d_model, x3d_state, layout):
    """Bare state dicts, DDP 'module.' prefixes and training checkpoints with optimizer state."""
    state = copy.deepcopy(x3d_state)
    if layout == "bare":
        obj = state
    elif layout == "module_prefix":
        obj = {"meta": {"epoch": 3}, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    elif layout == "mmengine_training":
        obj = {"meta": {"epoch": 24, "cfg": "model = dict(...)"}, "state_dict": state,
               "message_hub": {"log_scalars": {}, "runtime_info": {"epoch": 24}},
               "optimizer": {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.1}]},
               "param_schedulers": [{"T_max": 24, "eta_min": 0}]}
    else:
        obj = {"meta": {"mmcv_version": "1.7.2", "epoch": 24}, "state_dict": state,
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.4, "momentum": 0.9}]}}
    path = tmp_path / f"{layout}.pth"
    torch.save(obj, path)
    load_checkpoint(x3d_model, path)
    _assert_equal_state(x3d_model, x3d_state)


def test_real_pyskl_bare_checkpoint_of_another_model_gives_one_clear_error(data_dir, x3d_model):
    """pyskl's real ST-GCN++ checkpoint (a bare state dict) does not fit X3D: one error lists it all."""
    path = data_dir / "checkpoints" / "pyskl_stgcnpp_hagrid_gesture.pth"
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(x3d_model, path)
    msg = str(err.value)
    # 418 tensors, of which only the two classifier tensors share names with X3D's 213 keys.
    assert str(path) in msg and "missing keys (211)" in msg and "unexpected keys (416)" in msg
    assert ("shape mismatches (2): cls_head.fc_cls.weight: checkpoint (40, 128) vs model (60, 216), "
            "cls_head.fc_cls.bias: checkpoint (40,) vs model (60,)") in msg


def test_wrong_config_lists_missing_unexpected_and_shapes(golden, summary):
    cfg = copy.deepcopy(summary[X3D]["model_cfg"])
    cfg["cls_head"]["num_classes"] = 99
    cfg["backbone"]["stage_blocks"] = [2, 4, 3]  # one block fewer in layer2 -> keys missing from the model
    model = build_model(cfg)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, golden / "models" / f"{X3D}.pth")
    msg = str(err.value)
    assert "unexpected keys (18): backbone.layer2.4.conv1.conv.weight" in msg
    assert "cls_head.fc_cls.weight: checkpoint (60, 216) vs model (99, 216)" in msg
    assert "cls_head.fc_cls.bias: checkpoint (60,) vs model (99,)" in msg
    assert "missing keys" not in msg


def test_non_strict_fine_tuning_skips_mismatched_classifier(golden, summary, x3d_state):
    cfg = copy.deepcopy(summary[X3D]["model_cfg"])
    cfg["cls_head"]["num_classes"] = 15
    model = build_model(cfg)
    fresh_fc = model.cls_head.fc_cls.weight.detach().clone()
    with pytest.warns(UserWarning, match=r"skipped shape-mismatched tensors \(2\): cls_head.fc_cls.weight"):
        load_checkpoint(model, golden / "models" / f"{X3D}.pth", strict=False)
    state = model.state_dict()
    for k, v in x3d_state.items():
        if not k.startswith("cls_head"):
            assert torch.equal(state[k], v), k
    assert torch.equal(model.cls_head.fc_cls.weight, fresh_fc)


def test_non_strict_ignores_missing_bn_counters(tmp_path, x3d_model, x3d_state, recwarn):
    old = {k: v for k, v in x3d_state.items() if not k.endswith("num_batches_tracked")}
    torch.save({"state_dict": old}, tmp_path / "old.pth")
    load_checkpoint(x3d_model, tmp_path / "old.pth", strict=False)
    assert not [w for w in recwarn if "missing" in str(w.message)]
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(x3d_model, tmp_path / "old.pth", strict=True)


def test_unsafe_checkpoint_refused_unless_allowed(tmp_path, x3d_model, x3d_state):
    path = tmp_path / "unsafe.pth"
    torch.save({"meta": {"note": NotATensor(7)}, "state_dict": x3d_state}, path)
    with pytest.raises(CheckpointError, match="allow_unsafe=True") as err:
        load_checkpoint(x3d_model, path)
    assert str(path) in str(err.value)
    ckpt = load_checkpoint(x3d_model, path, allow_unsafe=True)
    assert ckpt["meta"]["note"].value == 7
    _assert_equal_state(x3d_model, x3d_state)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", pickle.dumps([1, 2, 3])],
                         ids=["empty", "text", "pickled_list"])
def test_unreadable_files(tmp_path, x3d_model, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(x3d_model, path)
    with pytest.raises(CheckpointError, match="file not found"):
        load_checkpoint(x3d_model, tmp_path / "absent.pth")


def test_save_checkpoint_layout_roundtrip_and_atomic(tmp_path, x3d_model, x3d_state):
    x3d_model.load_state_dict(x3d_state)
    path = tmp_path / "out" / "epoch_1.pth"
    save_checkpoint(path, x3d_model.state_dict(), meta={"epoch": 1, "posec3d_version": "0.1.0"},
                    optimizer={"param_groups": [{"lr": 0.1}]})
    assert os.listdir(path.parent) == ["epoch_1.pth"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["meta", "state_dict", "optimizer"]
    assert raw["meta"] == {"epoch": 1, "posec3d_version": "0.1.0"}
    assert list(raw["state_dict"]) == list(x3d_state)
    assert read_checkpoint(path)["optimizer"]["param_groups"][0]["lr"] == 0.1
    # A DDP-wrapped state dict is saved without the prefix, as mmengine does.
    save_checkpoint(path, {f"module.{k}": v for k, v in x3d_state.items()})
    assert list(torch.load(path, weights_only=True)["state_dict"]) == list(x3d_state)


def test_mmengine_training_checkpoint_with_message_hub_objects_loads_safely(tmp_path, monkeypatch, x3d_model,
                                                                            x3d_state):
    """mmengine pickles HistoryBuffer objects and numpy values beside the weights: no flag needed."""
    import sys
    import types

    import numpy as np

    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:  # the shape of mmengine's class: numpy histories
        def __init__(self):
            self._log_history, self._count_history, self.max_length = np.array([0.7, 0.6]), np.array([1, 1]), 100

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    path = tmp_path / "epoch_24.pth"
    torch.save({"meta": {"epoch": 24, "seed": np.int64(255), "dataset_meta": {"num_classes": 60}},
                "state_dict": x3d_state,
                "message_hub": {"log_scalars": {"train/loss": HistoryBuffer()}, "runtime_info": {"epoch": 24}},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.2}]}, "param_schedulers": [{"T_max": 24}]},
               path)
    monkeypatch.delitem(sys.modules, module.__name__)  # loading must not need mmengine
    ckpt = load_checkpoint(x3d_model, path)
    _assert_equal_state(x3d_model, x3d_state)
    assert ckpt["meta"]["seed"] == 255
    buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert type(buffer).__name__ == "HistoryBuffer" and buffer.state["max_length"] == 100


def test_load_from_reports_skipped_tensors_and_the_reinitialised_input_conv_in_one_line_each():
    """Fine-tuning from a checkpoint of another joint count: the input conv cannot load, and the user
    is told so explicitly (one line), besides the one-line list of skipped tensors."""
    import warnings as _warnings

    from torch import nn as _nn

    from posec3d.models.checkpoint import load_state

    class Tiny(_nn.Module):
        def __init__(self, joints: int, classes: int):
            super().__init__()
            self.conv1 = _nn.Conv3d(joints, 4, 3)
            self.fc = _nn.Linear(4, classes)

    source = Tiny(20, 5).state_dict()
    target = Tiny(17, 5)
    before = target.conv1.weight.detach().clone()
    with _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        diff = load_state(target, source, strict=False, source="checkpoint k.pth")
    messages = [str(w.message) for w in caught]
    assert diff["mismatched"] and len(messages) == 2 and all("\n" not in m for m in messages)
    assert "input conv conv1.weight re-initialised" in messages[0] and "20 input channels" in messages[0]
    assert "this model 17" in messages[0]
    assert "skipped shape-mismatched tensors (1): conv1.weight" in messages[1]
    assert torch.equal(target.conv1.weight, before) and torch.equal(target.fc.weight, source["fc.weight"])


def test_a_torch_file_without_weights_is_named_as_such(tmp_path):
    path = tmp_path / "meta_only.pth"
    torch.save({"meta": {"epoch": 3}, "note": "no weights"}, path)
    with pytest.raises(CheckpointError, match="no 'state_dict' entry and not a bare state dict"):
        read_checkpoint(path)
