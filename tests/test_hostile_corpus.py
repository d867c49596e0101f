"""Hostile and malformed files against every CLI entry point that reads one (annotation, score dump,
checkpoint, config, video). Each case runs the real CLI in a subprocess under a 10 s limit and an
address-space limit, and must end with exit 1 and exactly one line on stderr: no traceback, no
segfault, and no code run (every case plants a marker file that a `__reduce__` payload would create).

All files are generated here from pickle opcodes (tests/hostile_files.py); nothing binary is committed.
"""
from __future__ import annotations

import json
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


# Each case runs under a small launcher that starts the command as its own child and reports that
# child's rusage. Measuring from here would not do: Linux carries a parent's peak RSS into a child
# it forks or spawns (GBs once other tests in this process have loaded models), while the launcher,
# once exec'd, is small. The launcher dies by the same signal as the command, so a segfault shows.
_LAUNCHER = """
import json, os, resource, signal, subprocess, sys
limit, report = int(sys.argv[1]), sys.argv[2]
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
p = subprocess.Popen(sys.argv[3:], preexec_fn=cap)
signal.signal(signal.SIGTERM, lambda *_: p.kill())
_, status, usage = os.wait4(p.pid, 0)
with open(report, "w") as f:
    json.dump([usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024], f)
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def wall_limit() -> float:
    """10 s on an idle machine; on a shared, overloaded one the wall clock stretches with the load (the
    CPU time each case may use stays 10 s)."""
    return TIME_LIMIT * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))


def run_cli(args: list[str], cwd: Path) -> tuple[int, str, str, float, float, float]:
    """(exit code, stdout, stderr, wall seconds, CPU seconds, peak RSS in MB) of ``python -m posec3d ARGS``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(suffix=".json") as report:
        start = time.monotonic()
        p = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(ADDRESS_LIMIT), report.name,
                              sys.executable, "-m", "posec3d", *map(str, args)],
                             stdout=out, stderr=err, cwd=cwd, env=ENV)
        killer = threading.Timer(wall_limit() + 5, p.terminate)
        killer.start()
        code = p.wait()
        killer.cancel()
        seconds = time.monotonic() - start
        cpu, rss = json.loads(Path(report.name).read_text() or "[0, 0]")
        out.seek(0)
        err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace"), seconds, cpu, rss


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
    if case == "deep-json":
        return write(world, f"{case}.json", "[" * 100_000 + "]" * 100_000)
    if case == "huge-label":
        return write(world, f"{case}.pkl", pickle.dumps([dict(pred_score=g, gt_label=10**30) for g in good]))
    return write(world, f"scores-{case}.pkl", H.pickle_of([payload(case, marker)]))


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


# --- configs --------------------------------------------------------------------------------------

# --- videos ---------------------------------------------------------------------------------------

def video_case(world: Path, case: str) -> Path:
    if case == "text-as-mp4":
        return write(world, "text.mp4", "not a video\n" * 10)
    if case == "empty":
        return write(world, "empty.mp4", b"")
    if case == "truncated-header":  # an ftyp box claiming 4 GB, then nothing
        return write(world, "claim.mp4", struct.pack(">I", 0xFFFFFFF0) + b"ftypisom" + b"\0" * 16)
    return world / "missing.mp4"


# --- the corpus: (entry point, case) -> how to build its files and command line --------------------

def _annotation_spec(command: str):
    def build(w: Path, ckpt: Path, marker: Path, out: Path, case: str):
        path = annotation_case(out, marker, case)
        if command == "info":
            return ["info", path], str(path)
        return ["vis", path, "-o", out / "vis"], path.name
    return build


def _train_annotation(w, ckpt, marker, out, case):
    ann = annotation_case(out, marker, case) if case in PAYLOADS else malformed_annotations(out, case)
    config = write(out, f"train-{case}.py", config_text(ann))
    named = config.name if case in ("20-joints", "label-beyond-classes") else ann.name
    return ["train", config, "--work-dir", out / "work", "--device", "cpu"], named


