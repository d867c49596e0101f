"""End-to-end training and testing on real MSR Action3D skeletons (shared/data/datasets).

Small inputs keep these fast on a shared CPU: X3D-shallow on 12-16 frame, 24x24 heatmaps. The
``tiny`` annotation file is a real subset of MSR (the first 24 xsub_train and 16 xsub_test
sequences), written once per session.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from posec3d.data.annotations import load_annotation_file, save_annotations
from posec3d.engine.config import load_config
from posec3d.engine.metrics import evaluate
from posec3d.engine.tester import test as run_test
from posec3d.engine.trainer import TrainingDiverged, train

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CI_CONFIG = HERE / "configs" / "msr_x3d_pyskl.py"
FIXED_CONFIG = HERE / "configs" / "msr_deterministic.py"  # deterministic pipeline, no dropout, norm_eval
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


# A narrower X3D and shorter clips for the tests of engine mechanics (not of accuracy).
SMALL = ["model.backbone.base_channels=12", "model.backbone.stage_blocks=(1,2,1)", "model.cls_head.in_channels=144",
         "data.train.dataset.pipeline.1.clip_len=8", "data.val.pipeline.1.clip_len=8",
         "data.test.pipeline.1.clip_len=8"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a CPU shared with other jobs, 2 spinning OpenMP threads per process
    made training steps 2-20x slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ann_options(ann: Path | str) -> list[str]:
    return [f"data.train.dataset.ann_file={ann}", f"data.val.ann_file={ann}", f"data.test.ann_file={ann}"]


@pytest.fixture(scope="module")
def msr_ann(data_dir) -> Path:
    return data_dir / "datasets" / "msr_action3d" / "msr_action3d_kinect20_proj2d.pkl"


@pytest.fixture(scope="module")
def tiny_ann(msr_ann, tmp_path_factory) -> Path:
    raw = load_annotation_file(msr_ann)
    train_ids, test_ids = raw["split"]["xsub_train"][:24], raw["split"]["xsub_test"][:16]
    keep = set(train_ids) | set(test_ids)
    path = tmp_path_factory.mktemp("msr") / "msr_tiny.pkl"
    save_annotations(path, [a for a in raw["annotations"] if a["frame_dir"] in keep],
                     split={"xsub_train": train_ids, "xsub_test": test_ids})
    return path


def state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "posec3d", *args], capture_output=True, text=True, env=ENV,
                       timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_msr_cross_subject_far_above_chance(msr_ann, tmp_path):
    """X3D-shallow learns MSR Action3D cross-subject (284 train / 273 test videos, 20 classes,
    chance 5%) in a CPU-minute: 8-frame 24x24 heatmaps, the deterministic training pipeline
    (random crops and flips need many more epochs at this size), batch 16, 6 epochs, cosine lr 0.1."""
    cfg = load_config(FIXED_CONFIG, ann_options(msr_ann) + [
        "norm_eval=False", "model.backbone.base_channels=24", "model.backbone.stage_blocks=(2,5,3)",
        "model.cls_head.in_channels=216", "model.cls_head.dropout=0.5", "data.videos_per_gpu=16",
        "data.train.dataset.pipeline.1.clip_len=8", "data.test.pipeline.1.clip_len=8", "total_epochs=6"])
    result = train(cfg, tmp_path, seed=0)
    out = run_test(cfg, tmp_path / "latest.pth", batch_size=32)
    assert result.iterations == 6 * 18
    assert out.metrics["num_samples"] == 273
    print("MSR xsub CI run:", out.metrics)
    assert out.metrics["top1"] > 0.2, out.metrics  # 4x chance; about 0.3 in practice


@pytest.mark.slow
def test_cli_train_then_test(tiny_ann, tmp_path):
    wd = tmp_path / "run"
    cli("train", str(CI_CONFIG), "--work-dir", str(wd), "--validate", "--seed", "1", "--cfg-options",
        *ann_options(tiny_ann), *SMALL, "total_epochs=2", "data.train.times=1", "data.videos_per_gpu=8",
        "checkpoint_config.max_keep_ckpts=1")
    names = {p.name for p in wd.iterdir()}
    assert {"latest.pth", "best.pth", "epoch_2.pth", "metrics.jsonl", "curves.png", "confusion_matrix.png",
            "config.py"} <= names
    assert "epoch_1.pth" not in names  # pruned: max_keep_ckpts=1
    ck = state(wd / "latest.pth")
    assert {"meta", "state_dict", "optimizer"} <= set(ck)  # the pyskl / mmaction2 layout
    assert ck["meta"]["epoch"] == 2 and ck["meta"]["iter"] == 6 and ck["meta"]["seed"] == 1
    assert not any(k.startswith("module.") for k in ck["state_dict"])
    records = [json.loads(line) for line in (wd / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["mode"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2]
    best = max(val, key=lambda r: r["top1"])
    assert state(wd / "best.pth")["meta"]["epoch"] == best["epoch"]

    # The val pipeline is 1 clip without flip: the same test run must reproduce its metrics.
    cli("test", str(CI_CONFIG), str(wd / "best.pth"), "--num-clips", "1", "--no-flip", "--json",
        str(tmp_path / "m.json"), "--out", str(tmp_path / "s.pkl"), "--cfg-options", *ann_options(tiny_ann), *SMALL)
    m = json.loads((tmp_path / "m.json").read_text())
    assert set(m) == {"top1", "top5", "mean_class_accuracy", "num_samples"} and m["num_samples"] == 16
    assert m["top1"] == pytest.approx(best["top1"]) and m["mean_class_accuracy"] == pytest.approx(
        best["mean_class_accuracy"])
    scores = pickle.load(open(tmp_path / "s.pkl", "rb"))
    assert isinstance(scores, list) and len(scores) == 16
    assert all(s.dtype == np.float32 and s.shape == (20,) for s in scores)
    raw = load_annotation_file(tiny_ann)
    ids = raw["split"]["xsub_test"]
    by_id = {a["frame_dir"]: a["label"] for a in raw["annotations"]}
    labels = np.array([by_id[i] for i in ids])
    top1 = float(np.mean(np.argmax(np.stack(scores), 1) == labels))
    assert top1 == pytest.approx(m["top1"])
    assert np.allclose(np.stack(scores).sum(1), 1.0, atol=1e-4)  # 'prob' averaging: softmax per view


@pytest.mark.slow
def test_multi_clip_flip_views(tiny_ann, tmp_path):
    """--num-clips / --flip rewrite the test pipeline: 2 clips x flip = 4 views, still probabilities."""
    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann))
    train(cfg, tmp_path, seed=0)
    one = run_test(cfg, tmp_path / "latest.pth", num_clips=1, flip=False)
    four = run_test(cfg, tmp_path / "latest.pth", num_clips=2, flip=True, batch_size=2)
    assert len(four.scores) == len(one.scores) == 16
    assert np.allclose(np.stack(four.scores).sum(1), 1.0, atol=1e-4)
    assert not np.allclose(np.stack(four.scores), np.stack(one.scores))
    assert four.metrics == evaluate(np.stack(four.scores), four.labels)


@pytest.mark.slow
def test_killed_and_resumed_equals_uninterrupted(tiny_ann, tmp_path):
    """SIGKILL mid-run, `--resume`, and the final weights are bitwise those of a run never stopped."""
    args = [str(CI_CONFIG), "--seed", "3", "--deterministic", "--cfg-options", *ann_options(tiny_ann), *SMALL,
            "total_epochs=3", "data.train.times=1", "data.videos_per_gpu=8", "data.workers_per_gpu=1"]
    full, broken = tmp_path / "full", tmp_path / "broken"
    cli("train", *args[:1], "--work-dir", str(full), *args[1:])

    proc = subprocess.Popen([sys.executable, "-m", "posec3d", "train", args[0], "--work-dir", str(broken),
                             *args[1:]], env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 200
    while not (broken / "epoch_1.pth").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = state(broken / "latest.pth")["meta"]["epoch"]
    assert killed_at < 3, "the run finished before it could be killed; make it longer"
    cli("train", args[0], "--work-dir", str(broken), "--resume", *args[1:])

    a, b = state(full / "latest.pth"), state(broken / "latest.pth")
    assert a["meta"]["iter"] == b["meta"]["iter"] == 9
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k, v in a["optimizer"]["state"].items():
        assert torch.equal(v["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tiny_ann, tmp_path):
    """DDP over 2 CPU processes (gloo) = 1 process with the same global batch (8 = 2 x 4).

    norm_eval keeps BN on running statistics (SyncBN is CUDA-only), dropout is 0 and the training
    pipeline deterministic, so the only difference is the order of float sums in the gradient
    all-reduce: weights agree to 1e-5 (a few float32 ulps after 3 SGD steps) and metrics exactly.
    """
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--seed", "0", "--validate", "--cfg-options", *ann_options(tiny_ann)]
    cli("train", str(FIXED_CONFIG), "--work-dir", str(one), *common)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "posec3d"]
    r = subprocess.run([*torchrun, "train", str(FIXED_CONFIG),
                        "--work-dir", str(two), *common, "data.videos_per_gpu=4"],
                       capture_output=True, text=True, env=ENV, cwd=REPO, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = state(one / "latest.pth"), state(two / "latest.pth")
    assert a["meta"]["iter"] == b["meta"]["iter"] == 3 and b["meta"]["world_size"] == 2
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), b["state_dict"][k].float(), atol=1e-5, rtol=0), k
    val = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()  # noqa: E731
                     if json.loads(x)["mode"] == "val"][-1]
    assert val(one)["num_samples"] == val(two)["num_samples"] == 16
    assert val(one)["top1"] == val(two)["top1"]
    # Testing under torchrun gathers every rank's videos back into dataset order.
    r = subprocess.run([*torchrun, "test", str(FIXED_CONFIG),
                        str(two / "latest.pth"), "--out", str(tmp_path / "ddp.pkl"), "--cfg-options",
                        *ann_options(tiny_ann)], capture_output=True, text=True, env=ENV, cwd=REPO, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp_scores = np.stack(pickle.load(open(tmp_path / "ddp.pkl", "rb")))
    single = run_test(load_config(FIXED_CONFIG, ann_options(tiny_ann)), two / "latest.pth")
    assert np.allclose(ddp_scores, np.stack(single.scores), atol=1e-6)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_ann, tmp_path):
    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann) + ["data.train.dataset.pipeline.1.clip_len=4"])
    train(cfg, tmp_path, seed=0)
    good = state(tmp_path / "latest.pth")
    exploding = load_config(FIXED_CONFIG, ann_options(tiny_ann) + ["data.train.dataset.pipeline.1.clip_len=4",
                                                                   "optimizer.lr=1e30", "total_epochs=2",
                                                                   "optimizer_config.grad_clip=None"])
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf).*latest.pth"):
        train(exploding, tmp_path, resume=True)
    after = state(tmp_path / "latest.pth")
    assert after["meta"]["epoch"] == 1
    assert all(torch.equal(good["state_dict"][k], after["state_dict"][k]) for k in good["state_dict"])


def test_load_from_skips_other_classifier_and_freezes_stages(tiny_ann, tmp_path):
    """K400 -> UCF101-style fine-tuning: the backbone loads, a 20-way head is skipped for a 30-way one."""
    src = tmp_path / "src"
    opts = ann_options(tiny_ann) + ["data.train.dataset.pipeline.1.clip_len=4"]
    train(load_config(FIXED_CONFIG, opts), src, seed=0)
    pretrained = state(src / "latest.pth")["state_dict"]

    tuned_dir = tmp_path / "tuned"
    small_head = load_config(FIXED_CONFIG, opts + ["model.cls_head.num_classes=30",
                                                   "model.backbone.frozen_stages=1"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(small_head, tuned_dir, load_from=str(src / "latest.pth"), seed=0)
    assert any("cls_head.fc_cls.weight" in str(w.message) for w in caught)
    tuned = state(tuned_dir / "latest.pth")["state_dict"]
    assert tuned["cls_head.fc_cls.weight"].shape[0] == 30
    frozen = [k for k in pretrained if k.startswith(("backbone.conv1_s.", "backbone.conv1_t.", "backbone.layer1."))]
    assert frozen, "expected X3D stem / layer1 keys"
    for k in frozen:
        assert torch.equal(tuned[k], pretrained[k]), f"{k} changed although frozen"
    later = [k for k in pretrained if k.startswith("backbone.layer3.") and k.endswith("conv.weight")]
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in later), "unfrozen layers did not train"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["slowonly_r50_ntu60_xsub_joint_pyskl.py",
                                  "slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py"])
def test_pyskl_and_mmaction2_configs_run_unchanged(name, data_dir, tmp_path):
    """SPEC §3's NTU60 SlowOnly config in the pyskl and the mmaction2 1.x layout, changed only in
    paths and schedule length, trains (with validation) and tests on real NTU skeletons."""
    ann = data_dir / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl"  # 3 real videos, split xsub_val
    path = REPO / "configs" / "compat" / name
    if name.endswith("_pyskl.py"):
        opts = ["data.train.dataset.split=xsub_val", "data.train.times=1", "total_epochs=1"]
        opts += [f"data.{s}.ann_file={ann}" for s in ("val", "test")] + [f"data.train.dataset.ann_file={ann}"]
    else:
        opts = ["train_dataloader.dataset.dataset.split=xsub_val", "train_dataloader.dataset.times=1",
                "train_cfg.max_epochs=1", "param_scheduler.0.T_max=1"]
        opts += [f"{s}_dataloader.dataset.ann_file={ann}" for s in ("val", "test")]
        opts += [f"train_dataloader.dataset.dataset.ann_file={ann}"]
    cfg = load_config(path, opts)
    validate = not name.endswith("_pyskl.py")  # validation once (mmaction2 layout) keeps the CPU time down
    result = train(cfg, tmp_path, validate=validate, seed=0)
    assert result.iterations == 1
    out = run_test(cfg, tmp_path / "latest.pth", num_clips=1, flip=False)
    assert out.metrics["num_samples"] == 3 and len(out.scores[0]) == 60
    if validate:
        assert result.last_val["num_samples"] == 3
        assert out.metrics["top1"] == pytest.approx(result.last_val["top1"])  # val = the 1-clip test here


def test_class_prob_reaches_the_sampler(tiny_ann):
    """pyskl's class_prob (SPEC §3.2 note 2) on the train dataset drives class-balanced sampling."""
    from posec3d.engine.distributed import DistInfo
    from posec3d.engine.loaders import build_dataset, build_train_loader, dataset_labels, split_dataset_cfg

    prob = [1.0] * 20
    prob[0] = 3.0  # class 0 three times as often
    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann) + [f"data.train.dataset.class_prob={prob}",
                                                             "data.train.times=2"])
    dataset = build_dataset(split_dataset_cfg(cfg, "train"))
    loader = build_train_loader(cfg, dataset, DistInfo(), seed=0)
    labels = np.array(dataset_labels(dataset))
    order = list(loader.sampler)
    counts = np.bincount(labels[np.array(order) % len(labels)], minlength=20)
    base = np.bincount(labels, minlength=20)
    assert counts[0] == 3 * 2 * base[0] and (counts[1:] == 2 * base[1:]).all()
    assert len(order) == len(loader.sampler)


