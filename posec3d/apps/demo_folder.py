"""`posec3d demo-folder`: the demo over every video of a folder, with a CSV and an Excel report.

Outputs in OUT_DIR:
- ``videos/<relative path>_demo.mp4``: each annotated video (sub-folders kept, so names never clash),
- ``predictions.csv``: one row per video (path, true label, top-k labels and scores, correct, error),
- ``report.xlsx``: sheets ``videos`` (per video), ``summary`` (top-1, top-5, per-class accuracy),
  ``confusion_matrix`` (true class rows x predicted class columns) and ``failed`` (bad videos),
- ``.cache/``: one JSON result per video, keyed on the file (size, mtime) and the settings, so a
  rerun skips finished videos (resumable).
A video that cannot be read, or in which nobody is found, is reported, never fatal.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import typer

from posec3d.errors import AnnotationError, ConfigError
from posec3d.files import atomic_write, atomic_write_text

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
CACHE_VERSION = 1


def find_videos(root: Path) -> list[Path]:
    """Every video under ``root`` (recursive, by extension, case-insensitive), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def read_truth(list_file: Path, root: Path, labels: list[str]) -> dict[str, str]:
    """``path<whitespace>label`` lines -> {key: class name}; keys are the relative path, name and stem.

    The label is a class index into the label map or one of its class names; anything else (a
    misspelt name) is an error, since it would silently become a class the model never predicts.
    """
    known = set(labels)
    truth: dict[str, str] = {}
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise AnnotationError(f"{list_file}: cannot read the annotation list ({e.strerror or e})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError(f"{list_file}:{n}: expected 'video_path label', got {line!r}")
        path, label = parts
        if label.lstrip("-").isdigit():
            index = int(label)
            if not 0 <= index < len(labels):
                raise AnnotationError(f"{list_file}:{n}: label {index} is outside the label map "
                                      f"(0..{len(labels) - 1})")
            label = labels[index]
        elif label not in known:
            import difflib

            close = difflib.get_close_matches(label, labels, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AnnotationError(f"{list_file}:{n}: class {label[:80]!r} is not in the model's label map "
                                  f"({len(labels)} classes){hint}")
        p = Path(path)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(root.resolve())
            except ValueError:
                pass
        for key in {p.as_posix(), p.name, p.stem}:
            truth[key] = label
    return truth


def true_label_of(video: Path, root: Path, truth: dict[str, str]) -> Optional[str]:
    rel = video.relative_to(root)
    for key in (rel.as_posix(), rel.name, rel.stem):
        if key in truth:
            return truth[key]
    return None


def _file_key(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_key(video: Path, settings: dict) -> str:
    # The path as listed, not resolved: 40 symlinks to one video are 40 videos with 40 outputs
    # (their contents still key the cache through size and mtime of the target).
    doc = json.dumps({"v": CACHE_VERSION, "video": str(video.absolute()), "file": _file_key(video),
                      "settings": settings}, sort_keys=True)
    return hashlib.sha1(doc.encode()).hexdigest()


def process_folder(root: Path, out_dir: Path, recognizer, *, settings: dict, truth: dict[str, str],
                   topk: int, max_frames: Optional[int], max_persons: int, progress=None,
                   estimator=None, workers: int = 1, render: bool = True,
                   unknown_threshold: Optional[float] = None, pool=None) -> list[dict]:
    """Classify (or take from the cache) every video; returns one row per video.

    ``workers`` processes extract poses (and render) in parallel; ``render=False`` writes no videos.
    ``pool``: `stream.batch.PoseWorkers` started by the caller (used instead of ``workers``).
    """
    from posec3d.stream.batch import VideoJob, analyse_many
    from posec3d.stream.labels import is_unknown, resolve_unknown_threshold

    cache_dir = out_dir / ".cache"
    threshold = resolve_unknown_threshold(recognizer, unknown_threshold)
    videos = find_videos(root)
    done: dict[int, dict] = {}
    jobs, positions, keys = [], [], []
    for i, video in enumerate(videos):
        rel = video.relative_to(root)
        out_video = out_dir / "videos" / rel.parent / f"{rel.stem}_demo.mp4"
        key = cache_key(video, settings)
        cached = cache_dir / f"{key}.json"
        if cached.is_file():
            row = json.loads(cached.read_text())
            if not render or out_video.is_file() or row.get("error"):
                row["cached"] = True
                done[i] = row
                if progress is not None:
                    progress(advance=1, video=rel.name)
                continue
        jobs.append(VideoJob(video, out_video if render else None))
        positions.append(i)
        keys.append(cached)
    for outcome in analyse_many(jobs, recognizer, workers=workers, topk=topk, max_persons=max_persons,
                                max_frames=max_frames, estimator=estimator, unknown_threshold=threshold,
                                pool=pool):
        video = outcome.job.video
        row = {"path": video.relative_to(root).as_posix(), "output": None, "predictions": [],
               "error": outcome.error}
        if outcome.result is not None and outcome.error is None:
            row["predictions"] = [{"label": p.label, "score": round(p.score, 6)} for p in outcome.result.predictions]
            row["num_frames"] = int(outcome.result.annotation["total_frames"])
            if outcome.job.out is not None:
                row["output"] = outcome.job.out.relative_to(out_dir).as_posix()
        atomic_write_text(keys[outcome.index], json.dumps(row))
        row["cached"] = False
        done[positions[outcome.index]] = row
        if progress is not None:
            progress(advance=1, video=video.name)
    rows = []
    for i, video in enumerate(videos):
        row = done[i]
        # the open set is decided from the cached score, so a new threshold needs no recomputation
        row["unknown"] = (None if row["error"] or not row["predictions"] else
                          is_unknown(row["predictions"][0]["score"], threshold))
        row["true_label"] = true_label_of(video, root, truth)
        preds = [p["label"] for p in row["predictions"]]
        row["correct"] = (None if row["true_label"] is None or row["error"] else
                          bool(preds and preds[0] == row["true_label"]))
        row["correct_top5"] = (None if row["true_label"] is None or row["error"] else
                               row["true_label"] in preds[:5])
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# Reports


def video_table(rows: list[dict], topk: int):
    import pandas as pd

    records = []
    for r in rows:
        rec = {"path": r["path"], "true_label": r["true_label"]}
        for k in range(topk):
            p = r["predictions"][k] if k < len(r["predictions"]) else None
            rec[f"top{k + 1}_label"] = p["label"] if p else None
            rec[f"top{k + 1}_score"] = p["score"] if p else None
        rec["correct"] = r["correct"]
        rec["unknown"] = r.get("unknown")
        rec["output"] = r["output"]
        rec["error"] = r["error"]
        records.append(rec)
    return pd.DataFrame.from_records(records, columns=(
        ["path", "true_label"] + [f"top{k + 1}_{s}" for k in range(topk) for s in ("label", "score")]
        + ["correct", "unknown", "output", "error"]))


def summary_tables(rows: list[dict]):
    """(overall metrics, per-class accuracy, confusion matrix) over labelled, successful videos."""
    import pandas as pd

    scored = [r for r in rows if r["correct"] is not None]
    n = len(scored)
    overall = pd.DataFrame([
        ("videos", len(rows)),
        ("failed", sum(1 for r in rows if r["error"])),
        ("labelled and classified", n),
        ("top1_accuracy", sum(r["correct"] for r in scored) / n if n else None),
        ("top5_accuracy", sum(r["correct_top5"] for r in scored) / n if n else None),
    ], columns=["metric", "value"])
    classes = sorted({r["true_label"] for r in scored})
    per_class = []
    for c in classes:
        members = [r for r in scored if r["true_label"] == c]
        hits = sum(r["correct"] for r in members)
        per_class.append({"class": c, "videos": len(members), "correct": hits, "accuracy": hits / len(members)})
    per_class = pd.DataFrame(per_class, columns=["class", "videos", "correct", "accuracy"])
    if len(per_class):
        overall.loc[len(overall)] = ("mean_class_accuracy", _mean_class_accuracy(scored))
    predicted = sorted({r["predictions"][0]["label"] for r in scored})
    names = classes + [p for p in predicted if p not in classes]
    confusion = pd.DataFrame(0, index=pd.Index(names, name="true \\ predicted"), columns=names)
    for r in scored:
        confusion.loc[r["true_label"], r["predictions"][0]["label"]] += 1
    return overall, per_class, confusion


def _mean_class_accuracy(scored: list[dict]) -> float:
    """`posec3d test`'s definition (engine.metrics, mmaction2's): a class only predicted counts 0."""
    import numpy as np

    from posec3d.engine.metrics import mean_class_accuracy

    names = sorted({r["true_label"] for r in scored} | {r["predictions"][0]["label"] for r in scored})
    index = {name: i for i, name in enumerate(names)}
    one_hot = np.zeros((len(scored), len(names)))
    one_hot[np.arange(len(scored)), [index[r["predictions"][0]["label"]] for r in scored]] = 1
    return mean_class_accuracy(one_hot, [index[r["true_label"]] for r in scored])


def write_reports(out_dir: Path, rows: list[dict], topk: int) -> tuple[Path, Path]:
    import pandas as pd

    table = video_table(rows, topk)
    csv_path = out_dir / "predictions.csv"
    atomic_write_text(csv_path, table.to_csv(index=False))
    overall, per_class, confusion = summary_tables(rows)
    failed = pd.DataFrame([{"path": r["path"], "error": r["error"]} for r in rows if r["error"]],
                          columns=["path", "error"])
    xlsx_path = out_dir / "report.xlsx"
    with atomic_write(xlsx_path, "wb") as f:
        with pd.ExcelWriter(f, engine="openpyxl") as xl:
            table.to_excel(xl, sheet_name="videos", index=False)
            overall.to_excel(xl, sheet_name="summary", index=False)
            per_class.to_excel(xl, sheet_name="summary", index=False, startrow=len(overall) + 2)
            confusion.to_excel(xl, sheet_name="confusion_matrix")
            failed.to_excel(xl, sheet_name="failed", index=False)
            for ws in xl.book.worksheets:
                for col in ws.columns:
                    width = max(len(str(c.value)) if c.value is not None else 0 for c in col)
                    ws.column_dimensions[col[0].column_letter].width = min(60, max(8, width + 2))
    return csv_path, xlsx_path


# ----------------------------------------------------------------------------------------------
# CLI


def _classify_folder(video_dir: Path, out_dir: Path, *, model, config, checkpoint, label_map, device, num_clips,
                     annotations, topk: int, max_persons: int, max_frames, workers: int, render: bool,
                     unknown_threshold, pool, total: int) -> list[dict]:
    """`demo-folder` after its checks: load the recognizer, classify (and render) every video."""
    from posec3d.apps.progress import progress_bar
    from posec3d.stream import load_recognizer

    recognizer = load_recognizer(model, config, checkpoint, label_map, device=device, num_clips=num_clips)
    truth = read_truth(annotations, video_dir, recognizer.labels) if annotations else {}
    settings = {"model": model, "config": str(config and config.resolve()),
                "checkpoint": _checkpoint_identity(recognizer), "topk": topk, "max_persons": max_persons,
                "max_frames": max_frames, "num_clips": num_clips}
    out_dir.mkdir(parents=True, exist_ok=True)
    import contextlib

    import torch

    from posec3d.pose.estimators import MediaPipePose

    torch.set_num_threads(1)  # the recognizer is small; the cores go to pose estimation
    with (MediaPipePose(max_persons=max_persons) if workers == 1 else contextlib.nullcontext()) as estimator, \
            progress_bar(total, "videos") as update:
        rows = process_folder(video_dir, out_dir, recognizer, settings=settings, truth=truth, topk=topk,
                              max_frames=max_frames, max_persons=max_persons, progress=update,
                              estimator=estimator, workers=workers, render=render,
                              unknown_threshold=unknown_threshold, pool=pool)
    return rows


def demo_folder(
    video_dir: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    out_dir: Path = typer.Option(..., "-o", "--out", help="Output folder (videos, CSV, Excel report, cache)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="'video_path label' lines "
                                               "(label: class index or name) for accuracy figures."),
    model: Optional[str] = typer.Option(None, "--model", help="A model name from `posec3d models`: bundled, or released and downloaded (default: penn-action)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint matching --config."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    topk: int = typer.Option(5, "--topk", min=1, help="How many classes to report per video."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="People tracked by the estimator."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Use only the first N frames."),
    num_clips: Optional[int] = typer.Option(None, "--num-clips", min=1, help="Override the test clips."),
    device: str = typer.Option("cpu", "--device", help="torch device for the recognizer."),
    workers: int = typer.Option(1, "--workers", min=1, help="Extract poses (and render) N videos at once in "
                                "worker processes; one recognizer in this process."),
    video: bool = typer.Option(True, "--video/--no-video", help="Write annotated videos (--no-video: only "
                               "the reports)."),
    unknown_threshold: Optional[float] = typer.Option(
        None, "--unknown-threshold", help="Report 'unknown' when the top score is below F "
        "(default: the model's calibrated threshold; 0 turns it off)."),
) -> None:
    """Run the demo on every video of a folder; write annotated videos, predictions.csv and report.xlsx."""
    if not video_dir.is_dir():
        raise ConfigError(f"{video_dir}: not a folder")
    from posec3d.stream.labels import check_unknown_threshold

    check_unknown_threshold(unknown_threshold)
    videos = find_videos(video_dir)
    if not videos:
        raise ConfigError(f"{video_dir}: no videos found (extensions: {' '.join(VIDEO_EXTENSIONS)})")
    from posec3d.files import check_writable

    check_writable(out_dir, folders=True)
    import contextlib

    from posec3d.stream.batch import PoseWorkers

    # The pose workers start first: their imports and MediaPipe models load while this process
    # loads the recognizer, instead of after it (seconds of an idle core otherwise).
    with contextlib.ExitStack() as stack:
        pool = (stack.enter_context(PoseWorkers(min(workers, len(videos)), max_persons))
                if workers > 1 and len(videos) > 1 else None)
        rows = _classify_folder(video_dir, out_dir, model=model, config=config, checkpoint=checkpoint,
                                label_map=label_map, device=device, num_clips=num_clips, annotations=annotations,
                                topk=topk, max_persons=max_persons, max_frames=max_frames, workers=workers,
                                render=video, unknown_threshold=unknown_threshold, pool=pool, total=len(videos))
        if pool is not None:
            pool.close_soon()  # the idle workers exit while the reports are written
        csv_path, xlsx_path = write_reports(out_dir, rows, topk)
    failed = [r for r in rows if r["error"]]
    cached = sum(1 for r in rows if r.get("cached"))
    overall, _, _ = summary_tables(rows)
    typer.echo(f"{len(rows)} videos ({cached} from cache), {len(failed)} failed; wrote {csv_path} and {xlsx_path}")
    for _, (metric, value) in overall.iterrows():
        if metric.endswith("accuracy") and value is not None and value == value:  # skip None / NaN
            typer.echo(f"  {metric}: {value:.4f}")
    for r in failed:
        typer.echo(f"  failed: {r['path']}: {r['error']}")
    for r in rows:
        if r.get("unknown"):
            from posec3d.stream import display_label

            top = r["predictions"][0]
            typer.echo(f"  {r['path']}: {display_label(top['label'], top['score'], True)}")


def _checkpoint_identity(recognizer) -> str:
    """Name of the checkpoint plus its size and mtime, so a retrained model invalidates the cache."""
    path = Path(getattr(recognizer, "checkpoint_path", "") or "")
    if path.is_file():
        st = os.stat(path)
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return str(path)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("demo-folder")(demo_folder)
