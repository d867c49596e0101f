"""Inference: one pose annotation in, class scores out.

``ActionRecognizer`` holds a model, the config's test pipeline and the label names; it turns an
annotation dict (SPEC §1.2, e.g. from ``posec3d.pose.extract.extract_video``) into scores the
same way ``posec3d test`` does (multi-clip x flip views averaged as the config says). The helpers
below cut an annotation into one person or one time window, so the demo can classify each
person, or a long video window by window.

Works with any pyskl / mmaction2 PoseC3D config + checkpoint + label map, and with the bundled
models of ``posec3d.zoo``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from posec3d.engine.calibration import apply_temperature, read_calibration
from posec3d.engine.config import load_config, model_cfg, pipeline_cfg
from posec3d.engine.predictions import Prediction, WindowPrediction, window_at  # noqa: F401  (re-exported)
from posec3d.errors import AnnotationError, ConfigError

# The demo never has K400 kpfiles: the annotation already carries the keypoints.
_LOADER_ONLY_TRANSFORMS = ("DecompressPose",)


def test_pipeline_dicts(cfg: Mapping) -> list[dict]:
    """The config's test pipeline (val pipeline if there is no test one), loader-only steps removed."""
    try:
        pipeline = pipeline_cfg(cfg, "test")
    except ConfigError:
        pipeline = pipeline_cfg(cfg, "val")
    return [copy.deepcopy(dict(t)) for t in pipeline if t.get("type") not in _LOADER_ONLY_TRANSFORMS]


def set_test_views(pipeline: list[dict], num_clips: int | None = None, flip: bool | None = None) -> list[dict]:
    """Rewrite the number of clips (UniformSampleFrames) and the flip view (GeneratePoseTarget.double)."""
    for t in pipeline:
        if num_clips is not None and t.get("type") == "UniformSampleFrames":
            t["num_clips"] = int(num_clips)
        if flip is not None and t.get("type") == "GeneratePoseTarget":
            t["double"] = bool(flip)
            if flip:
                t.setdefault("left_kp", [1, 3, 5, 7, 9, 11, 13, 15])
                t.setdefault("right_kp", [2, 4, 6, 8, 10, 12, 14, 16])
    return pipeline


