"""Drawing skeletons and labels on frames, and reading / writing videos with PyAV.

Shared by `posec3d vis`, `posec3d demo` and `posec3d demo-folder`. Frames are RGB ``uint8`` arrays
of shape (H, W, 3). Drawing uses Pillow (a matplotlib dependency), so no OpenCV is needed.
"""
from __future__ import annotations

import contextlib
import functools
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from posec3d.data.skeletons import CONFIG_LIMBS, COCO17_LEFT_KP, COCO17_RIGHT_KP
from posec3d.errors import VideoError

# COCO-17 sides (SPEC §1.5): used to colour joints and limbs by body side.
COCO17_LEFT = COCO17_LEFT_KP
COCO17_RIGHT = COCO17_RIGHT_KP
# The limb list of the limb configs (face, arms, trunk, legs) plus the shoulder line, which
# closes the torso in a drawing.
COCO17_EDGES = tuple(CONFIG_LIMBS) + ((5, 6),)

LEFT_COLOUR = (255, 140, 0)     # orange
RIGHT_COLOUR = (30, 144, 255)   # blue
CENTRE_COLOUR = (50, 205, 50)   # green
# One ring colour per tracked person slot, chosen to stay distinct from the side colours.
PERSON_COLOURS = (
    (255, 255, 255), (255, 0, 255), (255, 255, 0), (0, 255, 255),
    (255, 60, 60), (160, 80, 255), (255, 180, 200), (140, 255, 140),
)


def _side(joint: int, left: Sequence[int], right: Sequence[int]) -> str:
    return "left" if joint in left else "right" if joint in right else "centre"


def _edge_colour(a: int, b: int, left: Sequence[int], right: Sequence[int]) -> tuple[int, int, int]:
    sides = {_side(a, left, right), _side(b, left, right)}
    if sides == {"left"}:
        return LEFT_COLOUR
    if sides == {"right"}:
        return RIGHT_COLOUR
    return CENTRE_COLOUR


def _joint_colour(j: int, left: Sequence[int], right: Sequence[int]) -> tuple[int, int, int]:
    return {"left": LEFT_COLOUR, "right": RIGHT_COLOUR, "centre": CENTRE_COLOUR}[_side(j, left, right)]