def _test_annotation(w, ckpt, marker, out, case):
    ann = annotation_case(out, marker, case) if case in PAYLOADS else malformed_annotations(out, case)
    return ["test", w / "good.py", ckpt, "--ann-file", ann, "--split", "val", "--device", "cpu"], ann.name


def _scores(command: str):
    def build(w, ckpt, marker, out, case):
        path = score_case(out, marker, case)
        if command == "info":
            return ["info", path], path.name
        good = write(w, "good-scores.pkl", pickle.dumps([dict(pred_score=np.array([0.2, 0.8]), gt_label=1),
                                                          dict(pred_score=np.array([0.6, 0.4]), gt_label=0)]))
        return ["ensemble", good, path], path.name
    return build


def _checkpoint(command: str):
    def build(w, ckpt, marker, out, case):
        path = checkpoint_case(out, marker, case, ckpt)
        if command == "test":
            return ["test", w / "good.py", path, "--device", "cpu"], path.name
        if command == "load-from":
            return ["train", w / "good.py", "--load-from", path, "--work-dir", out / "w", "--device", "cpu"], path.name
        if command == "demo":
            video = write(w, "never-read.mp4", b"")
            return ["demo", video, "-o", out / "o.mp4", "--config", w / "good.py", "--checkpoint", path], path.name
        return ["export-onnx", w / "good.py", path, "-o", out / "m.onnx"], path.name
    return build


def _resume(w, ckpt, marker, out, case):
    path = resume_case(out, marker, case, ckpt)
    return ["train", w / "good.py", "--resume", path, "--work-dir", out / "w", "--device", "cpu"], path.name


CONFIG_FAULTS = {"batch-zero": dict(batch=0), "batch-negative": dict(batch=-4), "batch-string": dict(batch="'8'"),
                 "clip_len-zero": dict(clip_len=0), "epochs-string": dict(epochs="'10'"),
                 "in_channels-vs-joints": dict(in_channels=20), "classes-below-labels": dict(num_classes=1),
                 "syntax-error": None}


def _config(command: str):
    def build(w, ckpt, marker, out, case):
        overrides = CONFIG_FAULTS[case]
        text = config_text(w / "good.pkl", **overrides) if overrides is not None else "model = dict(\n"
        config = write(w, f"[cfg] {command} {case}.py", text)
        if command == "train":
            return ["train", config, "--work-dir", out / "w", "--device", "cpu"], config.name
        return ["test", config, ckpt, "--device", "cpu"], config.name
    return build


def _video(command: str):
    def build(w, ckpt, marker, out, case):
        video = video_case(out, case)
        if command == "extract":
            return ["extract", video, "-o", out / "a.pkl"], video.name
        return ["demo", video, "-o", out / "o.mp4", "--config", w / "good.py", "--checkpoint", ckpt], video.name
    return build


ENTRY_POINTS = {  # entry point -> (cases, builder)
    "info-annotation": (ANNOTATION_INFO_CASES, _annotation_spec("info")),
    "vis-annotation": (["forged-pointer-reconstruct", "billion-laughs", "os-system"], _annotation_spec("vis")),
    "train-annotation": (["forged-pointer-reconstruct", "os-system", "missing-img_shape", "img_shape-zero",
                          "3d-coordinates", "20-joints", "array-label", "label-beyond-classes"], _train_annotation),
    "test-annotation": (["billion-laughs", "img_shape-str", "missing-label"], _test_annotation),
    "info-scores": (["forged-pointer-frombuffer", "billion-laughs", "os-system", "empty-gt_label"], _scores("info")),
    "ensemble-scores": (["forged-pointer-scalar", "billion-laughs", "os-system", "torch-storage-claim", "empty-gt_label",
                         "complex-scores", "string-scores", "mixed-items", "nan-scores", "huge-label", "deep-json"],
                        _scores("ensemble")),
    "test-checkpoint": (CHECKPOINT_TEST_CASES, _checkpoint("test")),
    "load-from-checkpoint": (["os-system", "forged-pointer-frombuffer"], _checkpoint("load-from")),
    "demo-checkpoint": (["os-system", "text-file"], _checkpoint("demo")),
    "export-onnx-checkpoint": (["os-system", "text-file"], _checkpoint("export-onnx")),
    "resume-checkpoint": (["string-epoch", "optimizer-shapes", "rng-state", "os-system"], _resume),
    "train-config": (list(CONFIG_FAULTS), _config("train")),
    "test-config": (["clip_len-zero", "in_channels-vs-joints", "classes-below-labels"], _config("test")),
    "extract-video": (["text-as-mp4", "empty", "truncated-header", "missing"], _video("extract")),
    "demo-video": (["text-as-mp4", "truncated-header"], _video("demo")),
}
WORKERS = 2  # the cases run two at a time (CI has 2 cores); each is timed by its own CPU time


