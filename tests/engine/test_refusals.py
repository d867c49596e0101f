"""Inputs that used to give silently wrong results are refused with one line (issue 13).

A real subset of MSR Action3D (20 classes) and the small X3D of the deterministic test config;
checkpoints are freshly initialised (these tests are about what is refused, not accuracy).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from posec3d.data.annotations import load_annotation_file, save_annotations
from posec3d.engine import config as C
from posec3d.engine.checkpoints import save_training_checkpoint
from posec3d.engine.ensemble import ensemble
from posec3d.engine.tester import test as run_test
from posec3d.engine.trainer import build_optimizer, train
from posec3d.errors import AnnotationError, CheckpointError, ConfigError
from posec3d.models import build_model
from posec3d.models.checkpoint import save_checkpoint

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = HERE / "configs" / "msr_deterministic.py"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def msr(data_dir, tmp_path_factory) -> dict:
    raw = load_annotation_file(data_dir / "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl")
    train_ids, test_ids = raw["split"]["xsub_train"][::36][:8], raw["split"]["xsub_test"][::45][:6]  # many classes
    samples = [a for a in raw["annotations"] if a["frame_dir"] in set(train_ids) | set(test_ids)]
    root = tmp_path_factory.mktemp("refusals")
    ann = root / "msr.pkl"
    save_annotations(ann, samples, split={"xsub_train": train_ids, "xsub_test": test_ids, "empty": []})
    big = [dict(s, label=1000) if s["frame_dir"] == test_ids[2] else s for s in samples]
    big_ann = root / "label_1000.pkl"
    save_annotations(big_ann, big, split={"xsub_test": test_ids})
    cfg = load(ann)
    ckpt = root / "init.pth"
    torch.manual_seed(0)
    save_checkpoint(ckpt, build_model(C.model_cfg(cfg)).state_dict())
    return dict(root=root, ann=ann, big_ann=big_ann, ckpt=ckpt, labels=[s["label"] for s in samples])


def load(ann, *more) -> C.Config:
    return C.load_config(CONFIG, [f"ann_file={ann}", "data.test.split=xsub_test", *more])


def test_the_fixture_model_evaluates(msr):
    out = run_test(load(msr["ann"]), msr["ckpt"], num_workers=0)
    assert out.metrics["num_samples"] == 6 and np.isfinite(out.metrics["top1"])


def test_labels_outside_the_models_classes_are_refused(msr):
    assert max(msr["labels"]) >= 5  # MSR has 20 classes: a 5-class model cannot score them
    small = load(msr["ann"], "model.cls_head.num_classes=5")
    ckpt = msr["root"] / "five.pth"
    save_checkpoint(ckpt, build_model(C.model_cfg(small)).state_dict())
    # the config's class count is checked first, naming both files (the test set's own check follows)
    with pytest.raises(ConfigError, match=r"num_classes is 5 but .*msr.pkl has label \d+ \(first at sample \d+\)"):
        run_test(small, ckpt, num_workers=0)
    with pytest.raises(ConfigError, match=r"num_classes is 20 but .*label_1000.pkl has label 1000 \(first at sample 2\)"):
        run_test(load(msr["big_ann"]), msr["ckpt"], num_workers=0)


def test_empty_split_is_an_error_not_nan(msr):
    with pytest.raises(AnnotationError, match=r"msr.pkl: split 'empty' is empty, nothing to evaluate"):
        run_test(load(msr["ann"]), msr["ckpt"], split="empty", num_workers=0)
    r = subprocess.run([sys.executable, "-m", "posec3d", "test", str(CONFIG), str(msr["ckpt"]), "--split", "empty",
                        "--cfg-options", f"ann_file={msr['ann']}"], capture_output=True, text=True, cwd=REPO,
                       timeout=120)
    assert r.returncode == 1 and "nan" not in r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "split 'empty' is empty" in lines[0], r.stderr[-2000:]


def test_all_nan_weights_are_refused(msr):
    state = torch.load(msr["ckpt"], weights_only=True)["state_dict"]
    nan = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    path = msr["root"] / "nan.pth"
    save_checkpoint(path, nan)
    with pytest.raises(CheckpointError, match=r"nan.pth: \d+ of \d+ weight tensors hold NaN or inf"):
        run_test(load(msr["ann"]), path, num_workers=0)


@pytest.mark.parametrize("epochs", ["-1", "0", "2.5"])
def test_total_epochs_below_one_is_an_error(msr, tmp_path, epochs):
    cfg = load(msr["ann"], f"total_epochs={epochs}")
    with pytest.raises(ConfigError, match=r"msr_deterministic.py: total_epochs must be a whole number of epochs, at least 1"):
        train(cfg, tmp_path, seed=0)
    assert not (tmp_path / "latest.pth").exists()


def test_resume_from_an_epoch_past_the_end_is_an_error(msr, tmp_path):
    cfg = load(msr["ann"], "total_epochs=3")
    model = build_model(C.model_cfg(cfg))
    far = tmp_path / "far.pth"
    save_training_checkpoint(far, model, build_optimizer(model, C.optimizer_cfg(cfg)), None, epoch=10**6,
                             iteration=10**7, seed=0, config_text=C.config_to_text(cfg))
    with pytest.raises(CheckpointError, match=r"far.pth: the checkpoint is at epoch 1000000 but the config trains 3"):
        train(cfg, tmp_path / "run", resume=far)
    assert not (tmp_path / "run" / "latest.pth").exists()


def test_ensemble_refuses_labels_outside_the_scores(tmp_path):
    rng = np.random.default_rng(0)
    items = [{"pred_score": rng.random(4).astype(np.float32), "gt_label": np.array([label])}
             for label in (0, 3, -1, 2)]
    path = tmp_path / "neg.pkl"
    path.write_bytes(__import__("pickle").dumps(items))
    with pytest.raises(AnnotationError, match=r"neg.pkl: item 2: gt_label -1 is not a class index"):
        ensemble([str(path)])
    items[2]["gt_label"] = np.array([4])
    path.write_bytes(__import__("pickle").dumps(items))
    with pytest.raises(AnnotationError, match=r"label 4 of item 2"):
        ensemble([str(path)])


# ----------------------------------------------------------------------------------------------
# training figures: class names and an evenly sampled loss curve


def test_loss_curve_is_binned_evenly_and_weighted_by_iterations():
    from posec3d.engine.plots import even_loss_curve

    per_iter = np.arange(1, 217, dtype=np.float64) ** 0.5  # a known loss for iterations 1..216
    # what the trainer logs with log_interval 20 and 108 iterations per epoch: ends 20..100, 108, 120..
    ends = sorted(set(list(range(20, 217, 20)) + [108, 216]))
    records, start = [], 0
    for end in ends:
        records.append({"mode": "train", "iter": end, "loss": per_iter[start:end].mean()})
        start = end
    x, y = even_loss_curve(records)
    assert np.allclose(np.diff(x[:-1]), 20)  # even steps (the last bin ends at the last iteration)
    expected = [per_iter[max(0, e - 20):e].mean() for e in range(20, 217, 20)] + [per_iter[200:216].mean()]
    np.testing.assert_allclose(y, expected)
    np.testing.assert_allclose(x, list(range(20, 217, 20)) + [216])


def test_train_label_map_names_the_confusion_matrix(msr, tmp_path, monkeypatch):
    from posec3d.engine import plots

    names = [f"action_{i}" for i in range(20)]
    label_map = tmp_path / "names.txt"
    label_map.write_text("\n".join(names) + "\n")
    seen = {}
    real = plots.plot_confusion

    def spy(cm, path, class_names=None, title=""):
        seen["names"] = class_names
        return real(cm, path, class_names, title)

    monkeypatch.setattr(plots, "plot_confusion", spy)
    cfg = load(msr["ann"], "data.val.split=xsub_test", f"label_map={label_map}")
    train(cfg, tmp_path / "run", seed=0, validate=True)
    assert seen["names"] == names and (tmp_path / "run" / "confusion_matrix.png").is_file()
    assert "label_map" in (tmp_path / "run" / "config.py").read_text()
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    with pytest.raises(ConfigError, match=r"short.txt: 2 class names for the 20 classes"):
        train(load(msr["ann"], f"label_map={short}"), tmp_path / "bad", seed=0)
    assert not (tmp_path / "bad" / "latest.pth").exists()
