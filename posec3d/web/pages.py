"""The Gradio pages: Video, Camera and Dataset tabs over the shared ``WebService``."""
from __future__ import annotations

import html
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import gradio as gr
import numpy as np
import pandas as pd

from posec3d.errors import PoseC3DError
from posec3d.files import atomic_write_text
from posec3d.stream import StreamRecognizer, display_label
from posec3d.web.service import WebService, safe_display_name

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
DATASET_SHORT_SIDE = 360   # skeleton previews: small files, quick to draw
CAMERA_FRAME_EVERY_S = 0.15
# The browser sends ~6 frames/s, not a video's 30: a 24-frame window spans ~4 s of motion (about a
# Penn Action clip) and the first label comes after ~4 s instead of the 48-frame default's ~8 s.
CAMERA_WINDOW, CAMERA_STRIDE = 24, 8
CAMERA_SESSION_S = 600


class _ProgressBridge:
    """The library's ``progress(advance=1, total=None, **fields)`` callback driving ``gr.Progress``."""

    def __init__(self, progress: gr.Progress, desc: str):
        self.progress, self.desc, self.done, self.total = progress, desc, 0, None

    def __call__(self, advance: int = 1, total: Optional[int] = None, **fields) -> None:
        if total is not None:
            self.total = total
        self.done += advance
        self.progress((self.done, self.total), desc=self.desc)


def _error(e: PoseC3DError) -> gr.Error:
    return gr.Error(str(e), print_exception=False)


# ----------------------------------------------------------------------------------------------
# Video tab


def _top_html(doc: dict) -> str:
    if doc.get("label") is None:
        return ""
    text = display_label(doc["label"], doc["score"], doc["unknown"])
    return f"<h2 id='top-label-text'>{html.escape(text)}</h2>"


def _tables(doc: dict):
    """The demo document as the page's tables: top-k, each person's top label, the timeline."""
    topk = pd.DataFrame([{"label": p["label"], "score": p["score"]} for p in doc["predictions"]])
    persons = pd.DataFrame([{"person": p["person"], "label": display_label(p["label"], p["score"], p["unknown"]),
                             "score": p["score"]} for p in doc.get("persons", [])],
                           columns=["person", "label", "score"])
    timeline = pd.DataFrame([{"start": w["start"], "end": w["end"],
                              "label": "unknown" if w["unknown"] else w["label"], "score": w["score"]}
                             for w in doc.get("timeline", [])], columns=["start", "end", "label", "score"])
    return topk, persons, timeline


