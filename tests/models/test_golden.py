"""Our models against the real mmaction2 / pyskl outputs in shared/golden/models (README §1)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from posec3d.models import build_model
from posec3d.models.recognizer import average_views

from .conftest import golden_key_listing, golden_outputs, load_golden_model

SKELETON_MODELS = {
    "slowonly_r50_ntu60_xsub_keypoint": "kp",
    "slowonly_r50_ntu60_xsub_limb": "limb",
    "c3d_light_ntu60_xsub_joint": "kp",
    "x3d_shallow_ntu60_xsub_joint": "kp",
}
ALL_MODELS = [*SKELETON_MODELS, "rgbpose_conv3d_ntu60_slim", "rgbpose_conv3d_ntu60_full"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_keys_order_shapes_and_param_count(golden_models, summary, name):
    """Same state_dict keys, in the same order, same shapes and dtypes, same parameter count."""
    model = build_model(summary[name]["model_cfg"])
    state = model.state_dict()
    listing = golden_key_listing(golden_models, name)
    assert list(state) == [k for k, _, _ in listing]
    for key, shape, dtype in listing:
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key
    header = (golden_models / f"{name}.keys.txt").read_text()
    expected_params = int(re.search(r"trainable parameters.*: (\d+)", header).group(1))
    assert sum(p.numel() for p in model.parameters()) == expected_params == summary[name]["params"]


def _rand17(rand_inputs) -> torch.Tensor:
    return torch.from_numpy(rand_inputs["rand17_u8"].astype(np.float32) / 255)


def _close(actual: torch.Tensor, expected: np.ndarray, atol: float, rtol: float = 0.0):
    np.testing.assert_allclose(actual.detach().numpy(), expected, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", list(SKELETON_MODELS))
def test_eval_outputs(golden_models, summary, rand_inputs, pipeline_inputs, name):
    """Eval logits per view, feature shapes and pooled features, 'score' / 'prob' / None averages."""
    model = load_golden_model(golden_models, summary, name).eval()
    out = golden_outputs(golden_models, name)
    feats = []
    model.backbone.register_forward_hook(lambda mod, inp, feat: feats.append(feat))
    cases = {"rand": _rand17(rand_inputs),
             f"pipeline_{SKELETON_MODELS[name]}": torch.from_numpy(pipeline_inputs[SKELETON_MODELS[name]])}
    for case, imgs in cases.items():
        with torch.no_grad():
            model.average_clips = None
            per_view = model.forward_test(imgs)  # (N, V, classes): one backbone pass per view
        feat = feats.pop()
        assert list(feat.shape) == out[f"{case}/feat_shape"].tolist()
        _close(feat.mean(dim=(2, 3, 4)), out[f"{case}/feat_pooled"], 1e-4, 1e-4)
        assert per_view.shape == (imgs.shape[0], imgs.shape[1], 60)
        logits = per_view.reshape(-1, 60)
        _close(logits, out[f"{case}/cls_score"], 1e-4, 1e-4)
        num_views = imgs.shape[1]
        _close(average_views(logits, num_views, "score"), out[f"{case}/score_avg"], 1e-4, 1e-4)
        _close(average_views(logits, num_views, "prob"), out[f"{case}/prob_avg"], 1e-5)
        _close(average_views(logits, num_views, "prob"), out[f"{case}/pred_score"], 1e-5)
    # The configured path ('prob' from cls_head.average_clips), with views split into chunks of 1.
    model.average_clips, model.max_testing_views = "prob", 1
    with torch.no_grad():
        _close(model.forward_test(cases["rand"]), out["rand/prob_avg"], 1e-5)


def _rel_l2(a: torch.Tensor, b: np.ndarray) -> float:
    a = a.detach().numpy().astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("name", list(SKELETON_MODELS))
def test_train_step(golden_models, summary, rand_inputs, name):
    """One train-mode forward + backward: logits, loss, grads, BN running stats, global grad norm."""
    model = load_golden_model(golden_models, summary, name).train()
    model.cls_head.dropout = nn.Identity()  # the golden run replaced dropout to be deterministic
    out = golden_outputs(golden_models, name)
    labels = torch.from_numpy(out["train/labels"]).long()
    logits = []
    model.cls_head.register_forward_hook(lambda mod, inp, result: logits.append(result))

    losses = model.forward_train(_rand17(rand_inputs), labels)
    _close(logits[0], out["train/cls_score"], 1e-4)
    _close(losses["loss_cls"], out["train/loss_cls"], 1e-4)
    assert set(losses) == {"loss_cls", "top1_acc", "top5_acc"}
    # Batch accuracies by hand from the golden logits.
    ranked = np.argsort(-out["train/cls_score"], axis=1)
    for k in (1, 5):
        expected = np.mean([lab in row[:k] for row, lab in zip(ranked, out["train/labels"])])
        assert losses[f"top{k}_acc"].item() == pytest.approx(expected)

    losses["loss_cls"].backward()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    for key in out:
        if key.startswith("train/grad/"):
            pname = key.removeprefix("train/grad/")
            if pname.startswith("cls_head"):
                _close(params[pname].grad, out[key], 1e-4)
            else:  # the first conv's grad is sensitive to float32 accumulation order
                assert _rel_l2(params[pname].grad, out[key]) < 5e-2
        elif key.startswith("train/after/"):
            _close(buffers[key.removeprefix("train/after/")], out[key], 1e-6)
    global_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert global_norm.item() == pytest.approx(float(out["train/grad_global_l2norm"]), rel=1e-3)


def test_rgbpose_slim_eval(golden_models, summary, rand_inputs):
    """RGBPoseConv3D-slim: both pathways' logits, probabilities, pooled features and shapes."""
    name = "rgbpose_conv3d_ntu60_slim"
    model = load_golden_model(golden_models, summary, name).eval()
    out = golden_outputs(golden_models, name)
    imgs = torch.from_numpy(rand_inputs["rgb_u8"].astype(np.float32))  # normalised inside (data_preprocessor)
    heat = torch.from_numpy(rand_inputs["pose32_u8"].astype(np.float32) / 255)
    with torch.no_grad():
        feat_rgb, feat_pose = model.extract_feat(imgs[:, 0], heat[:, 0])
        logits = model(imgs[:, 0], heat[:, 0])
        probs = model.forward_test(imgs, heat)
    for part, feat in (("rgb", feat_rgb), ("pose", feat_pose)):
        assert list(feat.shape) == out[f"rand/feat_shape_{part}"].tolist()
        _close(feat.mean(dim=(2, 3, 4)), out[f"rand/feat_pooled_{part}"], 1e-4, 1e-4)
        _close(logits[part], out[f"rand/cls_score_{part}"], 1e-4, 1e-4)
        _close(probs[part], out[f"rand/pred_score_{part}"], 1e-5)


