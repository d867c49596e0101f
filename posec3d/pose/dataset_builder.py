"""Build a pyskl annotation file from lists of labelled videos: parallel, cached, failure-tolerant.

A list file holds one ``video_path<TAB>label`` per line (blank lines and ``#`` comments are
skipped; without a tab the label is the last whitespace-separated field). Labels are integers or
class names from a label map (one name per line, line i = label i). Relative paths are resolved
against the list file's folder. Each list becomes one split.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

from posec3d.data.label_map import label_indices, read_label_map
from posec3d.errors import AnnotationError, PoseC3DError
from posec3d.files import atomic_write, atomic_write_text
from posec3d.pose.extract import DEFAULT_SHORT_SIDE

CACHE_VERSION = 2


@dataclass(frozen=True)
class VideoItem:
    """One line of a video list."""
    path: Path
    label: int
    source: str  # "list.txt:12", for messages


@dataclass
class BuildReport:
    """What a build did: counts, failures (source, path, message) and truncation notes."""
    out: Path
    videos: int = 0
    extracted: int = 0  # videos whose poses were computed in this run
    cached: int = 0     # videos taken from the cache
    frames: int = 0     # frames run through the pose model in this run
    seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failed_file: Path | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def parse_video_list(path: str | os.PathLike, label_map: dict[str, int] | None = None) -> list[VideoItem]:
    """Read a ``video<TAB>label`` list; a malformed line raises AnnotationError naming file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # lists saved by Windows editors start with a BOM
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read the video list ({e.strerror})") from None
    except UnicodeDecodeError:
        raise AnnotationError(f"{path}: the video list is not UTF-8 text") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\t" in stripped:
            video, _, label_text = stripped.rpartition("\t")
        else:
            parts = stripped.rsplit(None, 1)
            if len(parts) != 2:
                raise AnnotationError(f"{where}: expected 'video_path<TAB>label', got {stripped!r}")
            video, label_text = parts
        video, label_text = video.strip(), label_text.strip()
        if not video or not label_text:
            raise AnnotationError(f"{where}: expected 'video_path<TAB>label', got {stripped!r}")
        items.append(VideoItem((path.parent / video).resolve() if not Path(video).is_absolute() else Path(video),
                               _parse_label(label_text, label_map, where), where))
    if not items:
        raise AnnotationError(f"{path}: the video list has no entries")
    return items


def _parse_label(text: str, label_map: dict[str, int] | None, where: str) -> int:
    try:
        label = int(text)
    except ValueError:
        if label_map is None:
            raise AnnotationError(f"{where}: label {text!r} is not an integer (pass a label map to use "
                                  f"class names)") from None
        if text not in label_map:
            raise AnnotationError(f"{where}: class {text!r} is not in the label map") from None
        return label_map[text]
    if label < 0:
        raise AnnotationError(f"{where}: label {label} is negative")
    if label_map is not None and label >= len(label_map) and label not in label_map.values():
        raise AnnotationError(f"{where}: label {label} is out of range for the label map "
                              f"({len(label_map)} classes)")
    return label


