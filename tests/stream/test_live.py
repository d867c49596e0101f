"""`posec3d live` end to end on real clips: offline equivalence, a loopback stream, Ctrl-C."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from typer.testing import CliRunner

from posec3d.apps.cli import app

REPO = Path(__file__).resolve().parents[2]


def _events(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines]  # every line parses


def _frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _live_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "posec3d", "live", *map(str, args), "--no-display"]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return env


@pytest.mark.slow
@pytest.mark.parametrize("clip,frames", [("kinetics/clean_and_jerk.mp4", 160), ("ntu/ntu_sample.avi", None)])
def test_live_file_equals_the_offline_demo_per_person_and_window(data_dir, tmp_path, clip, frames):
    """`live FILE --no-realtime` and `demo --per-person --causal` agree on every person's every window.

    (The first 160 of clean_and_jerk's 300 frames keep the test short: 8 windows, the lift included.)"""
    video = data_dir / "videos" / clip
    js, events_path, out = tmp_path / "demo.json", tmp_path / "live.jsonl", tmp_path / "live.mp4"
    limit = ["--max-frames", str(frames)] if frames else []
    runner = CliRunner()
    r = runner.invoke(app, ["demo", str(video), "-o", str(tmp_path / "demo.mp4"), "--json", str(js),
                            "--per-person", "--window", "48", "--stride", "16", "--causal", "--topk", "1", *limit])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["live", str(video), "--no-realtime", "--window", "48", "--stride", "16",
                            "--jsonl", str(events_path), "--out", str(out), "--no-display", *limit])
    assert r.exit_code == 0, r.output
    doc = json.loads(js.read_text())
    offline = {(p["person"], w["start"], w["end"]): w for p in doc["persons"] for w in p.get("timeline", [])}
    events = _events(events_path)
    live = {(e["person"], *e["window"]): e for e in events if e["event"] == "window"}
    assert offline and set(live) == set(offline)
    for key, w in offline.items():
        assert live[key]["label"] == w["label"], key
        assert abs(live[key]["score"] - w["score"]) <= 1e-5, key
        assert live[key]["unknown"] == w["unknown"]
    end = events[-1]
    assert end["event"] == "end" and end["reason"] == "end of stream" and end["dropped"] == 0
    assert _frames(out) == doc["num_frames"] == end["frames"]
    assert any(e["event"] == "action" for e in events)


def test_a_camera_that_cannot_be_opened_is_one_line(tmp_path):
    r = CliRunner().invoke(app, ["live", "/dev/video77", "--no-display", "--jsonl", str(tmp_path / "e.jsonl")])
    assert r.exit_code == 1
    msg = str(r.exception)
    assert "camera /dev/video77" in msg and "cannot open" in msg and "\n" not in msg


def _mpegts(video: Path, max_frames: int) -> bytes:
    """A real clip re-encoded as an MPEG-TS byte stream (what a camera server would send)."""
    buf = io.BytesIO()
    with av.open(str(video)) as src, av.open(buf, "w", format="mpegts") as dst:
        stream = dst.add_stream("mpeg2video", rate=30)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 340, 256, "yuv420p", 2_000_000
        for i, frame in enumerate(src.decode(video=0)):
            if i >= max_frames:
                break
            yuv = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24").reformat(
                format="yuv420p")
            yuv.pts = i
            for packet in stream.encode(yuv):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return buf.getvalue()