def _check_rgb(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 frame (H, W, 3), got {frame.dtype} {frame.shape}")


def line_width_for(height: int, width: int) -> int:
    """Limb thickness that stays visible from 240p to 4K."""
    return max(2, round(min(height, width) / 270))


def draw_pose(
    frame: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    edges: Sequence[tuple[int, int]] = COCO17_EDGES,
    score_thr: float = 0.3,
    *,
    left: Sequence[int] = COCO17_LEFT,
    right: Sequence[int] = COCO17_RIGHT,
    person_ids: Sequence[int] | None = None,
) -> np.ndarray:
    """Draw every person's skeleton and return a new frame (the input is not modified).

    ``keypoints`` (M, V, 2) in pixels of this frame, ``scores`` (M, V) or None (all visible).
    A joint is drawn when its score >= ``score_thr`` and its coordinates are finite; a limb when
    both ends are. Limbs and joint dots are coloured by body side (left / right / centre); each
    joint gets a ring in the colour of its person slot (``person_ids[m]``, default m), so tracked
    people keep their colour across frames.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim == 2:
        keypoints = keypoints[None]
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be (M, V, 2), got {keypoints.shape}")
    if scores is None:
        scores = np.ones(keypoints.shape[:2])
    scores = np.asarray(scores, dtype=np.float64).reshape(keypoints.shape[:2])
    _check_rgb(frame)
    out = np.array(frame, copy=True)
    h, w = frame.shape[:2]
    width = line_width_for(h, w)
    radius = width + 1
    visible = (scores >= score_thr) & np.isfinite(keypoints).all(axis=2)
    if not visible.any():
        return out
    # Draw only inside the box around the visible joints: a full 1080p round trip through
    # Pillow costs more than the drawing itself.
    pts_all = keypoints[visible]
    margin = radius + width + 2
    x0 = int(np.clip(np.floor(pts_all[:, 0].min()) - margin, 0, w))
    y0 = int(np.clip(np.floor(pts_all[:, 1].min()) - margin, 0, h))
    x1 = int(np.clip(np.ceil(pts_all[:, 0].max()) + margin + 1, 0, w))
    y1 = int(np.clip(np.ceil(pts_all[:, 1].max()) + margin + 1, 0, h))
    if x1 <= x0 or y1 <= y0:
        return out  # every visible joint lies outside the frame
    image = Image.fromarray(out[y0:y1, x0:x1], "RGB")
    draw = ImageDraw.Draw(image)
    for m in range(keypoints.shape[0]):
        pts, vis = keypoints[m] - (x0, y0), visible[m]
        ring = PERSON_COLOURS[(person_ids[m] if person_ids is not None else m) % len(PERSON_COLOURS)]
        for a, b in edges:
            if a < len(pts) and b < len(pts) and vis[a] and vis[b]:
                draw.line([tuple(pts[a]), tuple(pts[b])], fill=_edge_colour(a, b, left, right), width=width)
        for j in np.flatnonzero(vis):
            x, y = pts[j]
            draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                         fill=_joint_colour(int(j), left, right), outline=ring, width=max(1, width // 2))
    out[y0:y1, x0:x1] = np.asarray(image)
    return out


def _font_candidates() -> list[Path]:
    # A CJK-capable font first (class names may be Korean, e.g. Taekwondo), then DejaVu.
    roots = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts"]
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            for pattern in ("*NanumGothic*.tt[fc]", "*NotoSansCJK*.tt[fc]", "*NotoSansKR*.[ot]tf"):
                found.extend(sorted(root.rglob(pattern)))
    with contextlib.suppress(ImportError):
        import matplotlib

        found.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    found.append(Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    return [p for p in found if p.is_file()]


@functools.lru_cache(maxsize=16)
def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """A TrueType font of ``size`` px (CJK-capable when one is installed)."""
    for path in _font_candidates():
        with contextlib.suppress(OSError):
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def draw_label_panel(
    frame: np.ndarray,
    lines: Sequence[str],
    *,
    origin: tuple[int, int] = (8, 8),
    font_size: int | None = None,
    text_colour: tuple[int, int, int] = (255, 255, 255),
    box_opacity: float = 0.6,
) -> np.ndarray:
    """Draw ``lines`` of text over a dark, semi-transparent box; return a new frame."""
    lines = [str(s) for s in lines if str(s)]
    if not lines:
        return np.array(frame, copy=True)
    h = frame.shape[0]
    size = font_size or max(14, h // 28)
    font = label_font(size)
    _check_rgb(frame)
    out = np.array(frame, copy=True)
    h, w = frame.shape[:2]
    pad, gap = max(4, size // 4), max(2, size // 5)
    text_w = max(font.getbbox(s)[2] for s in lines)
    line_h = size + gap
    x0, y0 = origin
    x1, y1 = x0 + text_w + 2 * pad, y0 + line_h * len(lines) - gap + 2 * pad
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1 + 1), min(h, y1 + 1)
    if cx1 <= cx0 or cy1 <= cy0:
        return out
    # Darken the box in numpy and draw the text on that crop only (cheap at any frame size).
    box = out[cy0:cy1, cx0:cx1].astype(np.float32) * (1.0 - box_opacity)
    image = Image.fromarray(box.round().astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for i, s in enumerate(lines):
        draw.text((x0 - cx0 + pad, y0 - cy0 + pad + i * line_h), s, font=font, fill=text_colour)
    out[cy0:cy1, cx0:cx1] = np.asarray(image)
    return out


def _encoder_name(preferred: str = "libx264") -> str:
    for name in (preferred, "libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
            continue
    raise VideoError("no usable video encoder: PyAV has neither libx264 nor mpeg4")


class VideoWriter:
    """Write RGB frames to an MP4 (H.264 yuv420p, mpeg4 if libx264 is missing), atomically.

    Frames go to a temporary file next to ``path``; it replaces ``path`` only when the ``with``
    block ends without error. Odd sizes are padded by one black row/column (yuv420p needs even).

        with VideoWriter("out.mp4", fps=30, width=w, height=h) as out:
            out.write(frame)
    """

    def __init__(self, path: str | os.PathLike, fps: float, width: int, height: int,
                 codec: str = "libx264", crf: int = 23):
        if fps <= 0 or width <= 0 or height <= 0:
            raise ValueError(f"bad video parameters for {path}: fps={fps}, size={width}x{height}")
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.width, self.height = int(width), int(height)
        self.codec = _encoder_name(codec)
        self.crf = crf
        self.frames_written = 0
        self._tmp: str | None = None
        self._container = None
        self._stream = None

    def __enter__(self) -> "VideoWriter":
        from posec3d.files import output_error, temp_path_for

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = temp_path_for(self.path, keep_suffix=True)
            self._container = av.open(self._tmp, mode="w", format="mp4")
        except OSError as e:
            self._discard()
            raise output_error(e, self.path) from None
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width = self.width + self.width % 2
        stream.height = self.height + self.height % 2
        stream.pix_fmt = "yuv420p"
        if self.codec == "libx264":
            stream.options = {"crf": str(self.crf), "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
        self._stream = stream
        return self

    def _discard(self) -> None:
        if self._tmp and os.path.exists(self._tmp):
            os.unlink(self._tmp)

    def write(self, frame: np.ndarray, index: int | None = None) -> None:
        """Append one RGB uint8 frame of exactly (height, width, 3).

        ``index``: its frame number (increasing); a gap holds the previous picture on screen for the
        frames left out (a live run that dropped frames keeps time without encoding copies)."""
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame must be uint8 ({self.height}, {self.width}, 3), "
                             f"got {frame.dtype} {frame.shape}")
        if self.width % 2 or self.height % 2:
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)))
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if index is not None:
            vf.pts = int(index)
            vf.time_base = 1 / self.fps
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except OSError as e:  # the disk filled up (or went read-only) under the encoder
            from posec3d.files import is_write_error, output_error

            if is_write_error(e):
                raise output_error(e, self.path) from None
            raise
        self.frames_written += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        from posec3d.files import output_error

        try:
            if exc_type is None:
                if self.frames_written == 0:
                    raise VideoError(f"{self.path}: no frames were written")
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            try:
                self._container.close()
            except OSError:
                if exc_type is None:
                    raise
            if exc_type is None:
                # mkstemp files are private (0600); give the video the usual umask permissions.
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(self._tmp, 0o666 & ~umask)
                os.replace(self._tmp, self.path)
        except OSError as e:
            raise output_error(e, self.path) from None
        finally:
            self._discard()


def read_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield a video's frames as contiguous RGB uint8 arrays (H, W, 3).

    A thin wrapper over ``posec3d.pose.video.VideoReader`` (PyAV), so decoding has one home.
    """
    from posec3d.pose.video import VideoReader

    with VideoReader(path, max_frames=max_frames) as reader:
        for _, rgb in reader:
            yield rgb
