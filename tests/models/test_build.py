"""Building models from pyskl and mmaction2 config spellings; init; BN folding."""
from __future__ import annotations

import copy

import pytest
import torch

from posec3d.errors import ConfigError
from posec3d.models import build_model, fuse_conv_bn

from .conftest import load_golden_model

# pyskl's own config dicts (configs/posec3d/*/joint.py), spelled the pyskl way.
PYSKL_SLOWONLY = dict(
    type="Recognizer3D",
    backbone=dict(type="ResNet3dSlowOnly", in_channels=17, base_channels=32, num_stages=3, out_indices=(2,),
                  stage_blocks=(4, 6, 3), conv1_stride=(1, 1), pool1_stride=(1, 1), inflate=(0, 1, 1),
                  spatial_strides=(2, 2, 2), temporal_strides=(1, 1, 2)),
    cls_head=dict(type="I3DHead", in_channels=512, num_classes=60, dropout=0.5),
    test_cfg=dict(average_clips="prob"))
PYSKL_C3D = dict(type="Recognizer3D",
                 backbone=dict(type="C3D", in_channels=17, base_channels=32, num_stages=3, temporal_downsample=False),
                 cls_head=dict(type="I3DHead", in_channels=256, num_classes=60, dropout=0.5),
                 test_cfg=dict(average_clips="prob"))
PYSKL_X3D = dict(type="Recognizer3D",
                 backbone=dict(type="X3D", gamma_d=1, in_channels=17, base_channels=24, num_stages=3, se_ratio=None,
                               use_swish=False, stage_blocks=(2, 5, 3), spatial_strides=(2, 2, 2)),
                 cls_head=dict(type="I3DHead", in_channels=216, num_classes=60, dropout=0.5),
                 test_cfg=dict(average_clips="prob"))


