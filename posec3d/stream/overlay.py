"""What the stream looks like: skeletons, person boxes and labels, the top-k panel and the timeline."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from posec3d.stream.labels import display_label

TIMELINE_COLOURS = np.array([
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
], dtype=np.uint8)


def person_box(keypoints: np.ndarray, scores: np.ndarray, thr: float) -> Optional[tuple[int, int, int, int]]:
    """The box around a person's confident joints (None when there is none)."""
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


def _rectangle(frame: np.ndarray, box: Sequence[float], colour, width: int) -> None:
    """Draw a box outline in place (numpy slices: no image round trip)."""
    h, w = frame.shape[:2]
    x0, y0 = int(np.clip(box[0], 0, w - 1)), int(np.clip(box[1], 0, h - 1))
    x1, y1 = int(np.clip(box[2], 0, w - 1)), int(np.clip(box[3], 0, h - 1))
    if x1 <= x0 or y1 <= y0:
        return
    frame[y0:y0 + width, x0:x1 + 1] = colour
    frame[max(y0, y1 - width + 1):y1 + 1, x0:x1 + 1] = colour
    frame[y0:y1 + 1, x0:x0 + width] = colour
    frame[y0:y1 + 1, max(x0, x1 - width + 1):x1 + 1] = colour


def draw_persons(frame: np.ndarray, persons: Sequence, original_size: tuple[int, int], *,
                 status: Optional[str] = None, score_thr: float = 0.3) -> np.ndarray:
    """Live overlay: per person (``PersonState``) skeleton, box, ``#id label score``; ``status`` top left.

    Keypoints are in pixels of ``original_size`` (w, h) and are scaled to ``frame``'s size.
    """
    from posec3d.render import PERSON_COLOURS, draw_label_panel, draw_pose, line_width_for

    h, w = frame.shape[:2]
    scale = np.array([w / original_size[0], h / original_size[1]], np.float32)
    out = frame
    if persons:
        kp = np.stack([p.keypoints for p in persons]) * scale
        sc = np.stack([p.scores for p in persons])
        out = draw_pose(out, kp, sc, score_thr=score_thr, person_ids=[p.person for p in persons])
    else:
        out = np.array(frame, copy=True)
    font = max(12, h // 30)
    for p in persons:
        if p.box is None:
            continue
        box = np.asarray(p.box, np.float32) * np.tile(scale, 2)
        _rectangle(out, box, PERSON_COLOURS[p.person % len(PERSON_COLOURS)], max(1, line_width_for(h, w) // 2))
        text = f"#{p.person} " + (display_label(p.label, p.score, p.unknown) if p.label is not None else "...")
        out = draw_label_panel(out, [text], origin=(max(0, int(box[0])), max(0, int(box[1]) - font - 12)),
                               font_size=font)
    if status:
        out = draw_label_panel(out, [status], origin=(8, 8), font_size=max(12, h // 32))
    return out


def render_frame(frame: np.ndarray, t: int, result, *, topk_lines: int = 5, score_thr: float = 0.3) -> np.ndarray:
    """Offline overlay of frame ``t`` of a ``VideoResult``: skeletons, the top-k panel, per-person
    labels (the person's window at ``t`` when there are per-person windows) and the timeline."""
    from posec3d.render import draw_label_panel, draw_pose
    from posec3d.engine.predictions import window_at
    from posec3d.stream.labels import is_unknown

    thr = result.unknown_threshold
    ann = result.annotation
    kp = np.asarray(ann["keypoint"], dtype=np.float32)
    sc = ann.get("keypoint_score")
    sc = np.ones(kp.shape[:3], np.float32) if sc is None else np.asarray(sc, dtype=np.float32)
    if t < kp.shape[1]:
        frame = draw_pose(frame, kp[:, t], sc[:, t], score_thr=score_thr)
    lines = [f"{p.label}  {p.score:.2f}" for p in result.predictions[:topk_lines]]
    if result.predictions and result.unknown:
        top = result.predictions[0]
        lines[0] = display_label(top.label, top.score, True)
    if result.timeline:
        win = window_at(result.timeline, t)
        if win is not None:
            now = display_label(win.top.label, win.top.score, is_unknown(win.top.score, thr))
            lines = [f"now: {now}  [{win.start}-{win.end - 1}]"] + [f"clip: {s}" for s in lines[:1]]
    frame = draw_label_panel(frame, lines)
    for person in result.persons:
        where = result.person_keypoints(person, t)
        if where is None:
            continue
        box = person_box(where[0], where[1], score_thr)
        if box is None:
            continue
        top, unknown = person.top, person.unknown
        win = window_at(person.timeline, t) if person.timeline else None
        if win is not None:
            top, unknown = win.top, is_unknown(win.top.score, thr)
        y = max(0, box[1] - frame.shape[0] // 14)
        frame = draw_label_panel(frame, [f"#{person.person} {display_label(top.label, top.score, unknown)}"],
                                 origin=(max(0, box[0]), y), font_size=max(12, frame.shape[0] // 36))
    if result.timeline:
        frame = draw_timeline(frame, result.timeline, int(ann["total_frames"]), t)
    return frame


def render_video(source, out_path, result, *, progress: Optional[Callable[..., None]] = None,
                 snapshot: Optional[tuple[int, Path]] = None) -> None:
    """Write the annotated video (the frames the result covers) to ``out_path``, atomically.
    ``snapshot=(t, png_path)`` also saves frame ``t`` as a PNG."""
    from posec3d.render import VideoWriter
    from posec3d.pose.video import VideoReader

    total = int(result.annotation["total_frames"])
    with VideoReader(source, max_frames=total) as reader:
        fps = reader.fps or 25.0
        with VideoWriter(out_path, fps=fps, width=reader.width, height=reader.height) as writer:
            for t, (_, rgb) in enumerate(reader):
                drawn = render_frame(rgb, t, result)
                writer.write(drawn)
                if snapshot is not None and t == snapshot[0]:
                    save_png(drawn, snapshot[1])
                if progress is not None:
                    progress(advance=1)


def save_png(frame: np.ndarray, path) -> None:
    """One RGB frame as a PNG, atomically."""
    from PIL import Image

    from posec3d.files import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