class ActionRecognizer:
    """A PoseC3D model ready to classify annotations.

    ``config`` is a config file (pyskl or mmaction2 layout), ``checkpoint`` a pyskl, mmaction2 or
    posec3d checkpoint, ``label_map`` a text file with one class name per line (optional: names
    default to the class index). ``num_clips`` / ``flip`` override the test pipeline's views.
    ``calibration`` is ``{"temperature": T, "unknown_threshold": p}`` (see engine/calibration.py);
    a bundled model takes it from its ``model.json``.
    """

    def __init__(self, config: str | Path, checkpoint: str | Path, label_map: str | Path | None = None,
                 *, device: str = "cpu", num_clips: int | None = None, flip: bool | None = None,
                 fuse_bn: bool = True, calibration: Mapping | None = None):
        from posec3d.data.pipeline import Compose
        from posec3d.models import build_model, optimize_for_inference
        from posec3d.models.checkpoint import load_checkpoint

        self.config_path = Path(config)
        self.checkpoint_path = Path(checkpoint)
        self.cfg = load_config(config)
        model = build_model(model_cfg(self.cfg))
        load_checkpoint(model, checkpoint, strict=True)
        from posec3d.engine.evaluation import require_finite_weights

        require_finite_weights(model, checkpoint)
        model.eval()
        if fuse_bn:
            # BN folding + channels-last 3D: same outputs up to float rounding, ~1.7x faster on CPU.
            model = optimize_for_inference(model)
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.pipeline = Compose(set_test_views(test_pipeline_dicts(self.cfg), num_clips, flip))
        # The recognizer resolved pyskl's test_cfg and mmaction2's cls_head spelling already.
        self.average_clips = getattr(self.model, "average_clips", "prob")
        self.num_classes = _num_classes(model_cfg(self.cfg))
        if label_map is not None:
            from posec3d.zoo import read_label_map

            self.labels = read_label_map(label_map)
            if len(self.labels) != self.num_classes:  # longer is as wrong as shorter: names would shift
                raise ConfigError(f"{label_map}: {len(self.labels)} class names for a model with "
                                  f"{self.num_classes} classes ({config})")
        else:
            self.labels = [str(i) for i in range(self.num_classes)]
        # Open set (engine/calibration.py): a temperature for every score, and the calibrated top
        # probability under which a result is "unknown" (0 = never); both fitted on held-out clips.
        calibration = calibration or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.unknown_threshold = float(calibration.get("unknown_threshold", 0.0))

    @classmethod
    def from_bundled(cls, name: str | None = None, **kwargs) -> "ActionRecognizer":
        """The bundled model ``name`` (see ``posec3d models``)."""
        from posec3d.zoo import resolve_model

        m = resolve_model(name)
        kwargs.setdefault("calibration", read_calibration(m.config.parent))
        return cls(m.config, m.checkpoint, m.label_map, **kwargs)

    # ------------------------------------------------------------------------------------------
    def scores(self, annotation: Mapping) -> np.ndarray:
        """Class scores (num_classes,) of one annotation: probabilities when views average as 'prob'."""
        return self.scores_batch([annotation])[0]

    def scores_batch(self, annotations: list[Mapping]) -> np.ndarray:
        """Class scores (B, num_classes) of several annotations (persons, windows) in one forward pass.

        Every view of every annotation goes through the network as one batch: on CPU a batch of
        B samples costs well under B single passes. Row ``i`` equals ``scores(annotations[i])``.
        """
        return self.scores_of_views(torch.stack([self.views(a) for a in annotations]).float())

    def views(self, annotation: Mapping) -> torch.Tensor:
        """The test pipeline's views of one annotation, (V, C, T, H, W): what ``scores_of_views`` takes
        (batched) for it."""
        imgs = self.pipeline(prepare_annotation(annotation))["imgs"]
        return imgs if isinstance(imgs, torch.Tensor) else torch.as_tensor(np.asarray(imgs))

    def scores_of_views(self, imgs: torch.Tensor) -> np.ndarray:
        """(B, V, C, T, H, W) pipeline outputs -> (B, num_classes) scores: the one scoring function."""
        with torch.inference_mode():
            logits = self.model.forward_test(imgs.to(self.device))
        scores = logits.float().cpu().numpy()
        if self.average_clips != "prob":
            # Raw logits averaged over views: turn them into probabilities for display.
            scores = np.stack([_softmax(row) for row in scores])
        return apply_temperature(scores, self.temperature)

    def rank(self, scores: np.ndarray, topk: int = 5) -> list[Prediction]:
        """The ``topk`` best classes, best first (ties: lower index first)."""
        order = np.lexsort((np.arange(len(scores)), -scores))[:max(1, topk)]
        return [Prediction(int(i), self.labels[i], float(scores[i])) for i in order]

    def predict(self, annotation: Mapping, topk: int = 5) -> list[Prediction]:
        return self.rank(self.scores(annotation), topk)

    def predict_windows(self, annotation: Mapping, window: int, stride: int,
                        progress: Callable[..., None] | None = None) -> list[WindowPrediction]:
        """Top class of each sliding window of ``window`` frames every ``stride`` frames."""
        spans = sliding_windows(int(annotation["total_frames"]), window, stride)
        result = []
        for start, end in spans:
            top = self.predict(slice_frames(annotation, start, end), topk=1)[0]
            result.append(WindowPrediction(start, end, top))
            if progress is not None:
                progress(advance=1)
        return result


# ----------------------------------------------------------------------------------------------
# Annotation helpers


