"""One home for video -> poses -> tracks -> windows -> actions -> overlay, built as a stream.

``StreamRecognizer`` takes frames one at a time and gives per-person actions; ``analyse_video``
runs a whole file (what `posec3d demo` and `demo-folder` print), ``render_video`` draws its result
into an MP4, and ``run_live`` drives a camera, a network stream or a file in real time (what
`posec3d live` runs). The library never imports typer or rich: progress is a plain callback.
"""
from posec3d.stream.core import PersonState, StreamOutput, StreamRecognizer, default_window
from posec3d.stream.labels import display_label, is_unknown, resolve_unknown_threshold
from posec3d.stream.models import load_recognizer
from posec3d.stream.offline import PersonResult, VideoResult, analyse_video, classify_annotation
from posec3d.stream.overlay import render_frame, render_video

__all__ = [
    "PersonResult", "PersonState", "StreamOutput", "StreamRecognizer", "VideoResult", "analyse_video",
    "classify_annotation", "default_window", "display_label", "is_unknown", "load_recognizer",
    "render_frame", "render_video", "resolve_unknown_threshold",
]
