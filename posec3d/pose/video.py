"""Video decoding with PyAV: frame-accurate, strided, optionally downscaled, truncation-aware."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from posec3d.errors import VideoError


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(w, h) with the short side at most ``short_side`` (never upscaled), both even."""
    if not short_side or min(width, height) <= short_side:
        return width, height
    scale = short_side / min(width, height)
    # Even sizes keep swscale on its fast path for YUV 4:2:0 input.
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class VideoReader:
    """Iterate over a video's frames as C-contiguous RGB uint8 arrays.

    ``stride`` keeps every ``stride``-th decoded frame (frame indices 0, s, 2s, ...), and
    ``max_frames`` caps how many frames are *returned* (after the stride). ``short_side``
    downscales frames (keeping the aspect ratio) so the short side is at most that many pixels;
    ``width``/``height`` stay those of the original video and ``out_width``/``out_height`` are
    those of the returned frames.

    Decoding errors after the first frame do not raise: the frames decoded so far are kept and
    ``truncated`` / ``truncation_reason`` say what happened. A missing file, an unreadable file,
    or a file without a single decodable frame raises ``VideoError``.
    """

    def __init__(self, path: str | os.PathLike, *, max_frames: int | None = None, stride: int = 1,
                 short_side: int | None = None, threads: bool = True) -> None:
        self.path = Path(path)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {max_frames}")
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        self.max_frames = max_frames
        self.stride = stride
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise VideoError(f"{self.path}: cannot open as a video ({e})") from None
        if not container.streams.video:
            container.close()
            raise VideoError(f"{self.path}: the file has no video stream")
        stream = container.streams.video[0]
        if threads:
            # Frame + slice threading; decoding is cheap next to pose estimation, but 1080p H.264
            # still costs ~5 ms a frame single-threaded.
            stream.thread_type = "AUTO"
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            container.close()
            raise VideoError(f"{self.path}: the video stream has no frame size (unreadable header)")
        self._container = container
        self._stream = stream
        self.width, self.height = int(ctx.width), int(ctx.height)
        self.out_width, self.out_height = scaled_size(self.width, self.height, short_side)
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        #: frame count from the container header (0 / None when unknown)
        self.expected_frames = int(stream.frames) or None
        self.frames_decoded = 0
        self.truncated = False
        self.truncation_reason: str | None = None

    # -- context manager -------------------------------------------------------------------
    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, rgb)``; ``frame_index`` counts every decoded frame from 0."""
        returned = 0
        index = -1
        stopped_early = False
        frames = self._container.decode(self._stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (av.FFmpegError, OSError, EOFError) as e:
                if self.frames_decoded == 0:
                    raise VideoError(f"{self.path}: no frame could be decoded ({e})") from None
                self.truncated = True
                self.truncation_reason = f"decoding stopped after frame {self.frames_decoded - 1}: {e}"
                break
            index += 1
            self.frames_decoded += 1
            if index % self.stride:
                continue
            rgb = frame.reformat(width=self.out_width, height=self.out_height, format="rgb24").to_ndarray()
            # PyAV arrays can carry row padding; MediaPipe silently finds nothing in such arrays.
            yield index, np.ascontiguousarray(rgb)
            returned += 1
            if self.max_frames is not None and returned >= self.max_frames:
                stopped_early = True
                break
        if self.frames_decoded == 0:
            raise VideoError(f"{self.path}: the video has no decodable frames")
        if not stopped_early and not self.truncated and self.expected_frames \
                and self.frames_decoded < self.expected_frames:
            self.truncated = True
            self.truncation_reason = (f"only {self.frames_decoded} of the {self.expected_frames} frames "
                                      f"in the header could be decoded")
