"""`posec3d demo`: video -> poses (embedded estimator) -> action -> annotated video and JSON.

The pieces here (``load_recognizer``, ``classify_video``, ``render_video``) are shared with
`posec3d demo-folder`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import typer

from posec3d.errors import ConfigError
from posec3d.files import atomic_write_text

# A person slot must be seen in this many frames to get an action of its own (--per-person).
MIN_PERSON_FRAMES = 8


@dataclass
class VideoResult:
    """Everything the demo learnt about one video (``to_json`` gives the --json document)."""

    video: str
    annotation: dict
    predictions: list = field(default_factory=list)         # [Prediction], best first
    persons: list = field(default_factory=list)             # [(slot, [Prediction])] with --per-person
    timeline: list = field(default_factory=list)            # [WindowPrediction] with --window

    def to_json(self) -> dict:
        doc = {"video": self.video,
               "predictions": [{"label": p.label, "score": round(p.score, 6)} for p in self.predictions],
               "num_frames": int(self.annotation["total_frames"]),
               "num_persons": int(np.asarray(self.annotation["keypoint"]).shape[0])}
        if self.persons:
            doc["persons"] = [{"person": slot, "predictions": [{"label": p.label, "score": round(p.score, 6)}
                                                               for p in preds]}
                              for slot, preds in self.persons]
        if self.timeline:
            doc["timeline"] = [w.to_dict() for w in self.timeline]
        return doc


def load_recognizer(model: Optional[str], config: Optional[Path], checkpoint: Optional[Path],
                    label_map: Optional[Path], **kwargs):
    """A model by name (``--model``: bundled, or released and downloaded), a config + checkpoint
    pair, or the default bundled model."""
    from posec3d.engine.inference import ActionRecognizer

    if model is not None and (config or checkpoint):
        raise ConfigError("give either --model NAME or --config/--checkpoint, not both")
    if config is not None or checkpoint is not None:
        if config is None or checkpoint is None:
            raise ConfigError("--config and --checkpoint go together (add --label-map for class names)")
        for p in (config, checkpoint, label_map):
            if p is not None and not Path(p).is_file():
                raise ConfigError(f"{p}: file not found")
        return ActionRecognizer(config, checkpoint, label_map, **kwargs)
    return ActionRecognizer.from_bundled(model, **kwargs)


def extract_poses(video: Path, *, estimator=None, max_persons: int = 2, max_frames: Optional[int] = None,
                  progress: Optional[Callable[..., None]] = None) -> dict:
    """The video's pose annotation from the embedded estimator (or ``estimator``)."""
    from posec3d.pose.extract import extract_video

    return extract_video(video, estimator=estimator, max_persons=max_persons, max_frames=max_frames,
                         progress=progress)


def classify_annotation(recognizer, video: str, annotation: dict, *, topk: int = 5, per_person: bool = False,
                        window: Optional[int] = None, stride: Optional[int] = None,
                        progress: Optional[Callable[..., None]] = None) -> VideoResult:
    """Run the recognizer on a whole annotation, optionally per person and per window."""
    from posec3d.engine.inference import has_person, person_frames, select_person
    from posec3d.errors import VideoError

    if not has_person(annotation):
        raise VideoError(f"{video}: no person was found in any frame, nothing to classify")
    result = VideoResult(video=video, annotation=annotation)
    result.predictions = recognizer.predict(annotation, topk=topk)
    if per_person:
        for slot in range(np.asarray(annotation["keypoint"]).shape[0]):
            if person_frames(annotation, slot) >= MIN_PERSON_FRAMES:
                result.persons.append((slot, recognizer.predict(select_person(annotation, slot), topk=topk)))
    if window:
        result.timeline = recognizer.predict_windows(annotation, window, stride or max(1, window // 2),
                                                     progress=progress)
    return result


# ----------------------------------------------------------------------------------------------
# Rendering

TIMELINE_COLOURS = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
], dtype=np.uint8)


def _person_box(keypoints: np.ndarray, scores: np.ndarray, thr: float) -> Optional[tuple[int, int, int, int]]:
    ok = (scores >= thr) & np.isfinite(keypoints).all(axis=-1)
    if not ok.any():
        return None
    pts = keypoints[ok]
    return int(pts[:, 0].min()), int(pts[:, 1].min()), int(pts[:, 0].max()), int(pts[:, 1].max())


