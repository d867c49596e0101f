"""Hostile and malformed files against every CLI entry point that reads one (annotation, score dump,
checkpoint, config, video). Each case runs the real CLI in a subprocess under a 10 s limit and an
address-space limit, and must end with exit 1 and exactly one line on stderr: no traceback, no
segfault, and no code run (every case plants a marker file that a `__reduce__` payload would create).

All files are generated here from pickle opcodes (tests/hostile_files.py); nothing binary is committed.
"""
from __future__ import annotations

import os
import pickle
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests import hostile_files as H

REPO = Path(__file__).resolve().parents[1]
TIME_LIMIT = 10.0
# torch maps ~0.7 GB of address space at import and more for its thread pools; 2.5 GB of address space
# keeps resident memory well under 1 GB, which is checked separately from the child's own rusage.
ADDRESS_LIMIT = int(2.5 * 2**30)
RSS_LIMIT_MB = 1024
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def wall_limit() -> float:
    """10 s on an idle machine; on a shared, overloaded one the wall clock stretches with the load (the
    CPU time each case may use stays 10 s)."""
    return TIME_LIMIT * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, str, float, float, float]:
    """(exit code, stdout, stderr, wall seconds, CPU seconds, peak RSS in MB) of ``python -m posec3d ARGS``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "posec3d", *map(str, args)], stdout=out, stderr=err,
                             cwd=cwd, env=ENV, preexec_fn=_limit_memory)
        killer = threading.Timer(wall_limit() + 5, p.kill)
        killer.start()
        _, status, usage = os.wait4(p.pid, 0)  # wait4: this child's own peak RSS
        killer.cancel()
        p.returncode = code = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return (code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds,
                usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def assert_one_line_failure(args: list[str], cwd: Path, marker: Path, expect: str | None = None) -> str:
    limit = wall_limit()
    code, out, err, seconds, cpu, rss = run_cli(args, cwd)
    lines = [line for line in err.splitlines() if line.strip()]
    report = (f"args {args}: exit {code}, {seconds:.1f} s wall (limit {limit:.0f}), {cpu:.1f} s CPU, {rss:.0f} MB"
              f"\nstderr:\n{err[-3000:]}\nstdout:\n{out[-1000:]}")
    assert code != -11, "segfault: " + report
    assert not marker.exists(), "the payload ran code: " + report
    assert code == 1, report
    assert "Traceback" not in err, report
    assert len(lines) == 1 and lines[0].startswith("error: "), report
    assert cpu < TIME_LIMIT and seconds < limit, report
    assert rss < RSS_LIMIT_MB, report
    if expect is not None:
        assert expect.lower() in lines[0].lower(), report
    return lines[0]


# --- a small valid world the hostile files are put into -------------------------------------------

def good_samples(n: int = 2, joints: int = 17, frames: int = 8) -> list[dict]:
    rng = np.random.default_rng(0)
    return [dict(frame_dir=f"clip{i}", label=i % 2, img_shape=(64, 64), original_shape=(64, 64),
                 total_frames=frames, keypoint=(rng.random((1, frames, joints, 2)) * 60).astype(np.float32),
                 keypoint_score=np.ones((1, frames, joints), np.float32)) for i in range(n)]


def annotation_file(samples: list[dict]) -> bytes:
    ids = [s["frame_dir"] for s in samples]
    return pickle.dumps({"split": {"train": ids, "val": ids}, "annotations": samples}, protocol=4)


CONFIG = """
pipeline = [
    dict(type='UniformSampleFrames', clip_len={clip_len}, num_clips=1, test_mode=True),
    dict(type='PoseDecode'),
    dict(type='PoseCompact', hw_ratio=1., allow_imgpad=True),
    dict(type='Resize', scale=(16, 16), keep_ratio=False),
    dict(type='GeneratePoseTarget', sigma=0.6, use_score=True, with_kp=True, with_limb=False),
    dict(type='FormatShape', input_format='NCTHW_Heatmap'),
    dict(type='Collect', keys=['imgs', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['imgs', 'label'])
]
model = dict(
    type='Recognizer3D',
    backbone=dict(type='X3D', gamma_d=1, in_channels={in_channels}, base_channels=8, num_stages=3, se_ratio=None,
                  use_swish=False, stage_blocks=(1, 1, 1), spatial_strides=(2, 2, 2)),
    cls_head=dict(type='I3DHead', in_channels=72, num_classes={num_classes}, dropout=0.0),
    test_cfg=dict(average_clips='prob'))
ann_file = '{ann}'
data = dict(
    videos_per_gpu={batch}, workers_per_gpu={workers},
    train=dict(type='PoseDataset', ann_file=ann_file, split='train', pipeline=pipeline),
    val=dict(type='PoseDataset', ann_file=ann_file, split='val', pipeline=pipeline),
    test=dict(type='PoseDataset', ann_file=ann_file, split='val', pipeline=pipeline))
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0)
lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0)
total_epochs = {epochs}
checkpoint_config = dict(interval=1)
log_config = dict(interval=1)
seed = 0
"""


def config_text(ann: Path, **overrides) -> str:
    values = dict(clip_len=4, in_channels=17, num_classes=2, batch=2, workers=0, epochs=1, ann=ann)
    values.update(overrides)
    return CONFIG.format(**values)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Folder with a good annotation file, its config, and a marker path no case may create."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "good.pkl").write_bytes(annotation_file(good_samples()))
    (root / "good.py").write_text(config_text(root / "good.pkl"))
    return root


@pytest.fixture()
def marker(world):
    path = world / "MARKER"
    path.unlink(missing_ok=True)
    yield path
    assert not path.exists()


def write(world: Path, name: str, data: bytes | str) -> Path:
    path = world / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


PAYLOADS = {  # hostile values, each placed where a sample's field (or a dump's item) would be
    "forged-pointer-reconstruct": lambda marker: H.forged_pointer_array(),
    "forged-pointer-frombuffer": lambda marker: H.forged_pointer_frombuffer(),
    "forged-pointer-scalar": lambda marker: H.forged_pointer_scalar(),
    "flagged-float-dtype": lambda marker: H.flagged_float_array(),
    "object-array": lambda marker: H.object_dtype_array(),
    "structured-array": lambda marker: H.structured_dtype_array(),
    "array-claims-1e12": lambda marker: H.huge_array_claim(),
    "reconstruct-shape-1e11": lambda marker: H.huge_reconstruct_shape(),
    "bytearray-2GB": lambda marker: H.huge_bytearray(),
    "binbytes8-claims-1TB": lambda marker: H.bytes8_claim(),
    "billion-laughs": lambda marker: H.billion_laughs(),
    "encode-amplifier": lambda marker: H.encode_amplifier(),
    "nested-1e5": lambda marker: H.deep_nesting(),
    "self-containing": lambda marker: H.self_containing(),
    "os-system": H.runs_code,
    "builtins-exec": lambda marker: H.Raw(H.glob("builtins", "exec") + H.enc((f"open({str(marker)!r}, 'w')",))
                                          + H.REDUCE),
    "torch-storage-claim": lambda marker: H.torch_storage_claim(),
}


def payload(case: str, marker: Path) -> H.Raw:
    return PAYLOADS[case](marker)


# --- annotation files -----------------------------------------------------------------------------

ANNOTATION_INFO_CASES = ["forged-pointer-reconstruct", "forged-pointer-frombuffer", "forged-pointer-scalar",
                         "flagged-float-dtype", "object-array", "structured-array", "array-claims-1e12",
                         "reconstruct-shape-1e11", "bytearray-2GB", "binbytes8-claims-1TB", "billion-laughs",
                         "encode-amplifier", "nested-1e5", "self-containing", "os-system", "builtins-exec",
                         "range-split", "text-file", "empty-file", "markup-path", "torch-storage-claim"]


def annotation_case(world: Path, marker: Path, case: str) -> Path:
    if case == "range-split":
        return write(world, "range.pkl", H.pickle_of({"split": {"train": H.huge_range()}, "annotations": []}))
    if case == "text-file":
        return write(world, "text.pkl", "frame_dir,label\nclip0,0\n")
    if case == "empty-file":
        return write(world, "empty.pkl", b"")
    if case == "markup-path":  # rich markup ("[bold]", "[/red]") in a path must be printed literally
        folder = world / "[bold]odd["
        folder.mkdir(exist_ok=True)
        return write(folder, "red]x.pkl", H.annotation_with(H.runs_code(marker)))
    where = "keypoint" if "array" in case or "pointer" in case or "dtype" in case else "label"
    return write(world, f"{case}.pkl", H.annotation_with(payload(case, marker), where))


@pytest.mark.parametrize("case", ANNOTATION_INFO_CASES)
def test_info_refuses_hostile_annotations(world, marker, case):
    path = annotation_case(world, marker, case)
    line = assert_one_line_failure(["info", path], world, marker)
    assert str(path) in line  # the path is named, literally (markup-path included)


@pytest.mark.parametrize("case", ["forged-pointer-reconstruct", "billion-laughs", "os-system"])
def test_vis_refuses_hostile_annotations(world, marker, case, tmp_path):
    path = annotation_case(world, marker, case)
    assert_one_line_failure(["vis", path, "-o", tmp_path / "out"], world, marker, expect=path.name)


def malformed_annotations(world: Path, case: str) -> Path:
    samples = good_samples()
    s = samples[0]
    if case == "missing-img_shape":
        del s["img_shape"]
    elif case == "img_shape-zero":
        s["img_shape"] = 0
    elif case == "img_shape-str":
        s["img_shape"] = "64x64"
    elif case == "img_shape-negative":
        s["img_shape"] = (-64, 64)
    elif case == "3d-coordinates":
        for x in samples:
            x["keypoint"] = np.concatenate([x["keypoint"], x["keypoint"][..., :1]], axis=-1)
    elif case == "20-joints":
        samples = good_samples(joints=20)
    elif case == "array-label":
        s["label"] = np.array([1])
    elif case == "label-beyond-classes":
        s["label"] = 7
    elif case == "missing-label":
        del s["label"]
    return write(world, f"{case}.pkl", annotation_file(samples))


@pytest.mark.parametrize("case", ["forged-pointer-reconstruct", "os-system", "missing-img_shape", "img_shape-zero",
                                  "3d-coordinates", "20-joints", "array-label", "label-beyond-classes"])
def test_train_refuses_bad_annotations(world, marker, case, tmp_path):
    if case in ("forged-pointer-reconstruct", "os-system"):
        ann = annotation_case(world, marker, case)
    else:
        ann = malformed_annotations(world, case)
    config = write(world, f"train-{case}.py", config_text(ann))
    assert_one_line_failure(["train", config, "--work-dir", tmp_path / "work", "--device", "cpu"], world, marker,
                            expect=ann.name if case not in ("20-joints", "label-beyond-classes") else config.name)


@pytest.mark.parametrize("case", ["billion-laughs", "img_shape-str", "missing-label"])
def test_test_refuses_bad_annotations(world, marker, case, checkpoint):
    ann = annotation_case(world, marker, case) if case == "billion-laughs" else malformed_annotations(world, case)
    assert_one_line_failure(["test", world / "good.py", checkpoint, "--ann-file", ann, "--split", "val",
                             "--device", "cpu"], world, marker, expect=ann.name)


# --- score dumps ----------------------------------------------------------------------------------

def score_case(world: Path, marker: Path, case: str) -> Path:
    good = [np.array([0.2, 0.8], np.float32), np.array([0.6, 0.4], np.float32)]
    if case == "empty-gt_label":
        items: object = [dict(pred_score=g, gt_label=np.array([], np.int64)) for g in good]
        return write(world, f"{case}.pkl", pickle.dumps(items))
    if case == "complex-scores":
        return write(world, f"{case}.pkl", pickle.dumps([np.array([1 + 2j, 3j]), np.array([1j, 0j])]))
    if case == "string-scores":
        return write(world, f"{case}.pkl", pickle.dumps([dict(pred_score="0.1 0.9", gt_label=0)] * 2))
    if case == "mixed-items":
        return write(world, f"{case}.pkl", pickle.dumps([dict(pred_score=good[0], gt_label=0), good[1]]))
    if case == "nan-scores":
        return write(world, f"{case}.pkl", pickle.dumps([np.array([np.nan, 1.0]), np.array([np.inf, 0.0])]))
    if case == "huge-label":
        return write(world, f"{case}.pkl", pickle.dumps([dict(pred_score=g, gt_label=10**30) for g in good]))
    return write(world, f"scores-{case}.pkl", H.pickle_of([payload(case, marker)]))


@pytest.mark.parametrize("case", ["forged-pointer-frombuffer", "billion-laughs", "os-system", "empty-gt_label"])
def test_info_refuses_bad_score_dumps(world, marker, case):
    path = score_case(world, marker, case)
    assert_one_line_failure(["info", path], world, marker, expect=path.name)


@pytest.mark.parametrize("case", ["forged-pointer-scalar", "billion-laughs", "os-system", "torch-storage-claim",
                                  "empty-gt_label", "complex-scores", "string-scores", "mixed-items", "nan-scores",
                                  "huge-label"])
def test_ensemble_refuses_bad_score_dumps(world, marker, case):
    path = score_case(world, marker, case)
    good = write(world, "good-scores.pkl", pickle.dumps([dict(pred_score=np.array([0.2, 0.8]), gt_label=1),
                                                         dict(pred_score=np.array([0.6, 0.4]), gt_label=0)]))
    assert_one_line_failure(["ensemble", good, path], world, marker, expect=path.name)


# --- checkpoints ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint(world):
    """A real checkpoint of the corpus config's model (so only the hostile part differs)."""
    import torch

    from posec3d.engine.config import load_config
    from posec3d.models import build_model
    from posec3d.models.checkpoint import save_checkpoint

    model = build_model(load_config(world / "good.py").model)
    path = world / "good.pth"
    save_checkpoint(path, model.state_dict(), meta={"epoch": 1, "iter": 1, "seed": 0})
    _TRAINING.update(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    return path


_TRAINING: dict = {}  # the checkpoint fixture's model and optimizer, for the resume cases


def checkpoint_case(world: Path, marker: Path, case: str, good: Path) -> Path:
    if case == "text-file":
        return write(world, "notes.pth", "these are not weights\n")
    if case == "truncated":
        return write(world, "truncated.pth", good.read_bytes()[: good.stat().st_size // 2])
    if case == "storage-claims-1e11":
        return write(world, "claim.pth", H.checkpoint_storage_claim())
    if case == "zip-bomb":
        return write(world, "bomb.pth", H.zip_bomb_checkpoint())
    if case == "legacy-os-system":
        data = (b"\x80\x02" + H.enc(0x1950A86A20F9469CFC6C) + b"." + b"\x80\x02" + H.enc(1001) + b"."
                + b"\x80\x02" + H.enc({}) + b"." + b"\x80\x02" + bytes(H.runs_code(marker)) + b".")
        return write(world, "legacy.pth", data)
    return write(world, f"ckpt-{case}.pth", H.checkpoint_with(payload(case, marker)))


CHECKPOINT_TEST_CASES = ["text-file", "truncated", "os-system", "forged-pointer-reconstruct", "bytearray-2GB",
                         "encode-amplifier", "billion-laughs", "storage-claims-1e11", "zip-bomb", "legacy-os-system"]


@pytest.mark.parametrize("case", CHECKPOINT_TEST_CASES)
def test_test_refuses_hostile_checkpoints(world, marker, checkpoint, case):
    path = checkpoint_case(world, marker, case, checkpoint)
    line = assert_one_line_failure(["test", world / "good.py", path, "--device", "cpu"], world, marker,
                                   expect=path.name)
    if case == "text-file":
        assert "not a checkpoint" in line and "unsafe" not in line
    if case in ("os-system", "legacy-os-system"):
        assert "unsafe" in line and "--allow-unsafe" in line


@pytest.mark.parametrize("case", ["os-system", "forged-pointer-frombuffer"])
def test_load_from_refuses_hostile_checkpoints(world, marker, checkpoint, case, tmp_path):
    path = checkpoint_case(world, marker, case, checkpoint)
    assert_one_line_failure(["train", world / "good.py", "--load-from", path, "--work-dir", tmp_path / "w",
                             "--device", "cpu"], world, marker, expect=path.name)


@pytest.mark.parametrize("case", ["os-system", "text-file"])
def test_demo_refuses_hostile_checkpoints(world, marker, checkpoint, case, tmp_path):
    path = checkpoint_case(world, marker, case, checkpoint)
    video = write(world, "never-read.mp4", b"")
    assert_one_line_failure(["demo", video, "-o", tmp_path / "o.mp4", "--config", world / "good.py",
                             "--checkpoint", path], world, marker, expect=path.name)


@pytest.mark.parametrize("case", ["os-system", "text-file"])
def test_export_onnx_refuses_hostile_checkpoints(world, marker, checkpoint, case, tmp_path):
    pytest.importorskip("onnx", reason="export-onnx needs the [onnx] extra")
    path = checkpoint_case(world, marker, case, checkpoint)
    assert_one_line_failure(["export-onnx", world / "good.py", path, "-o", tmp_path / "m.onnx"], world, marker,
                            expect=path.name)


def resume_case(world: Path, marker: Path, case: str, good: Path) -> Path:
    import torch

    from posec3d.engine.checkpoints import capture_rng
    from posec3d.models.checkpoint import save_checkpoint

    model, optimizer = _TRAINING["model"], _TRAINING["optimizer"]
    meta = {"epoch": 1, "iter": 1, "seed": 0}
    opt_state = optimizer.state_dict()
    rng = capture_rng()
    if case == "string-epoch":
        meta["epoch"] = "one"
    elif case == "optimizer-shapes":
        first = next(iter(model.parameters()))
        opt_state = {"state": {0: {"momentum_buffer": torch.zeros(first.numel() + 1)}},
                     "param_groups": opt_state["param_groups"]}
    elif case == "rng-state":
        rng["torch"] = torch.zeros(3, dtype=torch.uint8)
    elif case == "os-system":
        return checkpoint_case(world, marker, case, good)
    path = world / f"resume-{case}.pth"
    save_checkpoint(path, model.state_dict(), meta=meta, optimizer=opt_state, rng=rng)
    return path


@pytest.mark.parametrize("case", ["string-epoch", "optimizer-shapes", "rng-state", "os-system"])
def test_resume_refuses_bad_checkpoints(world, marker, checkpoint, case, tmp_path):
    path = resume_case(world, marker, case, checkpoint)
    assert_one_line_failure(["train", world / "good.py", "--resume", path, "--work-dir", tmp_path / "w",
                             "--device", "cpu"], world, marker, expect=path.name)


# --- configs --------------------------------------------------------------------------------------

@pytest.mark.parametrize("case,overrides", [
    ("batch-zero", dict(batch=0)), ("batch-negative", dict(batch=-4)), ("batch-string", dict(batch="'8'")),
    ("clip_len-zero", dict(clip_len=0)), ("epochs-string", dict(epochs="'10'")),
    ("in_channels-vs-joints", dict(in_channels=20)), ("classes-below-labels", dict(num_classes=1)),
    ("syntax-error", None)])
def test_train_refuses_bad_configs(world, marker, case, overrides, tmp_path):
    text = config_text(world / "good.pkl", **overrides) if overrides is not None else "model = dict(\n"
    config = write(world, f"[cfg] {case}.py", text)
    assert_one_line_failure(["train", config, "--work-dir", tmp_path / "w", "--device", "cpu"], world, marker,
                            expect=config.name)


@pytest.mark.parametrize("case,overrides", [("batch-string", dict(batch="'8'")), ("clip_len-zero", dict(clip_len=0)),
                                            ("classes-below-labels", dict(num_classes=1))])
def test_test_refuses_bad_configs(world, marker, checkpoint, case, overrides):
    config = write(world, f"test-{case}.py", config_text(world / "good.pkl", **overrides))
    assert_one_line_failure(["test", config, checkpoint, "--device", "cpu"], world, marker, expect=config.name)


# --- videos ---------------------------------------------------------------------------------------

def video_case(world: Path, case: str) -> Path:
    if case == "text-as-mp4":
        return write(world, "text.mp4", "not a video\n" * 10)
    if case == "empty":
        return write(world, "empty.mp4", b"")
    if case == "truncated-header":  # an ftyp box claiming 4 GB, then nothing
        return write(world, "claim.mp4", struct.pack(">I", 0xFFFFFFF0) + b"ftypisom" + b"\0" * 16)
    return world / "missing.mp4"


@pytest.mark.parametrize("case", ["text-as-mp4", "empty", "truncated-header", "missing"])
def test_extract_refuses_bad_videos(world, marker, case, tmp_path):
    video = video_case(world, case)
    assert_one_line_failure(["extract", video, "-o", tmp_path / "a.pkl"], world, marker, expect=video.name)
    assert not (tmp_path / "a.pkl").exists()


@pytest.mark.parametrize("case", ["text-as-mp4", "truncated-header"])
def test_demo_refuses_bad_videos(world, marker, checkpoint, case, tmp_path):
    video = video_case(world, case)
    assert_one_line_failure(["demo", video, "-o", tmp_path / "o.mp4", "--config", world / "good.py",
                             "--checkpoint", checkpoint], world, marker, expect=video.name)


def test_forged_pointer_payload_really_crashes_numpy(tmp_path):
    """The corpus is meaningful: plain ``pickle.load`` of the forged-pointer array kills the interpreter
    (numpy reads the raw bytes as object pointers), which the safe loader refuses above."""
    path = write(tmp_path, "forged.pkl", H.pickle_of([H.forged_pointer_array()]))
    code = f"import pickle; a = pickle.load(open({str(path)!r}, 'rb'))[0]; print(a[0])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, preexec_fn=_limit_memory)
    assert r.returncode == -11, (r.returncode, r.stderr[-500:])