def test_cli_test_with_a_bundled_model(data_dir, tmp_path):
    """`posec3d test --model penn-action` finds the bundled config, checkpoint and classes."""
    raw = load_annotation_file(data_dir / "datasets" / "penn_action" / "penn_action_train_gt13_2d.pkl")
    ids = raw["split"]["train"][::60]  # 21 real clips of all 15 classes
    annos = [a for a in raw["annotations"] if a["frame_dir"] in set(ids)]
    save_annotations(tmp_path / "penn_sub.pkl", annos, split={"sub": ids})
    cli("test", "--model", "penn-action", "--ann-file", str(tmp_path / "penn_sub.pkl"), "--split", "sub",
        "--num-clips", "1", "--no-flip", "--json", str(tmp_path / "m.json"))
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["num_samples"] == len(ids) == 21
    assert m["top1"] > 0.5, m  # mostly clips the model was trained on; chance is 1/15


def test_outlier_exposure_lowers_confidence_on_unseen_actions(msr_ann, tmp_path):
    """``outliers=dict(ann_file, split, weight)`` (Hendrycks et al. 2019): another split's clips join
    training with label -1 and a uniform target. Trained on MSR classes 0-9 with clips of classes
    10-19 as outliers, the model is far less confident on *other subjects'* clips of classes 10-19
    than the same training without them, which is what lets a threshold call them unknown."""
    raw = load_annotation_file(msr_ann)
    label = {a["frame_dir"]: a["label"] for a in raw["annotations"]}
    train_ids, test_ids = raw["split"]["xsub_train"], raw["split"]["xsub_test"]
    split = {"inlier": [i for i in train_ids if label[i] < 10][:48],
             "outlier": [i for i in train_ids if label[i] >= 10][:48],
             "unseen": [i for i in test_ids if label[i] >= 10][:24]}
    keep = {i for ids in split.values() for i in ids}
    ann = tmp_path / "msr_open_set.pkl"
    save_annotations(ann, [a for a in raw["annotations"] if a["frame_dir"] in keep], split=split)
    opts = ann_options(ann) + ["data.train.dataset.split=inlier", "data.test.split=unseen", "total_epochs=8",
                               "data.train.dataset.pipeline.1.clip_len=6", "data.test.pipeline.1.clip_len=6",
                               "optimizer.lr=0.1", "norm_eval=False"]

    def unseen_confidence(cfg, work_dir) -> float:
        result = train(cfg, work_dir, seed=0)
        assert result.iterations == 8 * len(train_set_of(cfg)) // 8
        scores = np.stack(run_test(cfg, work_dir / "latest.pth").scores)
        return float(scores.max(1).mean())

    def train_set_of(cfg):
        return split["inlier"] + (split["outlier"] if cfg.get("outliers") else [])

    plain = unseen_confidence(load_config(FIXED_CONFIG, opts), tmp_path / "plain")
    cfg = load_config(FIXED_CONFIG, opts)
    cfg["outliers"] = dict(ann_file=str(ann), split="outlier", weight=1.0)
    exposed = unseen_confidence(cfg, tmp_path / "exposed")
    records = [json.loads(line) for line in (tmp_path / "exposed" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss_outlier" in r for r in records if r["mode"] == "train")
    print(f"mean top probability on unseen classes: {plain:.3f} without outliers, {exposed:.3f} with")
    assert exposed < plain - 0.1, (plain, exposed)
    assert exposed < 0.3  # 20 classes: uniform is 0.05


def test_outliers_config_is_checked(tiny_ann):
    from posec3d.engine.config import outliers
    from posec3d.errors import ConfigError

    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann))
    assert outliers(cfg) is None
    cfg["outliers"] = dict(ann_file=str(tiny_ann), split="xsub_test")
    assert outliers(cfg) == dict(ann_file=str(tiny_ann), split="xsub_test", weight=0.5)
    for bad in (dict(split="x"), dict(ann_file=str(tiny_ann), weight=0), dict(ann_file=str(tiny_ann), wieght=1)):
        cfg["outliers"] = bad
        with pytest.raises(ConfigError, match="outliers"):
            outliers(cfg)

    from posec3d.engine.loaders import build_dataset, split_dataset_cfg
    from posec3d.engine.trainer import with_outliers

    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann) + ["data.train.dataset.class_prob=[1.0]"])
    cfg["outliers"] = dict(ann_file=str(tiny_ann), split="xsub_test")
    with pytest.raises(ConfigError, match="class_prob"):
        with_outliers(cfg, build_dataset(split_dataset_cfg(cfg, "train")), outliers(cfg))
    cfg = load_config(FIXED_CONFIG, ann_options(tiny_ann))
    cfg["outliers"] = dict(ann_file=str(tiny_ann), split="xsub_test")
    joined = with_outliers(cfg, build_dataset(split_dataset_cfg(cfg, "train")), outliers(cfg))
    assert len(joined) == 24 + 16 and joined.labels[24:] == [-1] * 16 and min(joined.labels[:24]) >= 0
    assert int(joined[30]["label"]) == -1 and int(joined[3]["label"]) >= 0
