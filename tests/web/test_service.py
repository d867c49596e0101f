"""The pieces of `posec3d serve` that need no server: the core stays free of the web extra, limits,
names, the dataset tab's canvas sample, and the CLI's one-line errors."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from posec3d.web.service import Busy, Workers, probe_video, safe_display_name
from tests.web.conftest import REPO

WEB_MODULES = ("gradio", "fastapi", "uvicorn", "starlette", "multipart")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_the_core_and_the_cli_never_import_the_web_extra():
    code = ("import sys, posec3d, posec3d.apps.cli, posec3d.stream, posec3d.engine.inference\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WEB_MODULES!r}))")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_serve_without_the_extra_says_how_to_install_it_in_one_line():
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    out = _run("import sys; sys.modules['gradio'] = None; sys.argv = ['posec3d', 'serve']\n"
               "from posec3d.apps.cli import main; main()")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == ["error: posec3d serve needs the web extra (gradio missing): "
                                               "pip install 'posec3d[web]'"]


def test_serve_warns_off_loopback_and_rejects_an_unknown_model_and_a_bad_auth_in_one_line():
    out = _run("import sys; sys.argv = ['posec3d', 'serve', '--host', '0.0.0.0', '--model', 'no-such-model']\n"
               "from posec3d.apps.cli import main; main()")
    warning, error = out.stderr.strip().splitlines()
    assert warning == ("warning: serving on 0.0.0.0, reachable from other machines; add --auth USER:PASS so "
                       "only you can use it")
    assert out.returncode == 1 and error.startswith("error: unknown model 'no-such-model'")
    out = _run("import sys; sys.argv = ['posec3d', 'serve', '--auth', 'nopassword']\n"
               "from posec3d.apps.cli import main; main()")
    assert out.returncode == 1 and out.stderr.strip() == "error: --auth takes USER:PASS"


def test_client_file_names_are_labels_only():
    assert safe_display_name("/etc/passwd") == "passwd"
    assert safe_display_name("..\\..\\boot.ini") == "boot.ini"
    assert safe_display_name("<script>a.mp4") == "scripta.mp4"
    assert safe_display_name("") == "upload"
    assert safe_display_name("../") == "upload"


def test_probe_names_the_upload_not_the_temporary_path(tmp_path):
    junk = tmp_path / "upload"
    junk.write_bytes(b"hello")
    with pytest.raises(Exception) as e:
        probe_video(junk, "holiday.mov")
    assert str(e.value) == "holiday.mov: not a video (no frame PyAV can decode)"


def test_workers_run_at_most_n_at_once_and_turn_away_past_the_queue():
    workers = Workers(concurrency=2, max_queue=1)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def job():
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return threading.current_thread().name

    futures = [workers.submit(job) for _ in range(3)]  # 2 run, 1 waits
    with pytest.raises(Busy, match="server busy: 1 requests already waiting"):
        workers.submit(job)
    release.set()
    names = {f.result(timeout=10) for f in futures}
    assert peak[0] == 2 and len(names) <= 2 and all(n.startswith("posec3d-worker") for n in names)
    assert workers.run(lambda: 7) == 7  # the line is free again
    workers.close()


def test_dataset_samples_lose_their_file_names_and_get_a_canvas():
    pytest.importorskip("gradio")
    from posec3d.web.pages import _canvas_sample

    kp = np.zeros((1, 4, 17, 2), np.float32)
    kp[..., 0], kp[..., 1] = 300, 100
    sample = {"frame_dir": "a", "filename": "/etc/passwd", "file_path": "x.mp4", "keypoint": kp,
              "total_frames": 4}
    out = _canvas_sample(sample)
    assert "filename" not in out and "file_path" not in out and sample["filename"] == "/etc/passwd"
    assert out["img_shape"] == (116, 316)
    assert _canvas_sample({**sample, "img_shape": (480, 640)})["img_shape"] == (480, 640)