@pytest.mark.slow
def test_live_reads_a_loopback_stream_and_reconnects_when_the_server_dies(data_dir, tmp_path):
    """An MPEG-TS served over TCP on 127.0.0.1 in real time; the server dies mid-clip."""
    data = _mpegts(data_dir / "videos/kinetics/clean_and_jerk.mp4", 300)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    sent = {}

    def serve():
        conn, _ = server.accept()
        chunk = 188 * 100
        start = time.perf_counter()
        # 300 frames at 30 fps take 10 s; send at that pace and die after 60% of it.
        for i in range(0, int(len(data) * 0.6), chunk):
            try:
                conn.sendall(data[i:i + chunk])
            except OSError:
                break
            time.sleep(max(0.0, start + 10.0 * (i + chunk) / len(data) - time.perf_counter()))
        sent["bytes"] = i
        conn.close()
        server.close()  # the server is gone: reconnects are refused

    threading.Thread(target=serve, daemon=True).start()
    events_path, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    proc = subprocess.run(_live_cmd(f"tcp://127.0.0.1:{port}", "--window", "16", "--stride", "8",
                                    "--reconnect", "2", "--jsonl", events_path, "--out", out),
                          env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "gave up after 2 reconnect attempts" in last and f"tcp://127.0.0.1:{port}" in last
    assert "Traceback" not in proc.stderr
    events = _events(events_path)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and events[-1]["reason"] == "error"
    assert kinds.count("reconnect") == 2
    assert [e["wait_s"] for e in events if e["event"] == "reconnect"] == [0.5, 1.0]  # backoff
    assert "action" in kinds and events[-1]["processed"] > 16
    assert _frames(out) >= events[-1]["processed"]


@pytest.mark.slow
def test_sigint_mid_run_leaves_a_playable_video_and_complete_events(data_dir, tmp_path):
    events_path, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    proc = subprocess.Popen(_live_cmd(data_dir / "videos/kinetics/clean_and_jerk.mp4", "--realtime",
                                      "--window", "16", "--stride", "8", "--jsonl", events_path, "--out", out),
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:  # interrupt once the first action is out
        if events_path.is_file() and '"event": "action"' in events_path.read_text():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    events = _events(events_path)
    assert events[-1]["event"] == "end" and events[-1]["reason"] == "interrupted"
    assert events[-1]["frames"] < 300  # it really stopped mid-clip
    assert _frames(out) >= 1 and out.with_suffix(".mp4").is_file()
    assert not list(tmp_path.glob(".live*"))  # no temporary left behind


def test_duration_ends_the_run_cleanly(data_dir, tmp_path):
    events_path, out = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    r = CliRunner().invoke(app, ["live", str(data_dir / "videos/kinetics/clean_and_jerk.mp4"), "--duration", "1",
                                 "--window", "16", "--stride", "8", "--jsonl", str(events_path), "--out", str(out),
                                 "--no-display"])
    assert r.exit_code == 0, r.output
    end = _events(events_path)[-1]
    assert end["event"] == "end" and end["reason"] == "duration"
    assert end["processed"] == 30 == _frames(out)  # frames 0..29 are the first second at 29.97 fps


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_live_with_an_onnx_pose_model_on_two_workers_equals_the_causal_offline_run(data_dir, tmp_path, recognizer):
    """`live --pose-model model.onnx`: the ONNX top-down backend runs live on two pose workers (it keeps
    no state between frames) and gives the windows the one-instance offline causal run gives."""
    from tests.pose.test_onnx import IN_H, IN_W, LineSimCC, _export

    from posec3d.pose.estimators.onnx_topdown import MediaPipePersonBoxes, OnnxTopDownPose
    from posec3d.stream import analyse_video
    from posec3d.stream.live import live_estimator, pose_workers_for, run_live

    onnx = _export(LineSimCC(), (1, 3, IN_H, IN_W), tmp_path / "pose.onnx", ["simcc_x", "simcc_y"])
    probe = live_estimator(onnx)
    assert isinstance(probe, OnnxTopDownPose) and probe.frame_independent
    probe.close()
    assert pose_workers_for(True, None) == min(2, os.cpu_count() or 1) and pose_workers_for(False, 2) == 1
    video = data_dir / "videos/kinetics/clean_and_jerk.mp4"
    events = []
    summary = run_live(video, recognizer, pose_model=onnx, pose_workers=2, window=16, stride=8, max_frames=40,
                       jsonl=tmp_path / "live.jsonl", on_event=events.append)
    assert summary.reason == "end of stream" and summary.processed == 40
    assert events[0]["pose_workers"] == 2
    offline_estimator = OnnxTopDownPose(onnx, max_persons=2,
                                        box_detector=MediaPipePersonBoxes(2, second_pass="off"))
    doc = analyse_video(video, recognizer, per_person=True, window=16, stride=8, max_frames=40, causal=True,
                        estimator=offline_estimator, topk=1).to_json()
    offline_estimator.close()
    offline = {(p["person"], w["start"], w["end"]): w for p in doc["persons"] for w in p.get("timeline", [])}
    live = {(e["person"], *e["window"]): e for e in events if e["event"] == "window"}
    assert offline and set(live) == set(offline)
    for key, w in offline.items():
        assert live[key]["label"] == w["label"] and abs(live[key]["score"] - w["score"]) <= 1e-5, key


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="needs Xvfb (`apt-get install -y xvfb`, as .ci/run does)")
def test_live_display_puts_the_drawn_frames_in_a_window(data_dir, tmp_path):
    """--display under a virtual X server: the window shows the drawn frames as they come."""
    events_path = tmp_path / "e.jsonl"
    cmd = ["xvfb-run", "-a", sys.executable, "-m", "posec3d", "live", str(data_dir / "videos/kinetics/clean_and_jerk.mp4"),
           "--display", "--max-frames", "30", "--jsonl", str(events_path)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "no display" not in proc.stderr
    end = _events(events_path)[-1]
    assert end["reason"] == "end of stream" and end["processed"] == 30
    assert 20 <= end["shown"] <= 30  # the renderer may still hold the last frame or two at the end


def test_live_without_a_display_goes_on_without_one(data_dir, tmp_path):
    events_path = tmp_path / "e.jsonl"
    env = {k: v for k, v in _env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run(_live_cmd(data_dir / "videos/kinetics/clean_and_jerk.mp4", "--max-frames", "12",
                                    "--jsonl", events_path)[:-1] + ["--display"],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "no display (DISPLAY is not set): running with --no-display" in proc.stderr
    end = _events(events_path)[-1]
    assert end["reason"] == "end of stream" and end["processed"] == 12 and end["shown"] == 0


def test_event_log_appends_to_an_existing_file_and_mends_a_cut_line(tmp_path):
    """A second run's events follow the first run's; a line cut by a killed run is not glued to ours."""
    from posec3d.stream.live import _EventLog

    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "start", "run": 1}\n{"event": "end", "run": 1}\n{"event": "win')
    seen = []
    log = _EventLog(path, seen.append)
    log.write({"event": "start", "run": 2})
    log.close()
    lines = path.read_text().splitlines()
    assert lines[:2] == ['{"event": "start", "run": 1}', '{"event": "end", "run": 1}']
    assert lines[2] == '{"event": "win' and json.loads(lines[3]) == {"event": "start", "run": 2}
    assert seen == [{"event": "start", "run": 2}]
    log = _EventLog(path, None)  # ends with a newline now: nothing is added before the next event
    log.write({"event": "start", "run": 3})
    log.close()
    assert [json.loads(x)["run"] for x in path.read_text().splitlines()[3:]] == [2, 3]
