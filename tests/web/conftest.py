"""A real `posec3d serve` process per test module, and clips cut from the real videos of ../shared."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("gradio", reason="the web tests need the [web] extra (installed by .[test])")
httpx = pytest.importorskip("httpx", reason="the web tests need httpx (installed by .[test])")

REPO = Path(__file__).resolve().parents[2]
MAX_UPLOAD_MB = 1
STARTUP_TIMEOUT_S = 180


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    tmpdir: Path            # the server's TMPDIR: every temporary file it makes lives under it
    log: Path

    def temp_files(self) -> list[Path]:
        """Files left in the per-request folders (the Gradio cache, pruned by age, is not one)."""
        roots = list(self.tmpdir.glob("posec3d-serve-*"))
        assert len(roots) == 1, roots  # the server's one temporary folder, where TMPDIR says
        return [p for p in roots[0].rglob("*") if p.is_file() and p.relative_to(roots[0]).parts[0] != "gradio"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, *extra: str) -> Server:
    port = free_port()
    env = dict(os.environ, TMPDIR=str(tmp), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO),
               GRADIO_ANALYTICS_ENABLED="False")
    log = tmp / "server.log"
    cmd = [sys.executable, "-m", "posec3d", "serve", "--port", str(port), "--max-upload-mb", str(MAX_UPLOAD_MB),
           *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"posec3d serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return Server(url, proc, tmp, log)
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"posec3d serve did not answer in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    # A server that stops removes its temporary folder, Gradio's cache in it included.
    assert list(server.tmpdir.glob("posec3d-serve-*")) == [], server.log.read_text()


def cut_clip(src: Path, dst: Path, seconds: float, short_side: int | None = None) -> Path:
    """The first ``seconds`` of a real video, re-encoded by the package's own reader and writer."""
    from posec3d.render import VideoWriter
    from posec3d.pose.video import VideoReader

    with VideoReader(src, short_side=short_side) as reader:
        frames = [rgb for _, (_, rgb) in zip(range(round(seconds * reader.fps)), reader)]
        with VideoWriter(dst, fps=reader.fps, width=reader.out_width, height=reader.out_height) as writer:
            for rgb in frames:
                writer.write(rgb)
    return dst


def write_y4m(src: Path, dst: Path, seconds: float, fps: int = 15, width: int = 480) -> Path:
    """A YUV4MPEG2 file (Chromium's fake camera input): header, then one ``FRAME`` + I420 planes each."""
    frames = []
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        step = float(stream.average_rate) / fps
        w, h = width, round(stream.codec_context.height * width / stream.codec_context.width / 2) * 2
        for i, frame in enumerate(inp.decode(stream)):
            if len(frames) >= seconds * fps:
                break
            if i >= len(frames) * step:
                frames.append(frame.reformat(width=w, height=h, format="yuv420p").to_ndarray())
    with open(dst, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for planes in frames:
            out.write(b"FRAME\n")
            out.write(np.ascontiguousarray(planes).tobytes())
    return dst
