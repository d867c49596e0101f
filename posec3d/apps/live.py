"""`posec3d live`: each person's action, in real time, on a camera, a network stream or a file.

A thin shell over ``posec3d.stream.run_live``: flags in, signals turned into a clean stop,
one line per action change and a summary out.
"""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer

from posec3d.errors import ConfigError


def live(
    source: str = typer.Argument(..., help="Camera index (0) or device (/dev/video0), a stream URL (rtsp://, "
                                 "http://, tcp://, udp://, srt://) or a video file."),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (see `posec3d models`); default: penn-action."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file (pyskl / mmaction2 / posec3d)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint matching --config."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Annotated MP4 of the run."),
    jsonl: Optional[Path] = typer.Option(None, "--jsonl", help="Events, one JSON object per line, as they happen (appended to an existing file)."),
    display: bool = typer.Option(True, "--display/--no-display", help="Show the annotated picture in a window."),
    window: Optional[int] = typer.Option(None, "--window", min=1, help="Frames per person window "
                                         "(default: 3 model clips)."),
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Classify every S frames "
                                         "(default: one model clip; N/2 with --window)."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="People tracked at once."),
    realtime: Optional[bool] = typer.Option(None, "--realtime/--no-realtime", help="Play a file at its own "
                                            "frame rate, dropping frames when behind (cameras and streams "
                                            "always are); --no-realtime (files' default) takes every frame."),
    duration: Optional[float] = typer.Option(None, "--duration", min=0.0, help="Stop after SEC seconds."),
    reconnect: int = typer.Option(3, "--reconnect", min=0, help="Reconnect a stream that stalls or drops "
                                  "up to N times (backoff 0.5, 1, 2, ... s), then stop with an error."),
    pose_model: Optional[Path] = typer.Option(None, "--pose-model", help="MediaPipe .task bundle or ONNX "
                                              "top-down pose model (default: the bundled MediaPipe model)."),
    pose_workers: Optional[int] = typer.Option(None, "--pose-workers", min=1, help="Frames in pose estimation "
                                               "at once, one model instance each (default: one per core, at "
                                               "most 2, when the pose model keeps no state between frames)."),
    unknown_threshold: Optional[float] = typer.Option(
        None, "--unknown-threshold", help="Report 'unknown' when the top score is below F "
        "(default: the model's calibrated threshold; 0 turns it off)."),
    num_clips: Optional[int] = typer.Option(None, "--num-clips", min=1, help="Override the test clips per window."),
    device: str = typer.Option("cpu", "--device", help="torch device for the recognizer."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="Stop after N decoded frames."),
) -> None:
    """Recognise each person's action as the video plays: overlay, JSONL events, MP4."""
    import torch

    from posec3d.stream import display_label, load_recognizer
    from posec3d.stream.live import run_live

    from posec3d.stream.labels import check_unknown_threshold

    check_unknown_threshold(unknown_threshold)
    if window is not None and stride is not None and stride > window:
        raise ConfigError(f"--stride {stride} is longer than --window {window}: frames would be skipped")
    if pose_model is not None and not pose_model.is_file():
        raise ConfigError(f"{pose_model}: pose model not found")
    # Pose estimation has its own threads; one torch thread for the recognizer keeps the two from
    # fighting over the cores (on a 2-core machine a second torch thread makes both slower).
    torch.set_num_threads(1)
    recognizer = load_recognizer(model, config, checkpoint, label_map, device=device, num_clips=num_clips)

    def echo_event(event: dict) -> None:
        if event["event"] == "action":
            typer.echo(f"{event['t']:8.2f}s  person {event['person']}: "
                       f"{display_label(event['label'], event['score'], event['unknown'])}")
        elif event["event"] == "person_lost":
            typer.echo(f"{event['t']:8.2f}s  person {event['person']} lost")
        elif event["event"] == "reconnect":
            typer.echo(f"stream lost ({event['reason']}); reconnecting in {event['wait_s']:g} s "
                       f"(attempt {event['attempt']} of {event['of']})", err=True)

    stop = threading.Event()
    previous = {}

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if stop.is_set():  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        stop.set()
        typer.echo(f"{signal.Signals(signum).name}: stopping (finishing the video and the events)", err=True)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        summary = run_live(source, recognizer, out=out, jsonl=jsonl, display=display, window=window, stride=stride,
                           max_persons=max_persons, realtime=realtime, duration=duration, reconnect=reconnect,
                           pose_model=pose_model, pose_workers=pose_workers, unknown_threshold=unknown_threshold,
                           stop=stop,
                           on_event=echo_event, on_note=lambda s: typer.echo(s, err=True), max_frames=max_frames)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    d = summary.to_dict()
    typer.echo(f"{summary.reason}: {d['processed']} frames at {d['fps']:.1f} fps, {d['dropped']} dropped, "
               f"frame latency p95 {d['frame_latency_ms_p95']} ms, label latency p95 {d['label_latency_ms_p95']} ms"
               + (f"; wrote {out}" if out else "") + (f" and {jsonl}" if jsonl else ""))
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("live")(live)
