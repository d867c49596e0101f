"""What the pages and the API share: one recognizer, the limits, and per-request temporary files.

Nothing here imports gradio or fastapi, so it can be reasoned about (and tested) on its own.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from posec3d.errors import PoseC3DError, VideoError
from posec3d.stream import analyse_video, render_video, resolve_unknown_threshold

MB = 1 << 20
# The multipart framing and the small form fields around an upload: the body may exceed the file
# limit by this much before the body-level check answers 413 (the file itself is checked exactly).
MULTIPART_SLACK = 64 * 1024


class Busy(PoseC3DError):
    """Every analysis slot is taken and the waiting line is full."""


class TooLarge(PoseC3DError):
    """An upload over ``--max-upload-mb``."""


@dataclass
class Settings:
    """What ``posec3d serve`` was asked for (the flags, resolved)."""

    host: str = "127.0.0.1"
    port: int = 7860
    model: Optional[str] = None
    config: Optional[Path] = None
    checkpoint: Optional[Path] = None
    label_map: Optional[Path] = None
    max_upload_mb: float = 200.0
    auth: Optional[tuple[str, str]] = None
    concurrency: int = 2
    max_queue: int = 16
    unknown_threshold: Optional[float] = None
    examples: Optional[Path] = None
    max_persons: int = 2
    device: str = "cpu"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)


class SerialisedRecognizer:
    """The recognizer with its methods behind one lock.

    The test pipeline re-seeds numpy's global RNG for every sample (mmaction2's and pyskl's
    sampling contract), so two threads scoring at once could interleave their draws. Scoring is
    the quick part; pose extraction, the slow part, still runs in parallel.
    """

    def __init__(self, recognizer):
        self._recognizer = recognizer
        self._lock = threading.RLock()

    def __getattr__(self, name):
        value = getattr(self._recognizer, name)
        if not callable(value):
            return value

        def locked(*args, **kwargs):
            with self._lock:
                return value(*args, **kwargs)

        return locked


class Slots:
    """At most ``concurrency`` analyses at once; at most ``max_queue`` more waiting, then ``Busy``."""

    def __init__(self, concurrency: int, max_queue: int):
        self._running = threading.BoundedSemaphore(max(1, concurrency))
        self._waiting = 0
        self._lock = threading.Lock()
        self.max_queue = max_queue

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._lock:
            if self._waiting >= self.max_queue:
                raise Busy(f"server busy: {self._waiting} requests already waiting, try again later")
            self._waiting += 1
        try:
            self._running.acquire()
        finally:
            with self._lock:
                self._waiting -= 1
        try:
            yield
        finally:
            self._running.release()


def safe_display_name(name: Optional[str]) -> str:
    """A client's file name reduced to a label for the JSON and the page (never used as a path)."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[\x00-\x1f<>\"'`]+", "", base).strip()[:120]
    return base or "upload"


def probe_video(path: Path, display: str) -> None:
    """Raise a one-line ``VideoError`` naming ``display`` unless ``path`` has a decodable video frame."""
    from posec3d.pose.video import VideoReader

    try:
        with VideoReader(path, max_frames=1) as reader:
            next(iter(reader))
    except (VideoError, StopIteration):
        raise VideoError(f"{display}: not a video (no frame PyAV can decode)") from None


class WebService:
    """One loaded recognizer and the rules every request goes through."""

    def __init__(self, settings: Settings, recognizer, *, model_name: Optional[str] = None):
        self.settings = settings
        self.recognizer = SerialisedRecognizer(recognizer)
        self.model_name = model_name
        self.slots = Slots(settings.concurrency, settings.max_queue)
        # Every temporary file of this server lives under one folder, removed at shutdown.
        self.temp_root = Path(tempfile.mkdtemp(prefix="posec3d-serve-"))

    @property
    def unknown_threshold(self) -> float:
        return resolve_unknown_threshold(self.recognizer, self.settings.unknown_threshold)

    @contextmanager
    def request_dir(self) -> Iterator[Path]:
        """A folder for one request's files, removed (with everything in it) when the request ends."""
        path = Path(tempfile.mkdtemp(dir=self.temp_root, prefix="req-"))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def save_upload(self, stream, folder: Path, display: str, chunk: int = MB) -> Path:
        """Copy an upload (a binary file object) into ``folder``; ``TooLarge`` past the limit."""
        limit = self.settings.max_upload_bytes
        path = folder / "upload"
        size = 0
        with open(path, "wb") as out:
            while True:
                block = stream.read(chunk)
                if not block:
                    break
                size += len(block)
                if size > limit:
                    raise TooLarge(f"{display}: upload is over the {self.settings.max_upload_mb:g} MB limit")
                out.write(block)
        return path

    def analyse(self, path: Path, display: str, *, topk: int = 5, per_person: bool = False,
                window: Optional[int] = None, stride: Optional[int] = None,
                progress: Optional[Callable[..., None]] = None):
        """Probe, then poses -> actions for the video at ``path`` (a file this server wrote)."""
        probe_video(path, display)
        with self.slots.slot():
            try:
                result = analyse_video(path, self.recognizer, topk=topk, per_person=per_person, window=window,
                                       stride=stride, max_persons=self.settings.max_persons,
                                       unknown_threshold=self.settings.unknown_threshold, progress=progress)
            except PoseC3DError as e:  # messages name our temporary path: name the upload instead
                raise type(e)(str(e).replace(str(path), display)) from None
        result.video = display
        return result

    def render(self, path: Path, out: Path, result, progress=None) -> Path:
        render_video(path, out, result, progress=progress)
        return out

    def close(self) -> None:
        shutil.rmtree(self.temp_root, ignore_errors=True)

