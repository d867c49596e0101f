"""The fast paths of `test` and `train` (engine.speedups) against the plain paths, on real data.

Testing: the released SlowOnly NTU60 joint checkpoint (shared/golden/models) over the real NTU
skeletons of shared/data/skeleton, plain eval (no_grad, BN, default layout, one sample per batch)
against the fast path (folded BN, channels-last 3D, inference mode, all samples in one batch).
Training: the narrow X3D of the engine tests on real MSR Action3D skeletons, speed-ups on vs off.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from posec3d.data.annotations import load_annotation_file, save_annotations
from posec3d.engine.config import load_config
from posec3d.engine.speedups import EvalSpeedups, prepare_for_testing, train_speedups
from posec3d.engine.tester import test as run_test
from posec3d.engine.trainer import train
from posec3d.errors import ConfigError
from posec3d.models import build_model

REPO = Path(__file__).resolve().parents[2]
SLOWONLY = REPO / "configs" / "ntu60_xsub" / "slowonly_r50_joint.py"
X3D_CONFIG = Path(__file__).resolve().parent / "configs" / "msr_deterministic.py"
PLAIN_TEST = ["test_speedups.fuse_bn=False", "test_speedups.channels_last=False", "test_speedups.inference_mode=False",
              "test_speedups.views_per_forward=None"]
PLAIN_TRAIN = ["train_speedups.channels_last=False", "train_speedups.fused_optimizer=False"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def slowonly_ckpt(golden) -> Path:
    return golden / "models" / "slowonly_r50_ntu60_xsub_keypoint.pth"


@pytest.fixture(scope="module")
def ntu_options(data_dir) -> list[str]:
    ann = data_dir / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl"
    # One 32-frame clip x flip per video keeps the 3 videos x 2 paths of SlowOnly-R50 under ~20 s.
    return [f"data.test.ann_file={ann}", "data.test.split=xsub_val", "data.workers_per_gpu=0",
            "data.test.pipeline.0.clip_len=32"]


def test_fast_test_path_equals_plain_eval_on_the_released_slowonly(slowonly_ckpt, ntu_options, data_dir):
    plain = run_test(load_config(SLOWONLY, ntu_options + PLAIN_TEST), slowonly_ckpt, num_clips=1, flip=True,
                     batch_size=1)
    fast = run_test(load_config(SLOWONLY, ntu_options), slowonly_ckpt, num_clips=1, flip=True, batch_size=3)
    a, b = np.stack(plain.scores), np.stack(fast.scores)
    assert a.shape == b.shape == (3, 60)
    assert np.abs(a - b).max() < 1e-4
    assert np.allclose(b.sum(1), 1.0, atol=1e-5)  # still 'prob' averages over the 2 views
    assert plain.metrics == fast.metrics
    # Scores come back in dataset order on both paths.
    labels = [a["label"] for a in load_annotation_file(data_dir / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl")
              ["annotations"]]
    assert list(fast.labels) == labels


def test_prepare_for_testing_folds_every_bn_and_goes_channels_last(slowonly_ckpt):
    cfg = load_config(SLOWONLY)
    model = prepare_for_testing(build_model(cfg["model"]), EvalSpeedups.from_config(cfg))
    assert not any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    conv = model.backbone.conv1.conv
    assert conv.bias is not None and conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    from posec3d.models.fuse import ConvActivation

    # ReLUs and residual adds run inside the convolutions (stem 1 + 13 bottlenecks x 3), unless turned off.
    assert sum(isinstance(m, ConvActivation) for m in model.modules()) == (40 if torch.backends.mkldnn.is_available() else 0)
    unfused = prepare_for_testing(build_model(cfg["model"]),
                                  EvalSpeedups.from_config(load_config(SLOWONLY, ["test_speedups.fuse_activations=False"])))
    assert not any(isinstance(m, ConvActivation) for m in unfused.modules())
    # On CPU one view per forward (feature maps small enough to be reused from the heap) ...
    assert model.max_testing_views == 1
    # ... unless turned off, or the config chose its own max_testing_views.
    whole = prepare_for_testing(build_model(cfg["model"]), EvalSpeedups.from_config(
        load_config(SLOWONLY, ["test_speedups.views_per_forward=None"])))
    assert whole.max_testing_views is None
    own = load_config(SLOWONLY, ["model.test_cfg.max_testing_views=4"])
    assert prepare_for_testing(build_model(own["model"]), EvalSpeedups.from_config(own)).max_testing_views == 4
    for bad in ("0", "2.5", "True"):
        with pytest.raises(ConfigError, match="views_per_forward"):
            EvalSpeedups.from_config(load_config(SLOWONLY, [f"test_speedups.views_per_forward={bad}"]))
    off = EvalSpeedups.from_config(load_config(SLOWONLY, PLAIN_TEST))
    plain = prepare_for_testing(build_model(cfg["model"]), off)
    # stem 1 + 13 bottlenecks x 3 + 3 downsample shortcuts
    assert sum(isinstance(m, nn.BatchNorm3d) for m in plain.modules()) == 43 and not plain.channels_last


def test_train_speedups_per_family_and_config_keys():
    cpu = torch.device("cpu")
    for family, expected in (("ResNet3dSlowOnly", True), ("X3D", True), ("C3D", False)):
        s = train_speedups({}, {"backbone": {"type": family}}, cpu)
        assert s.channels_last is expected and not s.fused_optimizer and not s.compile
        assert s.keep_freed_memory is (family == "ResNet3dSlowOnly")  # the one family measured
    assert not train_speedups({}, {"backbone": {"type": "ResNet3dSlowOnly"}}, torch.device("cuda")).keep_freed_memory
    assert not train_speedups({"train_speedups": {"keep_freed_memory": False}},
                              {"backbone": {"type": "ResNet3dSlowOnly"}}, cpu).keep_freed_memory
    off = train_speedups({"train_speedups": {"channels_last": False, "fused_optimizer": True}},
                         {"backbone": {"type": "X3D"}}, cpu)
    assert not off.channels_last and off.fused_optimizer
    with pytest.raises(ConfigError, match="train_speedups"):
        train_speedups({"train_speedups": {"channel_last": True}}, {"backbone": {"type": "X3D"}}, cpu)
    with pytest.raises(ConfigError, match="True, False or 'auto'"):
        train_speedups({"train_speedups": {"channels_last": "yes"}}, {"backbone": {"type": "X3D"}}, cpu)


@pytest.fixture(scope="module")
def msr_small(data_dir, tmp_path_factory) -> list[str]:
    raw = load_annotation_file(data_dir / "datasets" / "msr_action3d" / "msr_action3d_kinect20_proj2d.pkl")
    ids = raw["split"]["xsub_train"][:16]
    path = tmp_path_factory.mktemp("msr") / "msr16.pkl"
    save_annotations(path, [a for a in raw["annotations"] if a["frame_dir"] in set(ids)], split={"xsub_train": ids})
    return [f"data.train.dataset.ann_file={path}", "data.train.dataset.split=xsub_train", "data.workers_per_gpu=0",
            "total_epochs=1"]


def test_training_fast_path_matches_the_plain_one(msr_small, tmp_path):
    """Channels-last (X3D's default), the fused SGD kernel and the kept freed memory give the
    weights of the plain path up to rounding, and the checkpoint is written in the plain layout
    either way."""
    fast = train(load_config(X3D_CONFIG, msr_small + ["train_speedups.fused_optimizer=True",
                                                      "train_speedups.keep_freed_memory=True"]),
                 tmp_path / "fast", seed=0, echo=lambda _m: None)
    plain = train(load_config(X3D_CONFIG, msr_small + PLAIN_TRAIN), tmp_path / "plain", seed=0,
                  echo=lambda _m: None)
    assert fast.iterations == plain.iterations == 2
    a = torch.load(tmp_path / "fast" / "latest.pth", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "plain" / "latest.pth", weights_only=True)["state_dict"]
    for k, v in a.items():
        assert v.is_contiguous(), k
        assert torch.allclose(v.float(), b[k].float(), atol=1e-5, rtol=1e-4), k
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert changed, "the two paths were the same path"
