"""Every command that writes files, on a full disk and on a read-only one: one line, exit 1,
existing output files intact, no temporary files left (issue 13).

The failures are real: a small tmpfs is mounted and filled up (ENOSPC), or remounted read-only
(EROFS; ``chmod`` would not stop root, which CI runs as). Mounting needs root (CAP_SYS_ADMIN);
without it these tests skip with that reason. The CLI entry point (``posec3d.apps.cli.main``)
runs in-process so its error handler is what is tested; inputs are tiny (2-4 frames).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from posec3d.data.annotations import load_annotation_file, save_annotations

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MSR_CONFIG = REPO / "tests" / "engine" / "configs" / "msr_deterministic.py"
OLD = b"the previous output, which must survive\n"


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a tmpfs for real ENOSPC/EROFS failures "
                    f"(needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _fill(disk: Path, room: int) -> None:
    """Use up the tmpfs, leaving about ``room`` bytes."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize - room
    with open(disk / "filler", "wb") as f:
        try:
            f.write(b"\0" * max(0, free))
            f.flush()
        except OSError:
            pass


def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    from posec3d.apps.cli import main

    argv = sys.argv
    sys.argv = ["posec3d", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """`posec3d download`'s source: a loopback HTTP server and a user catalogue naming one file."""
    import hashlib
    import http.server
    import json
    import threading

    root = tmp_path_factory.mktemp("served")
    data = bytes(range(256)) * 1024  # 256 KiB
    name = f"tiny-{hashlib.sha256(data).hexdigest()[:8]}.pth"
    (root / name).write_bytes(data)
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args):
            pass

        def handle(self):
            try:
                super().handle()
            except OSError:  # the client stopped reading (its disk was full): not the server's problem
                pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (root / "models.json").write_text(json.dumps({"models": [dict(
        name="tiny-download", config=str(MSR_CONFIG), file=name, sha256_prefix=name[5:13],
        url=f"http://127.0.0.1:{httpd.server_address[1]}/{name}")]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSEC3D_MODELS", str(root / "models.json"))
        yield root
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, data_dir, catalogue) -> dict:
    """Small real inputs for every writer, on a normal disk."""
    from posec3d.engine import config as C
    from posec3d.models import build_model
    from posec3d.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("inputs")
    raw = load_annotation_file(data_dir / "datasets/msr_action3d/msr_action3d_kinect20_proj2d.pkl")
    train_ids, test_ids = raw["split"]["xsub_train"][::30][:8], raw["split"]["xsub_test"][::45][:4]
    ann = root / "msr.pkl"
    save_annotations(ann, [a for a in raw["annotations"] if a["frame_dir"] in set(train_ids) | set(test_ids)],
                     split={"xsub_train": train_ids, "xsub_test": test_ids})
    options = [f"ann_file={ann}", "data.test.split=xsub_test", "data.val.split=xsub_test"]
    cfg = C.load_config(MSR_CONFIG, options)
    torch.manual_seed(0)
    ckpt = root / "init.pth"
    save_checkpoint(ckpt, build_model(C.model_cfg(cfg)).state_dict())
    videos = root / "videos"
    videos.mkdir()
    (videos / "taichi.mp4").symlink_to(data_dir / "videos/kinetics/ta_chi.mp4")
    video_list = root / "list.txt"
    video_list.write_text(f"{data_dir / 'videos/kinetics/ta_chi.mp4'}\t0\n{data_dir / 'videos/misc/test.avi'}\t1\n")
    skeletons = root / "skeletons"
    skeletons.mkdir()
    lines = ["1", "1", "72057594037944738 0 1 1 1 1 0 0.1 -0.2 2", "25"]
    lines += [" ".join(["0.1"] * 5 + [str(100 + j), str(200 + j)] + ["0.5"] * 4 + ["2"]) for j in range(25)]
    (skeletons / "S001C001P001R001A001.skeleton").write_text("\n".join(lines) + "\n")
    fusion = data_dir / "skeleton/fusion_scores"
    return dict(root=root, ann=ann, ckpt=ckpt, options=options, videos=videos, list=video_list,
                skeletons=skeletons, fusion=[fusion / "joint.pkl", fusion / "bone.pkl"],
                ta_chi=data_dir / "videos/kinetics/ta_chi.mp4")


# name -> (arguments with {D} for the broken folder and {T} for a working one, existing files in D,
#          bytes left free on the full disk, slow)
WRITERS = {
    "train": (["train", str(MSR_CONFIG), "--work-dir", "{D}/run", "--seed", "0", "--cfg-options", "{options}"],
              ["run/latest.pth", "run/epoch_1.pth"], 24_000, False),
    "extract": (["extract", "{ta_chi}", "-o", "{D}/poses.pkl", "--max-frames", "2", "--short-side", "128"],
                ["poses.pkl"], 0, False),
    "test --out": (["test", str(MSR_CONFIG), "{ckpt}", "--out", "{D}/scores.pkl", "--cfg-options", "{options}"],
                   ["scores.pkl"], 0, False),
    "test --json": (["test", str(MSR_CONFIG), "{ckpt}", "--json", "{D}/metrics.json", "--cfg-options", "{options}"],
                    ["metrics.json"], 0, False),
    "demo -o": (["demo", "{ta_chi}", "-o", "{D}/demo.mp4", "--max-frames", "4", "--num-clips", "1"],
                ["demo.mp4"], 0, True),
    "demo --json": (["demo", "{ta_chi}", "-o", "{T}/demo.mp4", "--json", "{D}/demo.json", "--max-frames", "4",
                     "--num-clips", "1"], ["demo.json"], 0, True),
    "demo --save-frame": (["demo", "{ta_chi}", "-o", "{T}/demo.mp4", "--save-frame", "{D}/frame.png",
                           "--max-frames", "4", "--num-clips", "1"], ["frame.png"], 0, True),
    "demo-folder": (["demo-folder", "{videos}", "-o", "{D}/report", "--max-frames", "4", "--num-clips", "1"],
                    ["report/predictions.csv", "report/report.xlsx"], 0, True),
    "build-dataset 1 worker": (["build-dataset", "{list}", "-o", "{D}/dataset.pkl", "--max-frames", "2",
                                "--short-side", "128"], ["dataset.pkl"], 0, False),
    "build-dataset 2 workers": (["build-dataset", "{list}", "-o", "{D}/dataset.pkl", "--max-frames", "2",
                                 "--short-side", "128", "--workers", "2"], ["dataset.pkl"], 0, True),
    "vis": (["vis", "{ann}", "-o", "{D}/vis", "--limit", "1"], ["vis/old.mp4"], 0, False),
    "ensemble --json": (["ensemble", "{fusion0}", "{fusion1}", "--json", "{D}/fused.json"], ["fused.json"], 0, False),
    "convert ntu-skeleton": (["convert", "ntu-skeleton", "{skeletons}", "-o", "{D}/ntu.pkl"], ["ntu.pkl"], 0, False),
    "download": (["download", "tiny-download", "--dir", "{D}/models"], ["models/old.pth"], 0, False),
    "live --out": (["live", "{ta_chi}", "--out", "{D}/live.mp4", "--max-frames", "4", "--num-clips", "1",
                    "--no-display"], ["live.mp4"], 0, True),
    "export-onnx": (["export-onnx", str(MSR_CONFIG), "{ckpt}", "-o", "{D}/model.onnx", "--clip-len", "8",
                     "--size", "24"], ["model.onnx"], 0, True),
}


def _args(template: list[str], inputs: dict, disk: Path, good: Path) -> list[str]:
    out = []
    for a in template:
        if a == "{options}":
            out += inputs["options"]
            continue
        out.append(a.format(D=disk, T=good, ta_chi=inputs["ta_chi"], ckpt=inputs["ckpt"], videos=inputs["videos"],
                            list=inputs["list"], ann=inputs["ann"], fusion0=inputs["fusion"][0],
                            fusion1=inputs["fusion"][1], skeletons=inputs["skeletons"]))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


CASES = [pytest.param(name, mode, marks=[pytest.mark.slow] if spec[3] else [], id=f"{name}-{mode}")
         for name, spec in WRITERS.items() for mode in ("full", "read-only")]


@pytest.mark.parametrize("name, mode", CASES)
def test_writer_on_a_full_or_read_only_disk(name, mode, inputs, tmp_path, capsys):
    template, existing, room, _ = WRITERS[name]
    disk, good = tmp_path / "disk", tmp_path / "good"
    good.mkdir()
    _mount(disk, "1m")
    try:
        for rel in existing:
            (disk / rel).parent.mkdir(parents=True, exist_ok=True)
            (disk / rel).write_bytes(OLD)
        if mode == "full":
            _fill(disk, room)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = _files(disk)
        code, out, err = run_cli(*_args(template, inputs, disk, good), capsys=capsys)
        lines = err.strip().splitlines()
        reason = "no space left on the device" if mode == "full" else "read-only file system"
        assert code == 1, (code, out[-500:], err[-2000:])
        assert len(lines) == 1 and lines[0].startswith("error: "), err[-2000:]
        assert str(disk) in lines[0] and reason in lines[0], lines[0]
        assert "Traceback" not in err
        after = _files(disk)
        assert {k: after.get(k) for k in before} == before, "an existing file changed or vanished"
        temps = [k for k in after if re.search(r"(^|/)\.[^/]+\.tmp(\.\w+)?$", k)]
        assert not temps, f"temporary files left behind: {temps}"
    finally:
        _umount(disk)


def test_every_writer_is_covered():
    """The list above is the one of the commands that write files: a new writer must join it."""
    from posec3d.apps.cli import app

    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    groups = {g.name for g in app.registered_groups}
    read_only = {"info", "models"}  # print to stdout, write no file
    read_only |= {"serve"}  # writes only temporary files of its own, removed after each request
    covered = {name.split()[0] for name in WRITERS}
    assert commands | groups == covered | read_only, (commands | groups) ^ (covered | read_only)


# ----------------------------------------------------------------------------------------------
# interrupted writes


def test_stale_temp_files_of_dead_writers_are_removed_on_the_next_write(tmp_path):
    from posec3d.files import atomic_write_bytes, remove_stale_temp_files
    import posec3d.files as files

    # a write killed mid-way (kill -9) leaves its temp file; simulate one from a process that is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".latest.pth.{files._HOST}-{dead}.abc123.tmp"
    stale.write_bytes(b"\0" * 1000)
    other = tmp_path / f".epoch_3.pth.{files._HOST}-{dead}.x1y2z3.tmp"
    other.write_bytes(b"\0" * 10)
    live = tmp_path / f".config.py.{files._HOST}-{os.getppid()}.q9w8e7.tmp"  # a process still running
    live.write_bytes(b"")
    foreign = tmp_path / ".notes.txt.tmp"  # not one of ours: never touched
    foreign.write_bytes(b"")
    files._CLEANED.discard(str(tmp_path.absolute()))
    atomic_write_bytes(tmp_path / "latest.pth", b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name, "latest.pth"])
    assert remove_stale_temp_files(tmp_path) == []


@pytest.mark.slow
def test_killed_checkpoint_writes_leave_nothing_after_the_next_run(tmp_path):
    """kill -9 a process in the middle of writing a large file, then write again from another."""
    script = (f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
              "from posec3d.files import atomic_write\n"
              "import os, time\n"
              f"with atomic_write({str(tmp_path / 'latest.pth')!r}, 'wb') as f:\n"
              "    f.write(b'x' * 1000); f.flush(); print('writing', flush=True); time.sleep(60)\n")
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        proc.kill()
        proc.wait()
        # each new writer removed the previous killed one's file: they never pile up
        assert len(list(tmp_path.glob(".latest.pth.*.tmp"))) == 1 and not (tmp_path / "latest.pth").exists()
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
                    "from posec3d.files import atomic_write_bytes\n"
                    f"atomic_write_bytes({str(tmp_path / 'latest.pth')!r}, b'ok')"], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pth"]


@pytest.mark.slow
def test_killing_build_dataset_stops_its_workers(tmp_path, data_dir):
    videos = [data_dir / "videos/kinetics/clean_and_jerk.mp4", data_dir / "videos/kinetics/ta_chi.mp4",
              data_dir / "videos/kinetics/skateboarding.mp4", data_dir / "videos/misc/test.mp4"]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{v}\t{i}\n" for i, v in enumerate(videos)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, "-m", "posec3d", "build-dataset", str(lst), "-o",
                               str(tmp_path / "d.pkl"), "--workers", "2"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import time

    def children(pid: int) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        return " Z " not in stat  # a zombie has exited

    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline:
        # the pool's workers (the resource tracker is a child too: it exits with its pipe)
        workers = [c for c in children(parent.pid)
                   if "spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")]
        if len(workers) == 2:
            break
        time.sleep(0.2)
    assert len(workers) == 2, "the two workers did not start"
    time.sleep(2)  # some may still be starting: they must notice too
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60  # a worker still importing torch checks when its start-up ends
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.2)
    left = [w for w in workers if alive(w)]
    for w in left:
        os.kill(w, 9)
    assert not left, "workers kept running after their parent was killed"
