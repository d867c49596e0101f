"""Skeleton videos of annotation samples: one MP4 per sample, skeletons and label drawn over the
source video when it is found, else over a blank canvas (what `posec3d vis` and the web app's Dataset
tab draw)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
from posec3d.errors import AnnotationError, VideoError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv")
# Joint layouts drawn as COCO-17 skeletons (index maps from posec3d.data.skeletons); "auto" picks
# by joint count, and for 20-joint Kinect files (two orders) by where the head is.
LAYOUTS = ("auto", "coco17", "penn_action", "jhmdb", "kinect20", "msr_action3d")
AUTO_LAYOUT = {17: "coco17", 13: "penn_action", 15: "jhmdb"}


def to_coco17(keypoint: np.ndarray, score: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Re-index (M, T, V, 2) / (M, T, V) to COCO-17 for drawing; absent joints get score 0."""
    from posec3d.data import skeletons

    index = {
        "penn_action": skeletons.PENN_ACTION_TO_COCO17,
        "jhmdb": skeletons.JHMDB_TO_COCO17,
        "kinect20": skeletons.KINECT20_TO_COCO17,
        "msr_action3d": skeletons.MSR_ACTION3D_TO_COCO17,
    }.get(layout)
    if index is None:
        return keypoint, score
    idx = np.asarray(index)
    if idx.max() >= keypoint.shape[2]:
        raise AnnotationError(f"layout {layout!r} needs at least {idx.max() + 1} joints, the sample has "
                              f"{keypoint.shape[2]}")
    kp = keypoint[:, :, np.maximum(idx, 0)]
    sc = np.where(idx >= 0, score[:, :, np.maximum(idx, 0)], 0).astype(np.float32)
    return kp, sc
def kinect20_order(keypoint: np.ndarray, score: np.ndarray) -> str:
    """Which of the two 20-joint Kinect v1 orders a sample uses: 'kinect20' (SDK / UTKinect order,
    joint 19 = right foot) or 'msr_action3d' (joint 19 = head). In image coordinates (y down) a
    head is above the middle of the body and a foot below it."""
    seen = score[..., 19] > 0
    if not seen.any():
        return "kinect20"
    valid = np.where(score > 0, keypoint[..., 1], np.nan)[seen]  # (N, V) y of confident joints
    middle = np.nanmedian(valid, axis=-1)
    return "msr_action3d" if float(np.mean(keypoint[..., 19, 1][seen] - middle)) < 0 else "kinect20"


CANVAS_GREY = 24  # blank canvas: near black, so the dark label box still shows its edge


def find_video(sample: dict, video_root: str | os.PathLike | None, ann_dir: Path | None = None) -> Path | None:
    """The sample's source video: its ``filename`` / ``file_path`` key (absolute, or relative to
    ``video_root`` or the annotation folder), else ``<video_root>/<frame_dir>[_rgb].{mp4,avi,mkv}``."""
    roots = [Path(r) for r in (video_root, ann_dir) if r is not None]
    for key in ("filename", "file_path"):
        name = sample.get(key)
        if name:
            p = Path(name)
            for candidate in [p] + [r / p for r in roots if not p.is_absolute()]:
                if candidate.is_file():
                    return candidate
    frame_dir = sample.get("frame_dir")
    if video_root is not None and frame_dir:
        # NTU RGB+D names its videos <frame_dir>_rgb.avi (S001C001P001R001A001_rgb.avi).
        for stem in (frame_dir, f"{frame_dir}_rgb"):
            for ext in VIDEO_EXTENSIONS:
                candidate = Path(video_root) / f"{stem}{ext}"
                if candidate.is_file():
                    return candidate
    return None


def output_name(sample: dict, index: int) -> str:
    """A flat, filesystem-safe file name for a sample (``train/a b/x`` -> ``train_a b_x.mp4``)."""
    ident = str(sample.get("frame_dir") or Path(str(sample.get("filename", ""))).stem or "")
    safe = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", ident).strip(" ._")
    return f"{safe or f'sample_{index:05d}'}.mp4"


def label_lines(sample: dict, label_names: list[str] | None) -> list[str]:
    lines = [str(sample.get("frame_dir") or sample.get("filename") or "")]
    label = sample.get("label")
    if label is not None and int(label) >= 0:
        name = label_names[int(label)] if label_names and int(label) < len(label_names) else None
        lines.append(f"{int(label)}: {name}" if name else f"label {int(label)}")
    return [s for s in lines if s]