def test_rgbpose_train_losses_are_weighted_per_pathway(golden_models, summary):
    """rgb_loss_cls / pose_loss_cls are each weight × CE of that pathway's logits."""
    cfg = dict(summary["rgbpose_conv3d_ntu60_slim"]["model_cfg"])
    cfg["cls_head"] = {**cfg["cls_head"], "loss_weights": [2.0, 0.5], "dropout": 0.0}
    model = build_model(cfg)
    model.load_state_dict(load_golden_model(golden_models, summary, "rgbpose_conv3d_ntu60_slim").state_dict())
    model.train()
    # Small inputs keep this quick: rgb 64² → 8² after layer2 meets pose 16² → 8² after layer1.
    gen = torch.Generator().manual_seed(0)
    imgs = torch.rand(2, 1, 3, 8, 64, 64, generator=gen) * 255
    heat = torch.rand(2, 1, 17, 32, 16, 16, generator=gen)
    labels = torch.tensor([3, 7])
    torch.manual_seed(0)
    losses = model.forward_train(imgs, heat, labels)
    torch.manual_seed(0)  # same two drop-path draws, so the same batch
    logits = model(imgs[:, 0], heat[:, 0])
    for part, w in (("rgb", 2.0), ("pose", 0.5)):
        expected = w * -torch.log_softmax(logits[part], 1)[torch.arange(2), labels].mean()
        assert losses[f"{part}_loss_cls"].item() == pytest.approx(expected.item(), rel=1e-5)
    (losses["rgb_loss_cls"] + losses["pose_loss_cls"]).backward()
    assert model.backbone.pose_path.layer1_lateral.conv.weight.grad.abs().sum() > 0