@pytest.mark.parametrize("pyskl_cfg, golden_name", [
    (PYSKL_SLOWONLY, "slowonly_r50_ntu60_xsub_keypoint"),
    (PYSKL_C3D, "c3d_light_ntu60_xsub_joint"),
    (PYSKL_X3D, "x3d_shallow_ntu60_xsub_joint"),
])
def test_pyskl_spelling_builds_the_same_network(golden_models, summary, pyskl_cfg, golden_name):
    """The pyskl config loads the golden checkpoint strictly and computes the same logits."""
    ours = build_model(dict(model=pyskl_cfg))  # a whole config dict works too
    reference = load_golden_model(golden_models, summary, golden_name).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    assert ours.average_clips == "prob" and ours.num_classes == 60
    x = torch.rand(1, 17, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


def test_mmaction2_spelling_with_harmless_keys_and_test_cfg(summary):
    cfg = copy.deepcopy(summary["slowonly_r50_ntu60_xsub_keypoint"]["model_cfg"])
    cfg["backbone"].update(norm_cfg=dict(type="BN3d", requires_grad=True), act_cfg=dict(type="ReLU", inplace=True),
                           conv_cfg=dict(type="Conv3d"), norm_eval=False, frozen_stages=-1)
    cfg["cls_head"].update(spatial_type="avg", init_std=0.01, loss_cls=dict(type="CrossEntropyLoss"))
    cfg.update(train_cfg=None, test_cfg=dict(average_clips="score", max_testing_views=4),
               data_preprocessor=dict(type="ActionDataPreprocessor", format_shape="NCTHW"))
    model = build_model(cfg)
    assert model.average_clips == "score"  # test_cfg wins over cls_head's 'prob'
    assert model.max_testing_views == 4


@pytest.mark.parametrize("where, key, value, needle", [
    ("backbone", "conv1_strid", (1, 1), "conv1_strid"),
    ("cls_head", "dropout_rati", 0.5, "dropout_rati"),
    ("model", "nek", None, "nek"),
    ("backbone", "depth", 34, "depth 34"),
    ("backbone", "norm_cfg", dict(type="SyncBN"), "SyncBN"),
    ("cls_head", "average_clips", "mean", "average_clips"),
    ("backbone", "type", "ResNet3dFast", "ResNet3dFast"),
])
def test_bad_configs_raise_config_error(where, key, value, needle):
    cfg = copy.deepcopy(PYSKL_SLOWONLY)
    (cfg if where == "model" else cfg[where])[key] = value
    with pytest.raises(ConfigError, match=needle):
        build_model(cfg)


def test_scratch_init_follows_spec(summary):
    """Kaiming fan_out for convs, BN 1/0, zero-init last BN of residual blocks, fc N(0, 0.01)."""
    torch.manual_seed(0)
    model = build_model(PYSKL_SLOWONLY)
    bb = model.backbone
    w = bb.layer3[0].conv1.conv.weight  # (128, 256, 3, 1, 1): fan_out = 128·3
    assert w.std().item() == pytest.approx((2 / (128 * 3)) ** 0.5, rel=0.05)
    assert torch.all(bb.layer2[1].conv3.bn.weight == 0) and torch.all(bb.layer2[1].conv2.bn.weight == 1)
    assert model.cls_head.fc_cls.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert torch.all(model.cls_head.fc_cls.bias == 0)


def test_frozen_stages_and_norm_eval():
    cfg = copy.deepcopy(PYSKL_SLOWONLY)
    cfg["backbone"].update(frozen_stages=1, norm_eval=True)
    model = build_model(cfg).train()
    bb = model.backbone
    assert not any(p.requires_grad for p in bb.conv1.parameters())
    assert not any(p.requires_grad for p in bb.layer1.parameters())
    assert all(p.requires_grad for p in bb.layer2.parameters())
    assert not bb.layer3[0].conv1.bn.training and model.cls_head.training


@pytest.mark.parametrize("name", ["x3d_shallow_ntu60_xsub_joint", "slowonly_r50_ntu60_xsub_keypoint"])
def test_fuse_conv_bn_keeps_outputs(golden_models, summary, name):
    model = load_golden_model(golden_models, summary, name).eval()
    x = torch.rand(2, 17, 16, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        fused = fuse_conv_bn(model)
        assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in fused.modules())
        torch.testing.assert_close(fused(x), expected, atol=1e-4, rtol=1e-4)


def test_fuse_conv_bn_rgbpose_including_transposed_laterals(golden_models, summary):
    model = load_golden_model(golden_models, summary, "rgbpose_conv3d_ntu60_slim").eval()
    gen = torch.Generator().manual_seed(3)
    imgs, heat = torch.rand(1, 3, 8, 64, 64, generator=gen) * 255, torch.rand(1, 17, 32, 16, 16, generator=gen)
    with torch.no_grad():
        expected = model(imgs, heat)
        fused = fuse_conv_bn(model)
        assert isinstance(fused.backbone.pose_path.layer1_lateral.bn, torch.nn.Identity)
        out = fused(imgs, heat)
    for part in ("rgb", "pose"):
        torch.testing.assert_close(out[part], expected[part], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_spatial_max_pool_equals_max_pool_3d(stride, channels_last):
    from posec3d.models.layers import SpatialMaxPool

    x = torch.randn(2, 5, 3, 11, 12, generator=torch.Generator().manual_seed(stride))
    expected = torch.nn.MaxPool3d((1, 3, 3), (1, stride, stride), (0, 1, 1))(x)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        assert torch.equal(SpatialMaxPool(stride)(x), expected)
    # With autograd: same values, and the reference's gradient (ties go to one winner).
    x = torch.relu(x).requires_grad_()  # ReLU zeros make ties common
    ref = x.detach().clone().requires_grad_()
    out = SpatialMaxPool(stride)(x)
    torch.nn.MaxPool3d((1, 3, 3), (1, stride, stride), (0, 1, 1))(ref).backward(torch.ones_like(out))
    out.backward(torch.ones_like(out))
    assert torch.equal(x.grad, ref.grad)


@pytest.mark.parametrize("shape", [(1, 4, 2, 1, 2), (1, 3, 1, 2, 1), (2, 16, 4, 9, 7)])
def test_channels_last_max_pool_without_indices_on_small_and_odd_maps(shape):
    from posec3d.models.layers import SpatialMaxPool

    x = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape)))
    x[0, 0, 0, 0, 0] = float("-inf")
    expected = torch.nn.MaxPool3d((1, 3, 3), (1, 1, 1), (0, 1, 1))(x)
    with torch.inference_mode():
        out = SpatialMaxPool(1)(x.contiguous(memory_format=torch.channels_last_3d))
    assert torch.equal(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)  # what the next convolution wants