def _fit(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    if not short_side or min(h, w) <= short_side:
        return h, w
    f = short_side / min(h, w)
    return max(2, round(h * f / 2) * 2), max(2, round(w * f / 2) * 2)


def _frames(video: Path | None, total: int, size: tuple[int, int], short_side: int | None
            ) -> tuple[Iterator[np.ndarray], tuple[int, int], float | None]:
    """(frame iterator of exactly ``total`` frames, output (h, w), video fps or None)."""
    if video is None:
        h, w = _fit(*size, short_side)
        canvas = np.full((h, w, 3), CANVAS_GREY, np.uint8)
        return (canvas for _ in range(total)), (h, w), None
    from posec3d.pose.video import VideoReader

    reader = VideoReader(video, max_frames=total, short_side=short_side)

    def gen() -> Iterator[np.ndarray]:
        last = None
        with reader:
            for _, rgb in reader:
                last = rgb
                yield rgb
        # A video shorter than the skeleton sequence: hold its last frame.
        for _ in range(total - reader.frames_decoded):
            yield last

    return gen(), (reader.out_height, reader.out_width), reader.fps


def render_sample(
    sample: dict,
    out_path: str | os.PathLike,
    *,
    label_names: list[str] | None = None,
    fps: float | None = None,
    video_root: str | os.PathLike | None = None,
    ann_dir: Path | None = None,
    short_side: int | None = None,
    score_thr: float = 0.3,
    layout: str = "auto",
    progress: Callable[..., None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path | None:
    """Write one sample's skeleton video; return the source video used (None: blank canvas).

    An unreadable source video raises ``VideoError``, or, when ``warn`` is given, is reported
    through it and replaced by the blank canvas.
    """
    # Imported here, not at the top: the renderer pulls in PyAV and PIL, which every other command
    # would otherwise pay for at start-up.
    from posec3d.render import COCO17_EDGES, COCO17_LEFT, COCO17_RIGHT, VideoWriter, draw_label_panel, draw_pose

    where = f"sample {sample.get('frame_dir', sample.get('filename', '?'))!r}"
    if "keypoint" not in sample:
        raise AnnotationError(f"{where}: has no 'keypoint' array (a K400 kpfile index?); nothing to draw")
    kp = np.asarray(sample["keypoint"], dtype=np.float32)[..., :2]
    num_persons, total, num_joints = kp.shape[:3]
    scores = sample.get("keypoint_score")
    scores = np.ones(kp.shape[:3], np.float32) if scores is None else np.asarray(scores, np.float32)
    if layout == "auto":
        layout = AUTO_LAYOUT.get(num_joints) or (kinect20_order(kp, scores) if num_joints == 20 else "points")
    kp, scores = to_coco17(kp, scores, layout)
    img_h, img_w = (int(v) for v in sample.get("img_shape") or (0, 0))
    video = find_video(sample, video_root, ann_dir)
    if video is None and (img_h <= 0 or img_w <= 0):
        raise AnnotationError(f"{where}: no source video found and no img_shape for a blank canvas")
    if img_h <= 0 or img_w <= 0:  # keypoints then are in the video's own pixels
        from posec3d.pose.video import VideoReader

        with VideoReader(video) as r:
            img_h, img_w = r.height, r.width
    try:
        frames, (out_h, out_w), video_fps = _frames(video, total, (img_h, img_w), short_side)
    except VideoError as e:
        if warn is None:
            raise
        warn(f"{where}: {e}; drawing on a blank canvas instead")
        video = None
        frames, (out_h, out_w), video_fps = _frames(None, total, (img_h, img_w), short_side)
    scale = np.array([out_w / img_w, out_h / img_h], np.float32)
    coco = kp.shape[2] == 17 and layout != "points"
    edges, left, right = (COCO17_EDGES, COCO17_LEFT, COCO17_RIGHT) if coco else ((), (), ())
    lines = label_lines(sample, label_names)
    with VideoWriter(out_path, fps=fps or video_fps or 30, width=out_w, height=out_h) as writer:
        for t, frame in enumerate(frames):
            drawn = draw_pose(frame, kp[:, t] * scale, scores[:, t], edges, score_thr,
                              left=left, right=right)
            writer.write(draw_label_panel(drawn, lines + [f"frame {t + 1}/{total}"]))
            if progress is not None:
                progress(advance=1)
    return video