@pytest.fixture(scope="module")
def corpus(world, checkpoint):
    """Every case built, then run through the CLI (in parallel); (entry, case) -> (result, marker, expect)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = {}
    for entry, (cases, build) in ENTRY_POINTS.items():
        if entry == "export-onnx-checkpoint" and not _has_onnx():
            continue
        for case in cases:
            marker = world / "markers" / f"{entry}-{case}"
            marker.parent.mkdir(exist_ok=True)
            out = world / "out" / f"{entry}-{case}"
            out.mkdir(parents=True, exist_ok=True)
            args, expect = build(world, checkpoint, marker, out, case)
            jobs[(entry, case)] = (args, marker, expect)
    start = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {key: pool.submit(run_cli, args, world) for key, (args, _, _) in jobs.items()}
        results = {key: (futures[key].result(), jobs[key][1], jobs[key][2], jobs[key][0]) for key in jobs}
    cpu = sum(r[0][4] for r in results.values())
    print(f"\nhostile corpus: {len(results)} CLI runs, {time.monotonic() - start:.0f} s wall, {cpu:.0f} s CPU in "
          f"the children (~{cpu / WORKERS:.0f} s on an idle {WORKERS}-core machine), load {os.getloadavg()[0]:.1f}, "
          f"max RSS {max(r[0][5] for r in results.values()):.0f} MB")
    return results


def _has_onnx() -> bool:
    try:
        import onnx  # noqa: F401
    except ImportError:
        return False
    return True


def check_failure(corpus: dict, entry: str, case: str) -> str:
    """Exit 1, exactly one line on stderr naming the file, no traceback or segfault, no code run,
    within the time and memory limits."""
    (code, out, err, seconds, cpu, rss), marker, expect, args = corpus[(entry, case)]
    limit = wall_limit()
    lines = [line for line in err.splitlines() if line.strip()]
    report = (f"args {[str(a) for a in args]}: exit {code}, {seconds:.1f} s wall (limit {limit:.0f}), {cpu:.1f} s "
              f"CPU, {rss:.0f} MB\nstderr:\n{err[-3000:]}\nstdout:\n{out[-1000:]}")
    assert code != -11, "segfault: " + report
    assert not marker.exists(), "the payload ran code: " + report
    assert code == 1, report
    assert "Traceback" not in err, report
    assert len(lines) == 1 and lines[0].startswith("error: "), report
    assert cpu < TIME_LIMIT and seconds < limit, report
    assert rss < RSS_LIMIT_MB, report
    assert expect in lines[0], report
    return lines[0]


def _cases(entry: str) -> list[str]:
    return ENTRY_POINTS[entry][0]


@pytest.mark.parametrize("case", _cases("info-annotation"))
def test_info_refuses_hostile_annotations(corpus, case):
    check_failure(corpus, "info-annotation", case)  # names the path literally (markup-path included)


@pytest.mark.parametrize("case", _cases("vis-annotation"))
def test_vis_refuses_hostile_annotations(corpus, case):
    check_failure(corpus, "vis-annotation", case)


@pytest.mark.parametrize("case", _cases("train-annotation"))
def test_train_refuses_bad_annotations(corpus, case):
    check_failure(corpus, "train-annotation", case)


@pytest.mark.parametrize("case", _cases("test-annotation"))
def test_test_refuses_bad_annotations(corpus, case):
    check_failure(corpus, "test-annotation", case)


@pytest.mark.parametrize("case", _cases("info-scores"))
def test_info_refuses_bad_score_dumps(corpus, case):
    check_failure(corpus, "info-scores", case)


@pytest.mark.parametrize("case", _cases("ensemble-scores"))
def test_ensemble_refuses_bad_score_dumps(corpus, case):
    check_failure(corpus, "ensemble-scores", case)


@pytest.mark.parametrize("case", _cases("test-checkpoint"))
def test_test_refuses_hostile_checkpoints(corpus, case):
    line = check_failure(corpus, "test-checkpoint", case)
    if case == "text-file":
        assert "not a checkpoint" in line and "unsafe" not in line
    if case in ("os-system", "legacy-os-system"):
        assert "unsafe" in line and "--allow-unsafe" in line


@pytest.mark.parametrize("case", _cases("load-from-checkpoint"))
def test_load_from_refuses_hostile_checkpoints(corpus, case):
    check_failure(corpus, "load-from-checkpoint", case)


@pytest.mark.parametrize("case", _cases("demo-checkpoint"))
def test_demo_refuses_hostile_checkpoints(corpus, case):
    check_failure(corpus, "demo-checkpoint", case)


@pytest.mark.parametrize("case", _cases("export-onnx-checkpoint"))
def test_export_onnx_refuses_hostile_checkpoints(corpus, case):
    if not _has_onnx():
        pytest.skip("export-onnx needs the [onnx] extra (onnx is not installed here)")
    check_failure(corpus, "export-onnx-checkpoint", case)


@pytest.mark.parametrize("case", _cases("resume-checkpoint"))
def test_resume_refuses_bad_checkpoints(corpus, case):
    check_failure(corpus, "resume-checkpoint", case)


@pytest.mark.parametrize("case", _cases("train-config"))
def test_train_refuses_bad_configs(corpus, case):
    check_failure(corpus, "train-config", case)


@pytest.mark.parametrize("case", _cases("test-config"))
def test_test_refuses_bad_configs(corpus, case):
    check_failure(corpus, "test-config", case)


@pytest.mark.parametrize("case", _cases("extract-video"))
def test_extract_refuses_bad_videos(corpus, world, case):
    check_failure(corpus, "extract-video", case)
    assert not (world / "out" / f"extract-video-{case}" / "a.pkl").exists()


@pytest.mark.parametrize("case", _cases("demo-video"))
def test_demo_refuses_bad_videos(corpus, case):
    check_failure(corpus, "demo-video", case)


def test_forged_pointer_payload_really_crashes_numpy(tmp_path):
    """The corpus is meaningful: plain ``pickle.load`` of the forged-pointer array kills the interpreter
    (numpy reads the raw bytes as object pointers), which the safe loader refuses above."""
    path = write(tmp_path, "forged.pkl", H.pickle_of([H.forged_pointer_array()]))
    code = f"import pickle; a = pickle.load(open({str(path)!r}, 'rb'))[0]; print(a[0])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, preexec_fn=_limit_memory)
    assert r.returncode == -11, (r.returncode, r.stderr[-500:])


def test_info_prints_a_markup_path_literally(world):
    """A good file whose path holds rich markup: the table shows the path as it is."""
    folder = world / "[bold]odd["
    folder.mkdir(exist_ok=True)
    path = folder / "red]good.pkl"
    path.write_bytes((world / "good.pkl").read_bytes())
    code, out, err, *_ = run_cli(["info", path], world)
    assert code == 0, err
    assert str(path) in out.replace("\n", "")
