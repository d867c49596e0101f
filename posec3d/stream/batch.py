"""Many videos: poses in parallel worker processes, one recognizer in the calling process.

Pose estimation is most of the time of a video and runs on one core per video, so ``workers``
processes each extract (and render) whole videos while the caller classifies them as they come;
the recognizer is loaded once, in the caller. With ``workers=1`` everything runs in-process.
Results are the same either way: each worker gets its own estimator, reset for every video.

Two things keep both cores busy from the first second to the last: `PoseWorkers` starts the
processes (imports, MediaPipe model) before the caller loads its recognizer, so the start-ups run
side by side instead of one after the other, and the videos are handed out longest first (by
frames and frame size), so that no long video starts last while the other worker has run dry.
"""
from __future__ import annotations

import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from posec3d.errors import OutputError, PoseC3DError

#: the errors that make one video fail (reported in its row) without stopping the others; an
#: ``OutputError`` (full or read-only disk) would fail every video alike, so it stops the run
VIDEO_ERRORS = (PoseC3DError, OSError, ValueError)


@dataclass
class VideoJob:
    video: Path
    out: Optional[Path]             # annotated MP4 to write, or None (no rendering)


@dataclass
class VideoOutcome:
    index: int                      # position in the job list
    job: VideoJob
    result: object = None           # VideoResult
    error: Optional[str] = None     # "ErrorType: message" when the video failed


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def expected_work(video: Path, max_frames: Optional[int] = None) -> float:
    """A video's relative cost for scheduling: frames x (1 + pixels / 3.8 M), from the container's
    header (no decoding). Pose estimation costs the same per frame at any size (~45 ms) while
    decoding and rendering grow with the pixels (~25 ms a 1080p frame). 0 when the header does not
    say (the video then goes last; one that cannot be opened fails at once anyway)."""
    try:
        import av

        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            frames = stream.frames
            if not frames and stream.duration and stream.average_rate:
                frames = int(stream.duration * stream.time_base * stream.average_rate)
            pixels = (stream.codec_context.width or 0) * (stream.codec_context.height or 0)
    except Exception:  # noqa: BLE001 -- any unreadable header only loses its place in the queue
        return 0.0
    if max_frames:
        frames = min(frames, max_frames)
    return float(frames) * (1 + pixels / 3.8e6)


# -- worker side -------------------------------------------------------------------------------
_estimator = None


def _ready() -> bool:
    return True


def _init_worker(max_persons: int) -> None:
    global _estimator
    from posec3d.pose.estimators.blazepose import MediaPipePose

    # Not closed at exit: by then MediaPipe's own dispatcher has shut down (closing raises); the
    # process ending frees the model.
    _estimator = MediaPipePose(max_persons=max_persons)


def _extract(video: str, max_persons: int, max_frames: Optional[int]):
    from posec3d.pose.extract import extract_video

    try:
        return extract_video(video, estimator=_estimator, max_persons=max_persons, max_frames=max_frames), None
    except OutputError:
        raise
    except VIDEO_ERRORS as e:
        return None, _describe(e)


def _render(video: str, out: str, result) -> Optional[str]:
    from posec3d.stream.overlay import render_video

    if "torch" in sys.modules:  # drawing needs no torch; should anything have imported it, one thread
        sys.modules["torch"].set_num_threads(1)
    try:
        render_video(video, out, result)
        return None
    except OutputError:
        raise
    except VIDEO_ERRORS as e:
        return _describe(e)