def prepare_annotation(annotation: Mapping) -> dict:
    """A fresh sample dict for the test pipeline (pipelines modify samples in place)."""
    required = ("keypoint", "total_frames", "img_shape")
    missing = [k for k in required if k not in annotation]
    name = annotation.get("frame_dir") or annotation.get("filename") or "annotation"
    if missing:
        raise AnnotationError(f"{name}: missing key(s) {missing} needed for inference")
    kp = np.asarray(annotation["keypoint"], dtype=np.float32)
    if kp.ndim != 4 or kp.shape[-1] != 2:
        raise AnnotationError(f"{name}: keypoint must be (M, T, V, 2), got {kp.shape}")
    if kp.shape[0] == 0:
        raise AnnotationError(f"{name}: no person was found in any frame")
    score = annotation.get("keypoint_score")
    score = np.ones(kp.shape[:3], np.float32) if score is None else np.asarray(score, np.float32)
    sample = {k: v for k, v in annotation.items() if k not in ("keypoint", "keypoint_score")}
    sample.update(
        keypoint=kp.copy(), keypoint_score=score.copy(),
        total_frames=int(kp.shape[1]), img_shape=tuple(annotation["img_shape"]),
        original_shape=tuple(annotation.get("original_shape", annotation["img_shape"])),
        label=int(annotation.get("label", -1) if annotation.get("label") is not None else -1),
        start_index=0, modality="Pose", test_mode=True, frame_dir=str(name),
    )
    return sample


def has_person(annotation: Mapping, min_frames: int = 1) -> bool:
    """Whether some person slot has a confident joint in at least ``min_frames`` frames."""
    score = annotation.get("keypoint_score")
    kp = np.asarray(annotation["keypoint"])
    if kp.shape[0] == 0:
        return False
    present = (np.asarray(score) > 0).any(axis=-1) if score is not None else (kp != 0).any(axis=(-1, -2))
    return bool((present.sum(axis=1) >= min_frames).any())


def select_person(annotation: Mapping, person: int) -> dict:
    """The annotation reduced to person slot ``person`` (M = 1)."""
    out = dict(annotation)
    out["keypoint"] = np.asarray(annotation["keypoint"])[person:person + 1]
    if annotation.get("keypoint_score") is not None:
        out["keypoint_score"] = np.asarray(annotation["keypoint_score"])[person:person + 1]
    return out


def person_frames(annotation: Mapping, person: int) -> int:
    """Number of frames in which person slot ``person`` has any joint with a positive score."""
    score = annotation.get("keypoint_score")
    if score is None:
        return int((np.asarray(annotation["keypoint"])[person] != 0).any(axis=(-1, -2)).sum())
    return int((np.asarray(score)[person] > 0).any(axis=-1).sum())


def take_frames(annotation: Mapping, frames) -> dict:
    """The ``frames`` (a slice or an array of frame indices) of an annotation, as a new dict."""
    out = dict(annotation)
    out["keypoint"] = np.asarray(annotation["keypoint"])[:, frames]
    if annotation.get("keypoint_score") is not None:
        out["keypoint_score"] = np.asarray(annotation["keypoint_score"])[:, frames]
    out["total_frames"] = int(out["keypoint"].shape[1])
    return out


def slice_frames(annotation: Mapping, start: int, end: int) -> dict:
    """Frames ``start`` .. ``end - 1`` of an annotation (a new dict; arrays are views)."""
    return take_frames(annotation, slice(start, end))


def frames_every(annotation: Mapping, step: float) -> dict:
    """The frames a client that takes one every ``step`` source frames sees (the nearest each time):
    e.g. the web camera tab, which sends a frame every 0.15 s, i.e. every 4.5 frames of a 30 fps video."""
    total = int(annotation["total_frames"])
    index = np.unique(np.round(np.arange(0, total, step)).astype(int))
    return take_frames(annotation, index[index < total])


def sliding_windows(total: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Windows ``[start, end)`` of ``window`` frames every ``stride`` frames covering ``total`` frames.

    The last window is moved back to end at the last frame, so every frame is covered; a video
    shorter than the window is one window.
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    if total <= window:
        return [(0, total)]
    starts = list(range(0, total - window + 1, stride))
    if starts[-1] + window < total:
        starts.append(total - window)
    return [(s, s + window) for s in starts]


# ----------------------------------------------------------------------------------------------


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _num_classes(model: Mapping) -> int:
    head = model.get("cls_head") or {}
    if "num_classes" not in head:
        raise ConfigError("model.cls_head.num_classes is missing from the config")
    return int(head["num_classes"])