# -- cache -----------------------------------------------------------------------------------
def _file_identity(path: Path | None) -> list | None:
    if path is None:
        return None
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def cache_path(cache_dir: Path, video: Path, settings: dict) -> Path:
    """Cache file of one video: keyed by its path, size, mtime and the extraction settings."""
    key = json.dumps({"video": _file_identity(video), "settings": settings, "v": CACHE_VERSION},
                     sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir / f"{video.stem}-{digest}.pkl"


# -- workers ---------------------------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(settings: dict) -> None:
    """Each worker process builds its own estimator once."""
    from posec3d.pose.estimators import build_estimator

    _WORKER["estimator"] = build_estimator(settings["pose_model"], settings["det_model"], settings["max_persons"])
    _WORKER["settings"] = settings


def _extract_one(video: str, cache_file: str | None, on_frame: Callable[..., None] | None = None
                 ) -> tuple[dict | None, str | None, list[str], float]:
    """(annotation, error, warnings, seconds) for one video; never raises for a bad video."""
    from posec3d.pose.extract import extract_video

    settings = _WORKER["settings"]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ann = extract_video(video, _WORKER["estimator"], max_persons=settings["max_persons"],
                                max_frames=settings["max_frames"], stride=settings["stride"],
                                short_side=settings["short_side"], progress=on_frame)
        except PoseC3DError as e:
            return None, str(e), [], time.perf_counter() - start
        except Exception as e:  # a decoder or model crash on one video must not stop the build
            return None, f"{video}: {type(e).__name__}: {e}", [], time.perf_counter() - start
    notes = [str(w.message) for w in caught if w.category.__name__ == "VideoTruncatedWarning"]
    if cache_file is not None:
        with atomic_write(cache_file, "wb") as f:
            pickle.dump({"annotation": ann, "warnings": notes}, f, protocol=4)
    return ann, None, notes, time.perf_counter() - start


def _exit_with_parent(parent: int) -> None:
    """Make this pool worker end when the build's process dies (kill -9, a crash): else it would
    go on extracting videos nobody collects. Linux: the kernel sends SIGTERM (prctl
    PR_SET_PDEATHSIG); everywhere: a thread that notices the parent has changed."""
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent:  # the parent died while this worker was starting
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_pool_worker(settings: dict, parent: int) -> None:
    _exit_with_parent(parent)
    _init_worker(settings)


def _run_pool(todo: list, workers: int, settings: dict, collect: Callable) -> list:
    """Run jobs in a spawn process pool; return the jobs left unfinished by a broken pool."""
    # spawn: a fresh interpreter per worker, so no MediaPipe/torch state is forked
    unfinished = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_init_pool_worker, initargs=(settings, os.getpid())) as pool:
        futures = {pool.submit(_extract_one, str(item.path), str(cached_file)): (item, cached_file)
                   for item, cached_file in todo}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except BrokenProcessPool:
                unfinished.append(futures[future])
                continue
            collect(futures[future][0], outcome)
    return unfinished


def _close_worker() -> None:
    estimator = _WORKER.pop("estimator", None)
    if estimator is not None:
        estimator.close()