# -- caller side -------------------------------------------------------------------------------
class PoseWorkers:
    """``workers`` pose-extraction processes, started now (spawned, each loading its MediaPipe
    model) so that they get ready while the caller does its own start-up. A context manager; pass
    it to `analyse_many` as ``pool``."""

    def __init__(self, workers: int, max_persons: int = 2):
        import multiprocessing

        self.workers, self.max_persons = workers, max_persons
        # spawn: a forked copy of a process holding torch's and MediaPipe's thread pools can hang.
        context = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                            initializer=_init_worker, initargs=(max_persons,))
        # The executor starts a process per submitted task while none is idle: one task each.
        for _ in range(workers):
            self.executor.submit(_ready)

    def __enter__(self) -> "PoseWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def close_soon(self) -> None:
        """Let the idle workers exit in the background while the caller goes on."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def analyse_many(jobs: list[VideoJob], recognizer, *, workers: int = 1, topk: int = 5, max_persons: int = 2,
                 max_frames: Optional[int] = None, estimator=None,
                 unknown_threshold: Optional[float] = None, pool: Optional[PoseWorkers] = None
                 ) -> Iterator[VideoOutcome]:
    """Poses, actions (and the annotated MP4 when ``job.out``) of every job; outcomes as they finish.

    ``pool``: `PoseWorkers` started earlier (then ``workers`` is its size); without it, ``workers``
    > 1 starts its own."""
    from posec3d.stream.offline import analyse_video
    from posec3d.stream.overlay import render_video

    if pool is not None:
        if pool.max_persons != max_persons:
            raise ValueError(f"the pose workers track {pool.max_persons} persons, not {max_persons}")
        if jobs:
            yield from _analyse_in_pool(pool, jobs, recognizer, topk, max_persons, max_frames, unknown_threshold)
        return
    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            outcome = VideoOutcome(i, job)
            try:
                outcome.result = analyse_video(job.video, recognizer, topk=topk, max_persons=max_persons,
                                               max_frames=max_frames, estimator=estimator,
                                               unknown_threshold=unknown_threshold)
                if job.out is not None:
                    render_video(job.video, job.out, outcome.result)
            except OutputError:
                raise
            except VIDEO_ERRORS as e:
                outcome.error = _describe(e)
            yield outcome
        return

    with PoseWorkers(min(workers, len(jobs)), max_persons) as own:
        yield from _analyse_in_pool(own, jobs, recognizer, topk, max_persons, max_frames, unknown_threshold)


def _analyse_in_pool(workers: PoseWorkers, jobs: list[VideoJob], recognizer, topk: int, max_persons: int,
                     max_frames: Optional[int], unknown_threshold: Optional[float]) -> Iterator[VideoOutcome]:
    from posec3d.stream.offline import classify_annotation

    pool = workers.executor
    pending: dict[Future, tuple[str, VideoOutcome]] = {}
    work = [expected_work(job.video, max_frames) for job in jobs]
    queue = sorted(range(len(jobs)), key=lambda i: -work[i])  # longest first: no long video last

    def extract_next() -> None:
        if queue:
            i = queue.pop(0)
            pending[pool.submit(_extract, str(jobs[i].video), max_persons, max_frames)] = \
                ("extract", VideoOutcome(i, jobs[i]))

    # One extraction per worker plus one waiting (for a worker that ends while this process is
    # busy classifying); the next is handed out when one ends, before that video is classified,
    # and its render joins the queue after it. So renders run between the extractions instead of
    # all after them, and the last seconds are not the renders of the videos extracted last
    # (1080p ones render slowest) with the other worker idle.
    for _ in range(workers.workers + 1):
        extract_next()
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            stage, outcome = pending.pop(fut)
            if stage == "render":
                outcome.error = fut.result()
                yield outcome
                continue
            extract_next()
            annotation, error = fut.result()
            if error is None:
                try:
                    outcome.result = classify_annotation(recognizer, str(outcome.job.video), annotation,
                                                         topk=topk, unknown_threshold=unknown_threshold)
                except OutputError:
                    raise
                except VIDEO_ERRORS as e:
                    error = _describe(e)
            if error is not None or outcome.job.out is None:
                outcome.error = error
                yield outcome
                continue
            pending[pool.submit(_render, str(outcome.job.video), str(outcome.job.out), outcome.result)] = \
                ("render", outcome)
