"""What the pages and the API share: one recognizer, the limits, and per-request temporary files.

Nothing here imports gradio or fastapi, so it can be reasoned about (and tested) on its own.
"""
from __future__ import annotations

import contextvars
import re
import shutil
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from posec3d.errors import PoseC3DError, VideoError
from posec3d.files import atomic_write
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


class Workers:
    """A fixed set of ``concurrency`` threads does every analysis; ``max_queue`` more may wait.

    Fixed threads rather than the web server's pool (up to 40): every thread that runs MediaPipe
    and torch grows its own allocator arena, so memory stays flat only if the same few threads do
    all the work. Each thread also keeps one pose estimator (reset for every video by the pose
    code), instead of loading the model again per request.
    """

    def __init__(self, concurrency: int, max_queue: int, max_persons: int = 2):
        self.concurrency, self.max_queue, self.max_persons = max(1, concurrency), max_queue, max_persons
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="posec3d-worker")
        self._pending = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._estimators: list = []

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        """Queue ``fn(*args, **kwargs)``; ``Busy`` when every thread is busy and the line is full."""
        with self._lock:
            if self._pending >= self.concurrency + self.max_queue:
                raise Busy(f"server busy: {self._pending - self.concurrency} requests already waiting, "
                           "try again later")
            self._pending += 1
        # The caller's context travels along (Gradio finds its progress bar through it).
        future = self._pool.submit(contextvars.copy_context().run, fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def run(self, fn: Callable, *args, **kwargs):
        return self.submit(fn, *args, **kwargs).result()

    def _finished(self, _future) -> None:
        with self._lock:
            self._pending -= 1

    def estimator(self):
        """This worker thread's own pose estimator (estimators are not thread-safe)."""
        est = getattr(self._local, "estimator", None)
        if est is None:
            from posec3d.pose.estimators.blazepose import MediaPipePose

            est = self._local.estimator = MediaPipePose(max_persons=self.max_persons)
            with self._lock:
                self._estimators.append(est)
        return est

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for est in self._estimators:
            est.close()


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
        self.workers = Workers(settings.concurrency, settings.max_queue, settings.max_persons)
        # Every temporary file of this server lives under one folder, removed at shutdown.
        self.temp_root = Path(tempfile.mkdtemp(prefix="posec3d-serve-"))
        self._closed = False

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
        with atomic_write(path, "wb") as out:
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
        """Probe, then poses -> actions for the video at ``path`` (a file this server wrote), on a worker."""
        probe_video(path, display)

        def work():
            return analyse_video(path, self.recognizer, topk=topk, per_person=per_person, window=window,
                                 stride=stride, max_persons=self.settings.max_persons,
                                 estimator=self.workers.estimator(),
                                 unknown_threshold=self.settings.unknown_threshold, progress=progress)

        try:
            result = self.workers.run(work)
        except PoseC3DError as e:  # messages name our temporary path: name the upload instead
            raise type(e)(str(e).replace(str(path), display)) from None
        result.video = display
        return result

    def render(self, path: Path, out: Path, result, progress=None) -> Path:
        """The annotated video of ``result`` (on a worker)."""
        self.workers.run(render_video, path, out, result, progress=progress)
        return out

    def close(self) -> None:
        """Stop the workers and remove every temporary file of this server (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        self.workers.close()
        shutil.rmtree(self.temp_root, ignore_errors=True)