def draw_timeline(frame: np.ndarray, timeline: list, total: int, current: int) -> np.ndarray:
    """A strip at the bottom: one colour per window's label, a white cursor at ``current``."""
    h, w = frame.shape[:2]
    strip = max(6, h // 40)
    out = frame.copy()
    labels = sorted({win.top.index for win in timeline})
    colour_of = {lab: TIMELINE_COLOURS[i % len(TIMELINE_COLOURS)] for i, lab in enumerate(labels)}
    for win in timeline:  # later windows paint over the overlap, like window_at's choice
        x0, x1 = int(win.start * w / total), max(int(win.start * w / total) + 1, int(win.end * w / total))
        out[h - strip:, x0:x1] = colour_of[win.top.index]
    x = min(w - 1, int((current + 0.5) * w / total))
    out[h - strip - 3:, max(0, x - 1):x + 2] = 255
    return out


def render_frame(frame: np.ndarray, t: int, result: VideoResult, *, topk_lines: int = 5,
                 score_thr: float = 0.3) -> np.ndarray:
    """Skeletons of frame ``t``, the top-k panel, per-person labels and the timeline."""
    from posec3d.apps.render import draw_label_panel, draw_pose
    from posec3d.engine.inference import window_at

    ann = result.annotation
    kp = np.asarray(ann["keypoint"], dtype=np.float32)
    sc = ann.get("keypoint_score")
    sc = np.ones(kp.shape[:3], np.float32) if sc is None else np.asarray(sc, dtype=np.float32)
    if t < kp.shape[1]:
        frame = draw_pose(frame, kp[:, t], sc[:, t], score_thr=score_thr)
    lines = [f"{p.label}  {p.score:.2f}" for p in result.predictions[:topk_lines]]
    if result.timeline:
        win = window_at(result.timeline, t)
        if win is not None:
            lines = [f"now: {win.top.label}  {win.top.score:.2f}  [{win.start}-{win.end - 1}]"] + \
                    [f"clip: {s}" for s in lines[:1]]
    frame = draw_label_panel(frame, lines)
    if result.persons and t < kp.shape[1]:
        for slot, preds in result.persons:
            box = _person_box(kp[slot, t], sc[slot, t], score_thr)
            if box is not None:
                y = max(0, box[1] - frame.shape[0] // 14)
                frame = draw_label_panel(frame, [f"#{slot} {preds[0].label} {preds[0].score:.2f}"],
                                         origin=(max(0, box[0]), y), font_size=max(12, frame.shape[0] // 36))
    if result.timeline:
        frame = draw_timeline(frame, result.timeline, int(ann["total_frames"]), t)
    return frame


def render_video(video: Path, out: Path, result: VideoResult, *, progress: Optional[Callable[..., None]] = None,
                 snapshot: Optional[tuple[int, Path]] = None) -> None:
    """Write the annotated video (the frames the annotation covers), atomically."""
    from posec3d.apps.render import VideoWriter
    from posec3d.pose.video import VideoReader

    total = int(result.annotation["total_frames"])
    with VideoReader(video, max_frames=total) as reader:
        fps = reader.fps or 25.0
        with VideoWriter(out, fps=fps, width=reader.width, height=reader.height) as writer:
            for t, (_, rgb) in enumerate(reader):
                drawn = render_frame(rgb, t, result)
                writer.write(drawn)
                if snapshot is not None and t == snapshot[0]:
                    _save_png(drawn, snapshot[1])
                if progress is not None:
                    progress(advance=1)


def _save_png(frame: np.ndarray, path: Path) -> None:
    import io

    from PIL import Image

    from posec3d.files import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def write_json(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------
# CLI


def demo(
    video: Path = typer.Argument(..., help="Input video (anything PyAV/ffmpeg reads)."),
    out: Path = typer.Option(..., "-o", "--out", help="Annotated output video (.mp4)."),
    model: Optional[str] = typer.Option(None, "--model", help="A model name from `posec3d models`: "
                                        "bundled, or released and downloaded; default: penn-action."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file (pyskl / mmaction2 / posec3d)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint matching --config."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the top-k predictions as JSON."),
    topk: int = typer.Option(5, "--topk", min=1, help="How many classes to report."),
    per_person: bool = typer.Option(False, "--per-person", help="Also classify each tracked person alone."),
    window: Optional[int] = typer.Option(None, "--window", min=1, help="Classify sliding windows of N frames."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Window step in frames (default N/2)."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="People tracked by the estimator."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Use only the first N frames."),
    num_clips: Optional[int] = typer.Option(None, "--num-clips", min=1, help="Override the test clips."),
    device: str = typer.Option("cpu", "--device", help="torch device for the recognizer."),
    frame_png: Optional[Path] = typer.Option(None, "--save-frame", help="Also save one annotated frame "
                                             "(the middle one) as PNG."),
    allow_unsafe: bool = typer.Option(False, "--allow-unsafe", help="Load checkpoints that pickle Python objects "
                                      "beyond tensors and plain data (runs code from the file: trusted files only)."),
) -> None:
    """Recognise the action in a video: poses, skeletons drawn, top-k labels (and a timeline)."""
    from posec3d.apps.progress import progress_bar

    from posec3d.files import check_writable

    if stride is not None and window is None:
        raise ConfigError("--stride needs --window")
    check_writable(out, json_out, frame_png)  # before the models load and the video is processed
    from posec3d.models.checkpoint import unsafe_loading_allowed

    with unsafe_loading_allowed(allow_unsafe):
        recognizer = load_recognizer(model, config, checkpoint, label_map, device=device, num_clips=num_clips)
    with progress_bar(max_frames, f"poses {video.name}") as update:
        annotation = extract_poses(video, max_persons=max_persons, max_frames=max_frames, progress=update)
    result = classify_annotation(recognizer, str(video), annotation, topk=topk, per_person=per_person,
                                 window=window, stride=stride)
    snapshot = (int(annotation["total_frames"]) // 2, frame_png) if frame_png else None
    with progress_bar(int(annotation["total_frames"]), f"render {out.name}") as update:
        render_video(video, out, result, progress=update, snapshot=snapshot)
    doc = result.to_json()
    if json_out is not None:
        write_json(json_out, doc)
    for p in result.predictions:
        typer.echo(f"{p.score:7.4f}  {p.label}")
    if result.timeline:
        for w in result.timeline:
            typer.echo(f"  frames {w.start:5d}-{w.end - 1:<5d} {w.top.label} ({w.top.score:.2f})")
    typer.echo(f"wrote {out}" + (f" and {json_out}" if json_out else ""))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("demo")(demo)