def _load_cached(path: Path) -> dict | None:
    """``{'annotation', 'warnings'}`` from a cache file, or None if it is unusable."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f)  # our own cache files, written atomically by this module
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return None
    ok = isinstance(entry, dict) and isinstance(entry.get("annotation"), dict) and "keypoint" in entry["annotation"]
    return entry if ok else None


# -- the build -------------------------------------------------------------------------------
def build_dataset(lists: list[str | os.PathLike], out: str | os.PathLike, *, split_names: list[str] | None = None,
                  workers: int = 1, cache_dir: str | os.PathLike | None = None,
                  label_map: str | os.PathLike | None = None, max_persons: int = 2, max_frames: int | None = None,
                  stride: int = 1, short_side: int | None = DEFAULT_SHORT_SIDE, pose_model: str | os.PathLike | None = None,
                  det_model: str | os.PathLike | None = None,
                  progress: Callable[..., None] | None = None) -> BuildReport:
    """Extract every listed video into one pyskl file ``{'split': ..., 'annotations': ...}``.

    ``short_side`` (None = full size) is the frame size given to the pose model, as in
    ``extract_video``. Videos run in ``workers`` processes (each with its own estimator; 1 = in this process).
    Finished videos are cached in ``cache_dir`` (default ``<out>.cache``), so a rerun only does
    the missing ones. Videos that fail are listed in ``failed.txt`` next to ``out`` and left out;
    the build itself only fails for bad list files. ``progress(advance=1, total=n, fps=...)`` is
    called once per video. Workers are spawned processes: a script calling this with
    ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    """
    from posec3d.pose.extract import save_annotation_file

    out = Path(out)
    lists = [Path(p) for p in lists]
    if not lists:
        raise AnnotationError("build-dataset needs at least one video list")
    if split_names is None:
        split_names = [p.stem for p in lists]
    if len(split_names) != len(lists):
        raise AnnotationError(f"{len(split_names)} split names ({', '.join(split_names)}) for "
                              f"{len(lists)} video lists: give one name per list")
    if len(set(split_names)) != len(split_names):
        raise AnnotationError(f"split names must differ, got {', '.join(split_names)}")
    names = label_indices(read_label_map(label_map)) if label_map is not None else None
    per_split = [parse_video_list(p, names) for p in lists]
    for model, what in ((pose_model, "pose model"), (det_model, "detector model")):
        if model is not None and not Path(model).is_file():  # else every worker would die at start-up
            raise PoseC3DError(f"{model}: {what} not found")

    settings = {"pose_model": None if pose_model is None else str(pose_model),
                "det_model": None if det_model is None else str(det_model),
                "max_persons": max_persons, "max_frames": max_frames, "stride": stride,
                "short_side": short_side}
    key_settings = {**settings, "pose_model": _file_identity(pose_model), "det_model": _file_identity(det_model)}
    cache_dir = Path(cache_dir) if cache_dir is not None else out.with_name(out.name + ".cache")
    cache_dir.mkdir(parents=True, exist_ok=True)

    # One job per distinct video; a video listed twice is extracted once.
    unique: dict[Path, VideoItem] = {}
    for items in per_split:
        for item in items:
            unique.setdefault(item.path, item)
    report = BuildReport(out=out, videos=len(unique))
    results: dict[Path, dict] = {}
    todo: list[tuple[VideoItem, Path | None]] = []
    for path, item in unique.items():
        if not path.is_file():
            report.failures.append((item.source, str(path), f"{path}: video file not found"))
            continue
        cached_file = cache_path(cache_dir, path, key_settings)
        cached = _load_cached(cached_file) if cached_file.is_file() else None
        if cached is not None:
            results[path] = cached["annotation"]
            report.warnings.extend(cached["warnings"])
            report.cached += 1
        else:
            todo.append((item, cached_file))

    start = time.perf_counter()
    if progress is not None:
        progress(advance=report.cached + len(report.failures), total=len(unique))

    def collect(item: VideoItem, outcome) -> None:
        ann, error, notes, _ = outcome
        if error is not None:
            report.failures.append((item.source, str(item.path), error))
        else:
            results[item.path] = ann
            report.extracted += 1
            report.frames += ann["total_frames"]
            report.warnings.extend(notes)
        if progress is not None:
            elapsed = max(time.perf_counter() - start, 1e-9)
            progress(advance=1, fps=report.frames / elapsed, failed=len(report.failures))

    if todo and workers <= 1:
        frames_done = [0]

        def on_frame(**_) -> None:  # keep the frame rate moving during long videos
            frames_done[0] += 1
            if progress is not None:
                progress(advance=0, fps=(report.frames + frames_done[0]) / max(time.perf_counter() - start, 1e-9),
                         failed=len(report.failures))

        _init_worker(settings)
        try:
            for item, cached_file in todo:
                frames_done[0] = 0
                collect(item, _extract_one(str(item.path), str(cached_file), on_frame))
        finally:
            _close_worker()
    elif todo:
        unfinished = _run_pool(todo, min(workers, len(todo)), settings, collect)
        # A worker that dies (a native crash on one video) breaks the whole pool. Retry what was
        # left one video per process, so only the culprit fails.
        for job in unfinished:
            for item, _ in _run_pool([job], 1, settings, collect):
                collect(item, (None, f"{item.path}: the worker process crashed on this video", [], 0.0))
    report.seconds = time.perf_counter() - start
    order = {str(path): i for i, path in enumerate(unique)}
    report.failures.sort(key=lambda failure: order[failure[1]])  # list order, not completion order

    annotations, split = [], {}
    placed: set[Path] = set()
    for name, items in zip(split_names, per_split):
        ids = []
        for item in items:
            if item.path not in results:
                continue
            ann = dict(results[item.path], label=item.label, filename=str(item.path))
            if item.path not in placed:
                annotations.append(ann)
                placed.add(item.path)
            ids.append(str(item.path))
        split[name] = ids
    if not annotations:
        _write_failures(out, report)
        raise PoseC3DError(f"{out}: no video could be extracted ({len(report.failures)} failed; "
                           f"see {report.failed_file})")
    save_annotation_file(out, annotations, split)
    _write_failures(out, report)
    return report


def _write_failures(out: Path, report: BuildReport) -> None:
    """``failed.txt`` next to the output: one ``list:line<TAB>video<TAB>error`` per failed video."""
    failed = out.with_name("failed.txt")
    if report.failures:
        lines = [f"{source}\t{video}\t{error}" for source, video, error in report.failures]
        atomic_write_text(failed, "\n".join(lines) + "\n")
        report.failed_file = failed
    elif failed.is_file():
        failed.unlink()  # a stale report from an earlier run would be misleading
