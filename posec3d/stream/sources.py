"""Where frames come from: a file, a camera or a network stream, decoded with PyAV.

Every source yields ``Frame``s downscaled for pose estimation (short side at most
``core.POSE_SHORT_SIDE``, by swscale from the decoded picture, as ``pose.extract`` does) with the
original size alongside, so keypoints come out in original pixels whichever source it is.
"""
from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from posec3d.errors import VideoError
from posec3d.stream.core import POSE_SHORT_SIDE

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "tcp", "udp", "srt", "rtp", "hls")


@dataclass
class Frame:
    index: int                          # frame number in the source (counting frames dropped later)
    t: float                            # seconds since the source started
    rgb: np.ndarray                     # (h, w, 3) uint8, downscaled for pose estimation
    original_size: tuple[int, int]      # (w, h) of the source's pictures
    received: float = 0.0               # time.perf_counter() when it was decoded


def source_kind(source: str) -> str:
    """``"camera"`` (an index such as ``0`` or a device such as ``/dev/video0``), ``"stream"`` (a URL)
    or ``"file"``."""
    s = str(source)
    if s.isdigit() or s.startswith("/dev/video") or re.match(r"^(v4l2|avfoundation|dshow):", s):
        return "camera"
    scheme = s.split("://", 1)[0].lower() if "://" in s else ""
    if scheme in STREAM_SCHEMES:
        return "stream"
    return "file"


class FileSource:
    """A video file, frame by frame (``pose.video.VideoReader`` downscaling for the pose model)."""

    kind = "file"

    def __init__(self, path, *, max_frames: Optional[int] = None, short_side: int = POSE_SHORT_SIDE) -> None:
        from posec3d.pose.video import VideoReader

        self.name = str(path)
        self._reader = VideoReader(path, max_frames=max_frames, short_side=short_side)
        self.fps = self._reader.fps or 25.0
        self.original_size = (self._reader.width, self._reader.height)
        self.size = (self._reader.out_width, self._reader.out_height)
        self.expected_frames = self._reader.expected_frames
        if max_frames is not None and self.expected_frames:
            self.expected_frames = min(self.expected_frames, max_frames)

    def __iter__(self) -> Iterator[Frame]:
        for index, rgb in self._reader:
            yield Frame(index, index / self.fps, rgb, self.original_size, time.perf_counter())

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _camera_input(source: str) -> tuple[str, Optional[str]]:
    """(device, input format) for a camera index or device on this platform."""
    s = str(source)
    if ":" in s and s.split(":", 1)[0] in ("v4l2", "avfoundation", "dshow"):
        fmt, dev = s.split(":", 1)
        return dev, fmt
    if sys.platform.startswith("linux"):
        return (f"/dev/video{s}" if s.isdigit() else s), "v4l2"
    if sys.platform == "darwin":
        return s, "avfoundation"
    if sys.platform.startswith("win"):
        return (f"video={s}" if not s.startswith("video=") else s), "dshow"
    return s, None


class LiveSource:
    """A camera or network stream (or a file played as one): ``open()`` connects, iteration decodes.

    A network read that stalls for ``read_timeout`` seconds, or a stream that ends, stops the
    iteration with ``ended`` set to why; the caller decides whether to reconnect.
    """

    def __init__(self, source: str, *, short_side: int = POSE_SHORT_SIDE, open_timeout: float = 10.0,
                 read_timeout: float = 5.0) -> None:
        self.source = str(source)
        self.kind = source_kind(self.source)
        self.short_side = short_side
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self._container = None
        self.fps: Optional[float] = None
        self.original_size: Optional[tuple[int, int]] = None
        self.size: Optional[tuple[int, int]] = None
        self.ended: Optional[str] = None
        self.expected_frames: Optional[int] = None

    def describe(self) -> str:
        if self.kind == "camera":
            dev, _ = _camera_input(self.source)
            return f"camera {self.source}" + (f" ({dev})" if dev != self.source else "")
        return self.source

    def open(self) -> None:
        """Connect (raises ``VideoError`` naming the source when it cannot be opened)."""
        import av

        options: dict = {}
        fmt = None
        target = self.source
        if self.kind == "camera":
            target, fmt = _camera_input(self.source)
        elif self.kind == "file":
            if not Path(target).is_file():
                raise VideoError(f"{target}: video file not found")
        try:
            if self.kind == "stream":
                container = av.open(target, options=options, timeout=(self.open_timeout, self.read_timeout))
            else:
                container = av.open(target, format=fmt, options=options)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoError(f"{self.describe()}: cannot open ({e})") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.describe()}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        self._container, self._stream = container, stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        if ctx.width and ctx.height:
            self._set_size(ctx.width, ctx.height)
        self.expected_frames = int(stream.frames) or None if self.kind == "file" else None
        self.ended = None
        self._first_pts: Optional[float] = None

    def _set_size(self, width: int, height: int) -> None:
        from posec3d.pose.video import scaled_size

        self.original_size = (int(width), int(height))
        self.size = scaled_size(int(width), int(height), self.short_side)

    def frames(self, start_index: int = 0, t_offset: float = 0.0) -> Iterator[Frame]:
        """Decode until the stream ends or breaks (``ended`` says which); indices go on from ``start_index``."""
        import av

        index = start_index
        try:
            for frame in self._container.decode(self._stream):
                if self.original_size is None or (frame.width, frame.height) != self.original_size:
                    self._set_size(frame.width, frame.height)
                rgb = frame.reformat(width=self.size[0], height=self.size[1], format="rgb24").to_ndarray()
                pts = frame.time
                if pts is not None and self._first_pts is None:
                    self._first_pts = pts
                t = (pts - self._first_pts) if pts is not None else index / (self.fps or 25.0)
                yield Frame(index, t_offset + t, np.ascontiguousarray(rgb), self.original_size, time.perf_counter())
                index += 1
            self.ended = "end of stream"
        except (av.FFmpegError, OSError, EOFError) as e:
            self.ended = f"read failed ({e})"

    def close(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; nothing to keep
                pass
            self._container = None


__all__ = ["Frame", "FileSource", "LiveSource", "source_kind"]