def test_optimize_for_inference_keeps_outputs(golden_models, summary, rand_inputs):
    """BN folding + channels-last 3D on the golden SlowOnly: same logits as mmaction2 (README tolerance)."""
    import numpy as np

    from posec3d.models import optimize_for_inference

    from .conftest import golden_outputs

    name = "slowonly_r50_ntu60_xsub_keypoint"
    model = optimize_for_inference(load_golden_model(golden_models, summary, name))
    assert model.channels_last and model.backbone.conv1.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    x = torch.from_numpy(rand_inputs["rand17_u8"].astype(np.float32) / 255)[:, 0]
    with torch.inference_mode():
        logits = model(x)
    np.testing.assert_allclose(logits.numpy(), golden_outputs(golden_models, name)["rand/cls_score"],
                               atol=1e-4, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = copy.deepcopy(PYSKL_SLOWONLY)
    torch.manual_seed(0)
    plain = build_model(cfg)
    cfg["backbone"]["with_cp"] = True
    ckpt = build_model(cfg)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.rand(2, 17, 4, 16, 16, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([1, 2])
    for model in (plain, ckpt):
        model.cls_head.dropout = torch.nn.Identity()
        model.forward_train(x, labels)["loss_cls"].backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_rgbpose_training_forward_draws_two_random_numbers(golden_models, summary):
    """Drop-path decisions consume two torch.rand(1) draws per training forward (SPEC §4.6)."""
    cfg = copy.deepcopy(summary["rgbpose_conv3d_ntu60_slim"]["model_cfg"])
    cfg["backbone"].update(rgb_drop_path=0.0, pose_drop_path=1.0)  # pose lateral always dropped
    cfg["cls_head"]["dropout"] = 0.0
    model = build_model(cfg).train()
    gen = torch.Generator().manual_seed(5)
    imgs, heat = torch.rand(1, 3, 8, 64, 64, generator=gen), torch.rand(1, 17, 32, 16, 16, generator=gen)
    torch.manual_seed(7)
    model(imgs, heat)
    after = torch.rand(1)
    torch.manual_seed(7)
    torch.rand(1), torch.rand(1)
    assert torch.equal(after, torch.rand(1))
    # pose_drop_path=1: the pose pathway's lateral input is zero, so RGB cannot reach the pose logits.
    with torch.no_grad():
        other = imgs.flip(-1)
        for m in model.modules():  # keep BN in eval so batch statistics do not mix the inputs
            if isinstance(m, torch.nn.BatchNorm3d):
                m.eval()
        a, b = model(imgs, heat)["pose"], model(other, heat)["pose"]
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["slowonly_r50_ntu60_xsub_keypoint", "c3d_light_ntu60_xsub_joint",
                                  "x3d_shallow_ntu60_xsub_joint"])
def test_fused_activations_keep_outputs_over_calls_shapes_and_weight_changes(golden_models, summary, name):
    """conv → ReLU and conv → + shortcut → ReLU as one oneDNN call (and, from the second call on, a
    weight packed for oneDNN): the logits of the released checkpoints stay those of the plain
    eval model for new input shapes, on the plain fallback (autograd on), and after weights change."""
    from posec3d.models.fuse import ConvActivation, fuse_conv_activations, to_channels_last

    model = load_golden_model(golden_models, summary, name).eval()
    fast = to_channels_last(fuse_conv_activations(fuse_conv_bn(copy.deepcopy(model))))
    fused = [m for m in fast.modules() if isinstance(m, ConvActivation)]
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN: fuse_conv_activations is a no-op here")
    from posec3d.models.layers import ConvBnAct
    from posec3d.models.slowonly import Bottleneck3d

    # Every conv block with a ReLU is fused, and every bottleneck's tail (SlowOnly: 1 + 13 x 3).
    assert fused and not any(isinstance(getattr(m, "relu", None), torch.nn.ReLU) for m in fast.modules()
                             if isinstance(m, ConvBnAct))
    assert all(b.fused_residual for b in fast.modules() if isinstance(b, Bottleneck3d))
    assert len(fused) == 40 or not name.startswith("slowonly")
    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 17, 8, 32, 32), (2, 17, 8, 32, 32), (3, 17, 6, 24, 40), (2, 17, 8, 32, 32)]
    with torch.inference_mode():
        for shape in shapes:  # 1st call plain weights, then packed, then another shape, then back
            x = torch.rand(shape, generator=gen)
            torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)
    x = torch.rand(shapes[0], generator=gen)
    with torch.enable_grad():  # autograd on: the plain conv → add → ReLU path, same values
        torch.testing.assert_close(fast(x.requires_grad_()), model(x), atol=1e-4, rtol=1e-4)


def test_fused_conv_follows_its_weight_after_packing():
    """A packed weight is re-made when the conv weight changes in place or is replaced."""
    import torch.nn.functional as F

    from posec3d.models.fuse import ConvActivation

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN: ConvActivation runs the plain path only")
    gen = torch.Generator().manual_seed(4)
    conv = torch.nn.Conv3d(8, 16, (3, 1, 1), padding=(1, 0, 0)).eval()
    fused = ConvActivation(conv, relu=True)
    x = torch.randn(2, 8, 4, 6, 6, generator=gen)
    shortcut = torch.randn(2, 16, 4, 6, 6, generator=gen)

    def expected():
        return F.relu(F.conv3d(x, conv.weight, conv.bias, padding=(1, 0, 0)))

    with torch.inference_mode():
        for _ in range(3):  # plain weight, then packed, then packed again
            torch.testing.assert_close(fused(x), expected(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fused(x, shortcut),
                                   F.relu(F.conv3d(x, conv.weight, conv.bias, padding=(1, 0, 0)) + shortcut),
                                   atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        conv.weight.mul_(-1.5)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), expected(), atol=1e-5, rtol=1e-5)
    conv.weight = torch.nn.Parameter(torch.randn(16, 8, 3, 1, 1, generator=gen))
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), expected(), atol=1e-5, rtol=1e-5)