def _video_tab(service: WebService) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            video_in = gr.Video(label="Video", sources=["upload"], elem_id="video-input")
            with gr.Accordion("Options", open=False):
                topk = gr.Slider(1, 10, value=5, step=1, label="top-k")
                per_person = gr.Checkbox(True, label="classify each person too", elem_id="per-person")
                window = gr.Number(None, precision=0, minimum=0, label="window (frames; empty or 0: whole video)",
                                   elem_id="window")
                stride = gr.Number(None, precision=0, minimum=0, label="stride (frames; default window/2)")
            run = gr.Button("Recognise", variant="primary", elem_id="video-run")
            examples = sorted(p for p in service.settings.examples.iterdir()
                              if p.suffix.lower() in VIDEO_SUFFIXES) if service.settings.examples else []
            if examples:
                gr.Examples([[str(p)] for p in examples], inputs=[video_in], label="Examples")
        with gr.Column(scale=2):
            top = gr.HTML(elem_id="top-label")
            video_out = gr.Video(label="Annotated video", elem_id="video-output", interactive=False)
            chart = gr.BarPlot(x="label", y="score", sort="-y", label="Top-k", elem_id="topk-chart", y_lim=[0, 1])
            persons = gr.Dataframe(label="Per person", elem_id="persons-table", interactive=False, visible=False)
            timeline = gr.ScatterPlot(x="start", y="score", color="label", label="Timeline (window start frame)",
                                      elem_id="timeline-chart", y_lim=[0, 1], visible=False)
            doc_view = gr.JSON(label="JSON (the `posec3d demo --json` document)", elem_id="result-json", max_height=300)
            doc_file = gr.File(label="Download JSON", elem_id="result-json-file")

    def recognise(path, k, each, win, step, progress=gr.Progress()):
        if not path:
            raise gr.Error("upload a video (or pick an example) first", print_exception=False)
        win = int(win) if win else None
        step = int(step) if step and win else None
        display = safe_display_name(Path(path).name)
        # The outputs live in a folder of ours until Gradio has copied them into its cache (the
        # code after the last yield runs after that copy); then the folder goes.
        folder = Path(tempfile.mkdtemp(dir=service.temp_root, prefix="page-"))
        try:
            try:
                result = service.analyse(Path(path), display, topk=int(k), per_person=bool(each), window=win,
                                         stride=step, progress=_ProgressBridge(progress, "poses"))
                stem = Path(display).stem or "video"
                out = service.render(Path(path), folder / f"{stem}_posec3d.mp4", result,
                                     progress=_ProgressBridge(progress, "drawing"))
            except PoseC3DError as e:
                raise _error(e) from None
            doc = result.to_json()
            json_path = folder / f"{stem}_posec3d.json"
            atomic_write_text(json_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            topk_df, persons_df, timeline_df = _tables(doc)
            yield (_top_html(doc), str(out), topk_df,
                   gr.update(value=persons_df, visible=not persons_df.empty),
                   gr.update(value=timeline_df, visible=not timeline_df.empty), doc, str(json_path))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    run.click(recognise, [video_in, topk, per_person, window, stride],
              [top, video_out, chart, persons, timeline, doc_view, doc_file])


# ----------------------------------------------------------------------------------------------
# Camera tab


class _CameraSession:
    """One browser's camera: its own StreamRecognizer (not thread-safe, so never shared)."""

    def __init__(self, service: WebService):
        self.stream = StreamRecognizer(service.recognizer, window=CAMERA_WINDOW, stride=CAMERA_STRIDE,
                                       max_persons=service.settings.max_persons,
                                       unknown_threshold=service.settings.unknown_threshold)
        self.start = time.monotonic()

    def close(self) -> None:
        self.stream.close()


def _camera_tab(service: WebService) -> None:
    gr.Markdown("Turn on the camera: each person's action is drawn live (the same core as `posec3d live`).")
    with gr.Row():
        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera", elem_id="camera-input")
        drawn = gr.Image(label="Recognised", elem_id="camera-output", interactive=False)
    labels = gr.HTML(elem_id="camera-labels")
    session = gr.State(None, delete_callback=lambda s: s.close() if s is not None else None)

    def on_frame(frame, state):
        if frame is None:
            return None, "", state
        state = state or _CameraSession(service)
        out = state.stream.push(np.ascontiguousarray(frame[..., :3]), time.monotonic() - state.start)
        lines = [f"#{p.person} {display_label(p.label, p.score, p.unknown)}" for p in out.persons
                 if p.label is not None]
        labels_html = "".join(f"<div class='camera-label'>{html.escape(line)}</div>" for line in lines)
        return state.stream.draw(frame[..., :3], out), labels_html, state

    cam.stream(on_frame, [cam, session], [drawn, labels, session], stream_every=CAMERA_FRAME_EVERY_S,
               time_limit=CAMERA_SESSION_S, concurrency_limit=max(2, service.settings.concurrency * 2))


# ----------------------------------------------------------------------------------------------
# Dataset tab


def _canvas_sample(sample: dict) -> dict:
    """The sample without its file-name keys (the server never opens a path a client names), with an
    ``img_shape`` to draw on when the file has none."""
    sample = {k: v for k, v in sample.items() if k not in ("filename", "file_path")}
    if not sample.get("img_shape"):
        kp = np.asarray(sample["keypoint"], np.float32)[..., :2]
        finite = kp[np.isfinite(kp).all(-1)]
        w, h = (finite.max(0) + 16).astype(int) if len(finite) else (256, 256)
        sample["img_shape"] = (max(64, int(h)), max(64, int(w)))
    return sample


def _dataset_tab(service: WebService) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            ann = gr.File(label="Annotation pickle (pyskl / mmaction2)", file_types=[".pkl", ".pickle"],
                          elem_id="dataset-file")
            names_file = gr.File(label="Label map (optional, one class name per line)", file_types=[".txt"])
            split = gr.Textbox(label="split (optional)")
            load = gr.Button("Load", variant="primary", elem_id="dataset-load")
            sample = gr.Dropdown(label="Sample", choices=[], elem_id="dataset-sample")
            render = gr.Button("Draw skeleton video", elem_id="dataset-render")
        with gr.Column(scale=2):
            summary_md = gr.Markdown(elem_id="dataset-summary")
            hist = gr.BarPlot(x="class", y="samples", label="Samples per class", elem_id="dataset-hist")
            summary_json = gr.JSON(label="`posec3d info --json`")
            skeleton = gr.Video(label="Skeleton", elem_id="dataset-video", interactive=False)
    samples_state = gr.State(None)
    names_state = gr.State(None)

    def load_file(path, names_path, split_name):
        from posec3d.data.annotations import load_annotations
        from posec3d.data.label_map import read_label_map
        from posec3d.data.summary import summarize

        if not path:
            raise gr.Error("upload an annotation pickle first", print_exception=False)
        split_name = (split_name or "").strip() or None
        try:
            summary = summarize(path, split_name)
            samples = load_annotations(path, split=split_name) if summary.get("kind") != "scores" else []
            names = read_label_map(names_path) if names_path else None
        except PoseC3DError as e:
            raise _error(e) from None
        shown = safe_display_name(Path(path).name)
        summary["file"] = shown
        counts = summary.get("class_counts") or {}
        hist_df = pd.DataFrame([{"class": names[int(k)] if names and int(k) < len(names) else str(k),
                                 "samples": int(v)} for k, v in counts.items()], columns=["class", "samples"])
        md = (f"**{shown}**: {summary['description']}  \n"
              f"samples: {summary['num_samples']}, classes: {summary.get('num_classes')}, "
              f"splits: {', '.join(f'{k} {v}' for k, v in (summary.get('splits') or {}).items()) or 'none'}")
        choices = [(f"{i}: {s.get('frame_dir', '')}", i) for i, s in enumerate(samples)]
        hist = gr.update(value=hist_df, y_lim=[0, int(hist_df["samples"].max()) if len(hist_df) else 1])
        return (md, hist, summary, gr.update(choices=choices, value=0 if choices else None), samples, names)

    def draw(index, samples, names, progress=gr.Progress()):
        from posec3d.data.skeleton_video import output_name, render_sample

        if not samples or index is None:
            raise gr.Error("load an annotation file first", print_exception=False)
        one = _canvas_sample(samples[int(index)])
        folder = Path(tempfile.mkdtemp(dir=service.temp_root, prefix="page-"))
        try:
            out = folder / output_name(one, int(index))
            try:
                service.workers.run(render_sample, one, out, label_names=names, short_side=DATASET_SHORT_SIDE,
                                    progress=_ProgressBridge(progress, "drawing"))
            except PoseC3DError as e:
                raise _error(e) from None
            yield str(out)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    load.click(load_file, [ann, names_file, split], [summary_md, hist, summary_json, sample, samples_state,
                                                      names_state])
    render.click(draw, [sample, samples_state, names_state], [skeleton])


def build_pages(service: WebService) -> gr.Blocks:
    name = service.model_name or "custom model"
    with gr.Blocks(title="posec3d", analytics_enabled=False, delete_cache=(600, 1800)) as pages:
        gr.Markdown(f"# posec3d: skeleton-based action recognition\nModel: **{name}**, "
                    f"{service.recognizer.num_classes} classes")
        with gr.Tabs():
            with gr.Tab("Video", id="video"):
                _video_tab(service)
            with gr.Tab("Camera", id="camera"):
                _camera_tab(service)
            with gr.Tab("Dataset", id="dataset"):
                _dataset_tab(service)
    pages.queue(default_concurrency_limit=service.settings.concurrency, max_size=service.settings.max_queue)
    return pages
