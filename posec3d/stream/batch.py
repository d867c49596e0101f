"""Many videos: poses in parallel worker processes, one recognizer in the calling process.

Pose estimation is most of the time of a video and runs on one core per video, so ``workers``
processes each extract (and render) whole videos while the caller classifies them as they come;
the recognizer is loaded once, in the caller. With ``workers=1`` everything runs in-process.
Results are the same either way: each worker gets its own estimator, reset for every video.
"""
from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from posec3d.errors import PoseC3DError

#: the errors that make one video fail (reported in its row) without stopping the others
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


# -- worker side -------------------------------------------------------------------------------
_estimator = None


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
    except VIDEO_ERRORS as e:
        return None, _describe(e)


def _render(video: str, out: str, result) -> Optional[str]:
    import torch

    from posec3d.stream.overlay import render_video

    torch.set_num_threads(1)
    try:
        render_video(video, out, result)
        return None
    except VIDEO_ERRORS as e:
        return _describe(e)


# -- caller side -------------------------------------------------------------------------------
def analyse_many(jobs: list[VideoJob], recognizer, *, workers: int = 1, topk: int = 5, max_persons: int = 2,
                 max_frames: Optional[int] = None, estimator=None,
                 unknown_threshold: Optional[float] = None) -> Iterator[VideoOutcome]:
    """Poses, actions (and the annotated MP4 when ``job.out``) of every job; outcomes as they finish."""
    from posec3d.stream.offline import analyse_video, classify_annotation
    from posec3d.stream.overlay import render_video

    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs):
            outcome = VideoOutcome(i, job)
            try:
                outcome.result = analyse_video(job.video, recognizer, topk=topk, max_persons=max_persons,
                                               max_frames=max_frames, estimator=estimator,
                                               unknown_threshold=unknown_threshold)
                if job.out is not None:
                    render_video(job.video, job.out, outcome.result)
            except VIDEO_ERRORS as e:
                outcome.error = _describe(e)
            yield outcome
        return

    import multiprocessing

    # spawn: a forked copy of a process holding torch's and MediaPipe's thread pools can hang.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context,
                             initializer=_init_worker, initargs=(max_persons,)) as pool:
        pending: dict[Future, tuple[str, VideoOutcome]] = {}
        for i, job in enumerate(jobs):
            fut = pool.submit(_extract, str(job.video), max_persons, max_frames)
            pending[fut] = ("extract", VideoOutcome(i, job))
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                stage, outcome = pending.pop(fut)
                if stage == "render":
                    outcome.error = fut.result()
                    yield outcome
                    continue
                annotation, error = fut.result()
                if error is None:
                    try:
                        outcome.result = classify_annotation(recognizer, str(outcome.job.video), annotation,
                                                             topk=topk, unknown_threshold=unknown_threshold)
                    except VIDEO_ERRORS as e:
                        error = _describe(e)
                if error is not None or outcome.job.out is None:
                    outcome.error = error
                    yield outcome
                    continue
                pending[pool.submit(_render, str(outcome.job.video), str(outcome.job.out), outcome.result)] = \
                    ("render", outcome)
