"""``run_live``: a camera, a network stream or a file, recognised as it plays (what `posec3d live` runs).

Four threads and bounded queues, so a slow step never stalls the others without bound:
- the decoder reads the source (reconnecting a stream that stalls or drops, with backoff) and,
  in real time, keeps only the newest frames: when the pose step is behind, the oldest waiting
  frame is dropped and counted;
- the caller's thread estimates poses, tracks people and writes the JSONL events (and shows the
  window, if any);
- the ``StreamRecognizer``'s worker classifies the persons due, one batch per window;
- the renderer draws the overlay and encodes the MP4 (at the pose resolution, the picture the
  overlay is drawn on).
Ends on end of stream, ``duration``, or ``stop`` being set (the CLI sets it on SIGINT / SIGTERM);
every way out finalises the MP4 and closes the JSONL with an ``end`` event.
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from posec3d.errors import VideoError
from posec3d.stream.core import StreamRecognizer
from posec3d.stream.sources import FileSource, LiveSource, source_kind

#: frames decoded ahead of the pose step when every frame is taken (--no-realtime)
FRAME_QUEUE = 2
#: drawn frames waiting for the encoder
WRITE_QUEUE = 16
#: a stats event every this many seconds (wall clock)
STATS_EVERY = 5.0
#: reconnect waits 0.5, 1, 2, 4, ... seconds, at most this long
MAX_BACKOFF = 8.0


@dataclass
class LiveSummary:
    """How a live run went (the figures of the final ``end`` event)."""

    source: str
    reason: str = ""
    frames: int = 0                 # decoded
    processed: int = 0              # through the pose step
    dropped: int = 0                # decoded but skipped to keep up
    shown: int = 0                  # drawn frames put on the screen (--display)
    pose_workers: int = 1           # frames estimated at once
    wall_s: float = 0.0
    frame_latency_ms: list = field(default_factory=list)
    label_latency_ms: list = field(default_factory=list)
    windows: int = 0
    windows_skipped: int = 0
    reconnects: int = 0
    error: Optional[str] = None
    out: Optional[str] = None
    jsonl: Optional[str] = None

    @property
    def fps(self) -> float:
        return self.processed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def dropped_frac(self) -> float:
        return self.dropped / self.frames if self.frames else 0.0

    def to_dict(self) -> dict:
        return {"source": self.source, "reason": self.reason, "frames": self.frames, "processed": self.processed,
                "dropped": self.dropped, "dropped_frac": round(self.dropped_frac, 4), "shown": self.shown,
                "pose_workers": self.pose_workers, "fps": round(self.fps, 2),
                "wall_s": round(self.wall_s, 2),
                "frame_latency_ms_p50": _percentile(self.frame_latency_ms, 50),
                "frame_latency_ms_p95": _percentile(self.frame_latency_ms, 95),
                "label_latency_ms_p50": _percentile(self.label_latency_ms, 50),
                "label_latency_ms_p95": _percentile(self.label_latency_ms, 95),
                "windows": self.windows, "windows_skipped": self.windows_skipped, "reconnects": self.reconnects,
                "error": self.error}


def _percentile(values, q) -> Optional[float]:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def live_estimator(pose_model=None, max_persons: int = 2):
    """The live pose model: MediaPipe without its second pass (bundled, or a ``.task`` file), or an
    ONNX top-down model whose person boxes come from MediaPipe without its second pass. Both keep
    no state between frames, so several instances can work on consecutive frames at once."""
    if pose_model is None or str(pose_model).endswith(".task"):
        from posec3d.pose.estimators.blazepose import MediaPipePose

        return MediaPipePose("full" if pose_model is None else pose_model, max_persons=max_persons,
                             second_pass="off")
    from posec3d.pose.estimators.onnx_topdown import MediaPipePersonBoxes, OnnxTopDownPose

    return OnnxTopDownPose(pose_model, max_persons=max_persons,
                           box_detector=MediaPipePersonBoxes(max_persons, second_pass="off"))


def pose_workers_for(estimator_is_frame_independent: bool, requested: Optional[int] = None) -> int:
    """How many frames are estimated at once: one for an estimator that keeps state between frames,
    else ``requested``, else one per core (at most 2). MediaPipe runs one inference on one core
    (~30 ms a frame), so on two cores two instances on consecutive frames nearly double the rate."""
    if requested is not None and requested < 1:
        raise ValueError(f"pose workers must be >= 1, got {requested}")
    if not estimator_is_frame_independent:
        return 1
    return requested or min(2, os.cpu_count() or 1)


class _PosePool:
    """Estimates consecutive frames on several estimator instances at once, results in order.

    A feeder thread takes frames from the decoder whenever fewer than ``size`` are in estimation
    (frame ``i`` goes to worker ``i % size``), so a free worker never waits for the consumer;
    ``next`` returns the oldest frame with its poses, so tracking still sees every frame in
    sequence. The decoder's queue therefore only fills, and in real time drops, when every
    worker is busy."""

    _END = object()

    def __init__(self, stream: StreamRecognizer, estimators: list, frames: "queue.Queue",
                 stop: threading.Event) -> None:
        self.stream, self.size, self.stop = stream, len(estimators), stop
        self._source = frames
        self._slots = threading.Semaphore(self.size)
        self._inputs = [queue.Queue(maxsize=1) for _ in estimators]
        self._outputs = [queue.Queue() for _ in estimators]  # never blocks a worker that is being closed
        self._order: "queue.Queue" = queue.Queue()
        self._closing = threading.Event()
        self._taken = 0
        self._threads = [threading.Thread(target=self._work, args=(e, i, o), name=f"posec3d-pose-{k}", daemon=True)
                         for k, (e, i, o) in enumerate(zip(estimators, self._inputs, self._outputs))]
        self._threads.append(threading.Thread(target=self._feed, name="posec3d-pose-feed", daemon=True))
        for t in self._threads:
            t.start()

    def _work(self, estimator, inputs: "queue.Queue", outputs: "queue.Queue") -> None:
        while True:
            frame = inputs.get()
            if frame is None:
                return
            try:
                outputs.put(self.stream.estimate(frame.rgb, frame.original_size, estimator=estimator))
            except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
                outputs.put(e)

    def _quitting(self) -> bool:
        return self.stop.is_set() or self._closing.is_set()

    def _feed(self) -> None:
        submitted = 0
        try:
            while not self._quitting():
                if not self._slots.acquire(timeout=0.1):
                    continue
                frame = None
                while not self._quitting():
                    try:
                        frame = self._source.get(timeout=0.1)
                        break
                    except queue.Empty:
                        continue
                if frame is None:  # end of the source, or told to stop
                    return
                self._inputs[submitted % self.size].put(frame)
                submitted += 1
                self._order.put(frame)
        finally:
            self._order.put(self._END)

    def next(self):
        """``(frame, poses)`` of the oldest frame in flight, or None once the source has ended
        (or ``stop`` was set) and every frame before that came out."""
        frame = self._order.get()
        if frame is self._END:
            self._order.put(self._END)  # every later call sees the end too
            return None
        found = self._outputs[self._taken % self.size].get()
        self._taken += 1
        self._slots.release()
        if isinstance(found, BaseException):
            raise found
        return frame, found

    def close(self) -> None:
        self._closing.set()
        for q in self._inputs:
            q.put(None)
        for t in self._threads:
            t.join(timeout=30)


class _EventLog:
    """JSONL events, one object per line, flushed as they happen.

    Not an atomic write on purpose: the log is read while it grows (``tail -f``) and what was
    written before a crash must stay; every line is complete when flushed. An existing file is
    appended to, never truncated: each run begins with its own ``start`` event."""

    def __init__(self, path: Optional[Path], on_event: Optional[Callable[[dict], None]]) -> None:
        self.on_event = on_event
        self._f = None
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
            if self._f.tell() and not _ends_with_newline(path):
                self._f.write("\n")  # a run killed mid-line must not glue its tail to our first event

    def write(self, event: dict) -> None:
        if self._f is not None:
            self._f.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._f.flush()
        if self.on_event is not None:
            self.on_event(event)

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class _Decoder(threading.Thread):
    """Reads frames into a small queue; in real time drops the oldest waiting frame when full."""

    def __init__(self, source: str, *, realtime: bool, reconnect: int, stop: threading.Event,
                 max_frames: Optional[int], notes: "queue.Queue[dict]", read_timeout: float) -> None:
        super().__init__(name="posec3d-decode", daemon=True)
        self.source, self.realtime, self.reconnect, self.stop = source, realtime, reconnect, stop
        self.kind = source_kind(source)
        self.max_frames = max_frames
        # In real time one waiting frame, the newest: a longer queue only adds latency.
        self.frames: "queue.Queue" = queue.Queue(maxsize=1 if realtime else FRAME_QUEUE)
        self.notes = notes
        self.read_timeout = read_timeout
        self.decoded = 0
        self.dropped = 0
        self.reconnects = 0
        self.error: Optional[str] = None
        self.fps: Optional[float] = None
        self.size: Optional[tuple[int, int]] = None
        self.ready = threading.Event()
        self._opened: Optional[object] = None

    def open_first(self) -> None:
        """Open the source in the caller's thread, so a source that cannot be opened fails at once."""
        if self.kind == "file":
            src = FileSource(self.source)
        else:
            src = LiveSource(self.source, read_timeout=self.read_timeout)
            src.open()
        self._opened = src
        self.fps, self.size = src.fps, src.size

    def _offer(self, frame) -> bool:
        """Queue a frame; False when told to stop."""
        if not self.realtime:
            while not self.stop.is_set():
                try:
                    self.frames.put(frame, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False
        self.dropped += _put_newest(self.frames, frame)
        return True

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - reported as one line by the caller
            self.error = f"{self.source}: {e}"
        finally:
            self._put_end()

    def _put_end(self) -> None:
        """Queue the end marker: wait while the consumer still takes frames; once told to stop
        (the consumer may be gone), make room by dropping what is left."""
        while True:
            try:
                self.frames.put(None, timeout=0.1)
                return
            except queue.Full:
                if self.stop.is_set():
                    try:
                        self.frames.get_nowait()
                    except queue.Empty:
                        pass

    def _run(self) -> None:
        src = self._opened
        start = time.perf_counter()
        if isinstance(src, FileSource):
            with src:
                for frame in src:
                    if self.stop.is_set():
                        return
                    if self.realtime:  # play at the file's own rate
                        delay = start + frame.t - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        frame.received = time.perf_counter()
                    self.decoded += 1
                    if not self._offer(frame) or (self.max_frames and self.decoded >= self.max_frames):
                        return
            return
        attempts = 0
        index, t_offset = 0, 0.0
        while not self.stop.is_set():
            got = 0
            for frame in src.frames(index, t_offset):
                if self.stop.is_set():
                    src.close()
                    return
                got += 1
                self.decoded += 1
                index, t_offset = frame.index + 1, frame.t
                if not self._offer(frame) or (self.max_frames and self.decoded >= self.max_frames):
                    src.close()
                    return
            src.close()
            if self.stop.is_set():
                return
            if got:
                attempts = 0  # it streamed again: the next drop gets a fresh set of attempts
            why = src.ended or "stream ended"
            while True:
                attempts += 1
                if attempts > self.reconnect:
                    self.error = (f"{src.describe()}: {why}; gave up after {self.reconnect} reconnect attempt"
                                  f"{'' if self.reconnect == 1 else 's'}")
                    return
                wait = min(MAX_BACKOFF, 0.5 * 2 ** (attempts - 1))
                self.notes.put({"event": "reconnect", "attempt": attempts, "of": self.reconnect,
                                "reason": why, "wait_s": wait})
                if self.stop.wait(wait):
                    return
                self.reconnects += 1
                try:
                    src.open()
                    break
                except VideoError as e:
                    why = str(e)


class _Renderer(threading.Thread):
    """Draws each person's overlay and encodes the MP4 (atomic: it appears when finalised).

    Off the pose thread on purpose: drawing and encoding a 960x540 frame cost ~10 ms, which on two
    cores is better spent in parallel with the next frame's pose estimation than after it. The
    frame latency (decoded -> drawn) is measured here, where the picture is finished. With a
    window open, the newest drawn frame waits in ``shown`` for the caller's thread (tkinter lives
    there)."""

    def __init__(self, stream, path: Optional[Path], fps: float, size: Optional[tuple[int, int]],
                 latencies: list, display: bool) -> None:
        super().__init__(name="posec3d-render", daemon=True)
        self.stream = stream
        self.frames: "queue.Queue" = queue.Queue(maxsize=WRITE_QUEUE)
        self.latencies = latencies
        self.shown: Optional["queue.Queue"] = queue.Queue(maxsize=1) if display else None
        self.writer = None
        if path is not None:
            from posec3d.render import VideoWriter

            self.writer = VideoWriter(path, fps=fps, width=size[0], height=size[1])
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        ended = False  # the producer's end marker was taken: finalising can fail after it (a full disk)
        try:
            with self.writer if self.writer is not None else contextlib.nullcontext() as w:
                first = None
                while True:
                    item = self.frames.get()
                    if item is None:
                        ended = True
                        break
                    frame, output, status = item
                    drawn = self.stream.draw(frame.rgb, output, status=status)
                    self.latencies.append(round((time.perf_counter() - frame.received) * 1000, 1))
                    if w is not None:
                        first = frame.index if first is None else first
                        w.write(drawn, index=frame.index - first)  # frames dropped live: the picture holds
                    if self.shown is not None:
                        _put_newest(self.shown, drawn)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e
            while not ended and self.frames.get() is not None:  # let the producer finish
                pass


def _put_newest(q: "queue.Queue", item) -> int:
    """Put into a bounded queue, dropping the oldest waiting items while it is full; how many."""
    dropped = 0
    while True:
        try:
            q.put_nowait(item)
            return dropped
        except queue.Full:
            try:
                q.get_nowait()
                dropped += 1
            except queue.Empty:
                pass


class _Display:
    """An on-screen window (tkinter), if there is a display; ``None`` with the reason otherwise."""

    @staticmethod
    def open(title: str):
        if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            return None, "no display (DISPLAY is not set)"
        try:
            import tkinter

            from PIL import ImageTk  # noqa: F401 - needs tkinter too
        except ImportError as e:
            return None, f"no display toolkit ({e})"
        try:
            root = tkinter.Tk()
        except Exception as e:  # noqa: BLE001 - tkinter.TclError and friends
            return None, f"cannot open a window ({e})"
        root.title(title)
        return _Display(root), None

    def __init__(self, root) -> None:
        import tkinter

        self.root = root
        self.closed = False
        self.label = tkinter.Label(root)
        self.label.pack()
        root.protocol("WM_DELETE_WINDOW", self._close)
        self._photo = None

    def _close(self) -> None:
        self.closed = True

    def show(self, rgb: np.ndarray) -> None:
        from PIL import Image, ImageTk

        self._photo = ImageTk.PhotoImage(Image.fromarray(rgb))
        self.label.configure(image=self._photo)
        self.root.update()

    def close(self) -> None:
        try:
            self.root.destroy()
        except Exception:  # noqa: BLE001 - already gone
            pass


def run_live(source, recognizer, *, out: Optional[Path] = None, jsonl: Optional[Path] = None, display: bool = False,
             window: Optional[int] = None, stride: Optional[int] = None, max_persons: int = 2,
             realtime: Optional[bool] = None, duration: Optional[float] = None, reconnect: int = 3,
             pose_model=None, estimator=None, pose_workers: Optional[int] = None,
             unknown_threshold: Optional[float] = None,
             stop: Optional[threading.Event] = None, on_event: Optional[Callable[[dict], None]] = None,
             on_note: Optional[Callable[[str], None]] = None, max_frames: Optional[int] = None,
             read_timeout: float = 5.0) -> LiveSummary:
    """Recognise each person's action in ``source`` as it plays; see the module docstring.

    ``realtime`` defaults to True for cameras and streams (always real time) and False for files.
    ``pose_workers``: frames estimated at once (default: ``pose_workers_for``); a caller's own
    ``estimator`` is one instance, so it gets one worker.
    Raises ``VideoError`` (one line) when the source cannot be opened, or after the stream broke and
    ``reconnect`` attempts failed; the MP4 and the JSONL are complete in both cases.
    """
    source = str(source)
    kind = source_kind(source)
    realtime = True if kind != "file" else bool(realtime)
    stop = stop or threading.Event()
    note = on_note or (lambda s: None)
    notes: "queue.Queue[dict]" = queue.Queue()
    decoder = _Decoder(source, realtime=realtime, reconnect=reconnect, stop=stop, max_frames=max_frames,
                       notes=notes, read_timeout=read_timeout)
    decoder.open_first()  # VideoError here: nothing was written yet
    summary = LiveSummary(source, out=str(out) if out else None, jsonl=str(jsonl) if jsonl else None)
    screen = None
    if display:
        screen, why = _Display.open(f"posec3d live {source}")
        if screen is None:
            note(f"{why}: running with --no-display")
    # Outputs first: a folder that cannot be written fails in one line before the estimator starts.
    from posec3d.files import check_writable

    check_writable(out)
    log = _EventLog(jsonl, on_event)
    own_estimator = estimator is None
    estimators = [estimator or live_estimator(pose_model, max_persons)]
    if own_estimator:
        workers = pose_workers_for(estimators[0].frame_independent, pose_workers)
        estimators += [live_estimator(pose_model, max_persons) for _ in range(workers - 1)]
    stream = renderer = pool = None
    started = time.perf_counter()
    try:
        stream = StreamRecognizer(recognizer, estimator=estimators[0], window=window, stride=stride,
                                  max_persons=max_persons, unknown_threshold=unknown_threshold, asynchronous=True)
        pool = _PosePool(stream, estimators, decoder.frames, stop)
        summary.pose_workers = pool.size
        fps = decoder.fps or 25.0
        log.write({"event": "start", "source": source, "kind": kind, "realtime": realtime, "fps": round(fps, 3),
                   "size": list(decoder.size) if decoder.size else None, "window": stream.window,
                   "stride": stream.stride, "unknown_threshold": stream.unknown_threshold,
                   "pose_workers": summary.pose_workers})
        if out is not None or screen is not None:
            renderer = _Renderer(stream, Path(out) if out is not None else None, fps, decoder.size,
                                 summary.frame_latency_ms, display=screen is not None)
            renderer.start()
        decoder.start()
        summary.reason = _loop(decoder, pool, stream, renderer, screen, log, notes, summary, stop, duration,
                               realtime)
        for event in stream.close():
            log.write(event)
    except KeyboardInterrupt:
        summary.reason = "interrupted"
        stop.set()
    finally:
        stop.set()
        decoder.join(timeout=30)
        if pool is not None:
            pool.close()
        if stream is not None:
            for event in stream.close():  # no-op when closed above
                log.write(event)
            summary.windows, summary.windows_skipped = stream.windows_classified, stream.windows_skipped
            summary.label_latency_ms = list(stream.label_latencies_ms)
        if renderer is not None:
            renderer.frames.put(None)
            renderer.join()
        if own_estimator:
            for e in estimators:
                e.close()
        if screen is not None:
            screen.close()
        while not notes.empty():
            log.write(notes.get())
        summary.wall_s = time.perf_counter() - started
        summary.frames, summary.dropped, summary.reconnects = decoder.decoded, decoder.dropped, decoder.reconnects
        summary.error = decoder.error
        if renderer is not None and renderer.error is not None and summary.error is None:
            summary.error = f"{out}: cannot write the video ({renderer.error})"
        if summary.error:
            summary.reason = "error"
        log.write({"event": "end", **summary.to_dict()})
        log.close()
    if summary.error:
        raise VideoError(summary.error)
    return summary


def _loop(decoder, pool, stream, renderer, screen, log, notes, summary, stop, duration, realtime) -> str:
    """The track / log loop, in the caller's thread, over the pose pool's frames in order;
    returns why it ended."""
    last_stats = time.perf_counter()
    interval_frames, latency_mark = 0, 0  # frame latencies since the last stats event start at the mark
    fps_shown = 0.0
    while True:
        item = pool.next()
        if stop.is_set():
            return "interrupted"
        if item is None:
            return "end of stream" if decoder.error is None else "error"
        frame, found = item
        if duration is not None and frame.t >= duration:
            stop.set()
            return "duration"
        output = stream.push_poses(found, frame.t, frame_index=frame.index, received=frame.received,
                                   block=not realtime)
        for event in output.events:
            log.write(event)
        while not notes.empty():
            log.write(notes.get())
        latency = (time.perf_counter() - frame.received) * 1000
        status = f"{fps_shown:4.1f} fps  {latency:3.0f} ms" + (f"  dropped {decoder.dropped}" if realtime else "")
        summary.processed += 1
        interval_frames += 1
        if renderer is None:  # nothing is drawn: the frame is done once its poses are
            summary.frame_latency_ms.append(round(latency, 1))
        else:
            renderer.frames.put((frame, output, status))
        if screen is not None:
            try:
                screen.show(renderer.shown.get_nowait())
                summary.shown += 1
            except queue.Empty:
                pass
            if screen.closed:
                stop.set()
                return "window closed"
        now = time.perf_counter()
        if now - last_stats >= STATS_EVERY:
            fps_shown = interval_frames / (now - last_stats)
            labels = stream.label_latencies_ms
            log.write({"event": "stats", "t": round(frame.t, 3), "frame": frame.index, "fps": round(fps_shown, 2),
                       "dropped": decoder.dropped, "decoded": decoder.decoded,
                       "latency_ms_p50": _percentile(summary.frame_latency_ms[latency_mark:], 50),
                       "latency_ms_p95": _percentile(summary.frame_latency_ms[latency_mark:], 95),
                       "label_latency_ms_p95": _percentile(labels[-50:], 95),
                       "persons": len(output.persons)})
            last_stats, interval_frames, latency_mark = now, 0, len(summary.frame_latency_ms)
        elif summary.processed == 30 and fps_shown == 0.0:
            fps_shown = 30 / (now - last_stats)
