"""Top-down ONNX pose models with SimCC heads (RTMPose-style), run through onnxruntime.

Accepted pose model: one input ``(1, 3, H, W)`` float32, the person crop in RGB order normalised
as ``(pixel - mean) / std`` (RTMPose's ImageNet mean/std by default; ``bgr=True`` feeds BGR for
models exported without the channel swap); two outputs, named
``simcc_x`` ``(1, K, W * r)`` and ``simcc_y`` ``(1, K, H * r)`` (otherwise the first two outputs in
that order), with the split ratio ``r`` read off the output sizes. K = 17 (COCO), or K > 17 when
the first 17 are the COCO body keypoints (COCO-WholeBody, 133). Keypoint i sits at
``argmax(simcc_x[i]) / r`` in the crop; its score is the smaller of the two maxima.

Accepted detector (``det_model``): one input ``(1, 3, h, w)`` float32, the frame resized with its
aspect ratio kept and padded at the right/bottom (pad value 114) to (h, w), RGB, normalised by
``mean`` / ``std`` (defaults: no normalisation, raw 0-255; ``bgr=True`` for models that take
BGR); outputs ``dets (1, N, 5)`` =
x1, y1, x2, y2, score in input pixels and ``labels (1, N)`` with class 0 = person (the layout of
mmdeploy's RTMDet / YOLOX exports). Without a detector, the person boxes of the embedded MediaPipe
model are used.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from posec3d.errors import PoseC3DError
from posec3d.pose.estimators.base import PoseEstimator, check_frame, empty_poses
from posec3d.pose.geometry import NUM_KEYPOINTS

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _session(path: str | os.PathLike, what: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise PoseC3DError("ONNX models need onnxruntime: pip install 'posec3d[onnx]'") from None
    path = Path(path)
    if not path.is_file():
        raise PoseC3DError(f"{path}: {what} not found")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidGraph / ... types
        raise PoseC3DError(f"{path}: cannot load the {what} ({e})") from None


def _static_hw(session, path, what: str, given: tuple[int, int] | None) -> tuple[int, int]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise PoseC3DError(f"{path}: the {what} must have one input, it has {len(inputs)}")
    shape = inputs[0].shape
    if len(shape) != 4 or (shape[1] not in (3, None) and not isinstance(shape[1], str)):
        raise PoseC3DError(f"{path}: the {what} input must be (1, 3, H, W), got {shape}")
    if given is not None:
        return given
    h, w = shape[2], shape[3]
    if not isinstance(h, int) or not isinstance(w, int):
        raise PoseC3DError(f"{path}: the {what} input size is dynamic ({shape}); pass input_size=(H, W)")
    return h, w


def crop_transform(box: np.ndarray, out_w: int, out_h: int, padding: float) -> tuple[np.ndarray, float]:
    """Centre and pixel scale of the crop around ``box`` with the model's aspect ratio.

    Crop pixel (u, v) shows frame point ``centre + ((u, v) - (out_w, out_h) / 2) * scale``.
    """
    x1, y1, x2, y2 = box[:4]
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2], np.float64)
    w, h = max(x2 - x1, 1.0) * padding, max(y2 - y1, 1.0) * padding
    scale = max(w / out_w, h / out_h)  # grow the short side so the crop has the model's aspect
    return centre, scale


def crop_person(rgb: np.ndarray, centre: np.ndarray, scale: float, out_w: int, out_h: int) -> np.ndarray:
    """Bilinear crop (no rotation) of the frame; outside the frame is black. float32 (H, W, 3)."""
    height, width = rgb.shape[:2]
    xs = centre[0] + (np.arange(out_w) - out_w / 2) * scale
    ys = centre[1] + (np.arange(out_h) - out_h / 2) * scale
    x0, y0 = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = (xs - x0).astype(np.float32), (ys - y0).astype(np.float32)
    padded = np.zeros((height + 2, width + 2, 3), np.float32)  # one black pixel all round
    padded[1:-1, 1:-1] = rgb
    cx0, cx1 = np.clip(x0 + 1, 0, width + 1), np.clip(x0 + 2, 0, width + 1)
    cy0, cy1 = np.clip(y0 + 1, 0, height + 1), np.clip(y0 + 2, 0, height + 1)
    top = padded[cy0][:, cx0] * (1 - fx)[None, :, None] + padded[cy0][:, cx1] * fx[None, :, None]
    bottom = padded[cy1][:, cx0] * (1 - fx)[None, :, None] + padded[cy1][:, cx1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]


def resize_bilinear(rgb: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Plain bilinear resize (pixel centres aligned), float32."""
    height, width = rgb.shape[:2]
    if (new_w, new_h) == (width, height):
        return rgb.astype(np.float32)
    # crop_person samples x = cx + (u - new_w / 2) * s; pixel-centre resizing wants
    # x = (u + 0.5) * width / new_w - 0.5 (and the same for y, with its own factor).
    sx, sy = width / new_w, height / new_h
    if not np.isclose(sx, sy, rtol=0.02):
        raise ValueError("resize_bilinear keeps the aspect ratio")
    centre = np.array([new_w / 2 * sx + 0.5 * sx - 0.5, new_h / 2 * sy + 0.5 * sy - 0.5])
    return crop_person(rgb, centre, sx, new_w, new_h)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, Wr), (K, Hr) -> keypoints (K, 2) in crop pixels and scores (K,)."""
    x = np.argmax(simcc_x, axis=1) / split_ratio
    y = np.argmax(simcc_y, axis=1) / split_ratio
    score = np.minimum(simcc_x.max(1), simcc_y.max(1))
    return np.stack([x, y], -1).astype(np.float32), score.astype(np.float32)


class OnnxPersonDetector:
    """Person boxes from an ONNX detector with ``dets (1, N, 5)`` + ``labels (1, N)`` outputs."""

    frame_independent = True  # one session run per frame, nothing kept

    def __init__(self, path: str | os.PathLike, *, score_thr: float = 0.5, person_label: int = 0,
                 input_size: tuple[int, int] | None = None, mean: tuple | None = None, std: tuple | None = None,
                 pad_value: float = 114.0, bgr: bool = False) -> None:
        self.path = Path(path)
        self.session = _session(path, "ONNX person detector")
        self.input_h, self.input_w = _static_hw(self.session, path, "ONNX person detector", input_size)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        if len(names) < 2:
            raise PoseC3DError(f"{path}: the detector must output dets (1, N, 5) and labels (1, N); "
                               f"it has outputs {names}")
        self.output_names = ["dets", "labels"] if {"dets", "labels"} <= set(names) else names[:2]
        self.score_thr, self.person_label, self.pad_value, self.bgr = score_thr, person_label, pad_value, bgr
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.std = None if std is None else np.asarray(std, np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 5) person boxes x1, y1, x2, y2, score in frame pixels."""
        height, width = rgb.shape[:2]
        ratio = min(self.input_h / height, self.input_w / width)
        new_h, new_w = max(1, round(height * ratio)), max(1, round(width * ratio))
        resized = resize_bilinear(rgb, new_w, new_h)
        canvas = np.full((self.input_h, self.input_w, 3), self.pad_value, np.float32)
        canvas[:new_h, :new_w] = resized[..., ::-1] if self.bgr else resized
        if self.mean is not None:
            canvas = (canvas - self.mean) / (self.std if self.std is not None else 1.0)
        dets, labels = self.session.run(self.output_names, {self.input_name: canvas.transpose(2, 0, 1)[None]})
        dets, labels = np.asarray(dets).reshape(-1, 5), np.asarray(labels).reshape(-1)
        if len(dets) != len(labels):
            raise PoseC3DError(f"{self.path}: detector gave {len(dets)} boxes but {len(labels)} labels")
        keep = (labels == self.person_label) & (dets[:, 4] >= self.score_thr)
        boxes = dets[keep].astype(np.float32)
        boxes[:, :4] /= ratio
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return boxes[np.argsort(-boxes[:, 4], kind="stable")]

    def close(self) -> None:
        self.session = None


class MediaPipePersonBoxes:
    """Person boxes from the embedded MediaPipe model (its landmarks' extent, padded later)."""

    def __init__(self, max_persons: int, second_pass: str = "auto") -> None:
        from posec3d.pose.estimators.blazepose import MediaPipePose

        self.mediapipe = MediaPipePose(max_persons=max_persons, second_pass=second_pass)

    @property
    def frame_independent(self) -> bool:
        return self.mediapipe.frame_independent

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        _, scores, boxes = self.mediapipe(rgb)
        return np.concatenate([boxes, scores.mean(1, keepdims=True)], axis=1)

    def reset(self) -> None:
        self.mediapipe.reset()

    def close(self) -> None:
        self.mediapipe.close()


class OnnxTopDownPose(PoseEstimator):
    """Top-down pose: person boxes (ONNX detector or MediaPipe), then a SimCC ONNX model per box."""

    def __init__(self, pose_model: str | os.PathLike, det_model: str | os.PathLike | None = None,
                 max_persons: int = 2, *, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD,
                 padding: float = 1.25, input_size: tuple[int, int] | None = None, bgr: bool = False,
                 det_score_thr: float = 0.5, box_detector=None) -> None:
        if max_persons < 1:
            raise ValueError(f"max_persons must be >= 1, got {max_persons}")
        self.max_persons = max_persons
        self.pose_path = Path(pose_model)
        self.session = _session(pose_model, "ONNX pose model")
        self.input_h, self.input_w = _static_hw(self.session, pose_model, "ONNX pose model", input_size)
        self.input_name = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        if len(names) < 2:
            raise PoseC3DError(f"{pose_model}: a SimCC pose model has two outputs (simcc_x, simcc_y); "
                               f"it has {names}")
        self.output_names = ["simcc_x", "simcc_y"] if {"simcc_x", "simcc_y"} <= set(names) else names[:2]
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.padding, self.bgr = padding, bgr
        self.det_path = None if det_model is None else Path(det_model)
        if box_detector is not None:
            self.detector = box_detector
        elif det_model is not None:
            self.detector = OnnxPersonDetector(det_model, score_thr=det_score_thr)
        else:
            self.detector = MediaPipePersonBoxes(max_persons)

    @property
    def frame_independent(self) -> bool:
        # The pose model sees one crop at a time; only the box detector might carry state.
        return bool(getattr(self.detector, "frame_independent", False))

    def settings(self) -> dict:
        return {**super().settings(), "pose_model": str(self.pose_path), "det_model": str(self.det_path),
                "padding": self.padding}

    def reset(self) -> None:
        reset = getattr(self.detector, "reset", None)
        if reset is not None:
            reset()

    def close(self) -> None:
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()
        self.session = None

    def estimate_in_boxes(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (P, 17, 2) in frame pixels and scores (P, 17) for given (P, 4+) boxes."""
        keypoints = np.zeros((len(boxes), NUM_KEYPOINTS, 2), np.float32)
        scores = np.zeros((len(boxes), NUM_KEYPOINTS), np.float32)
        height, width = rgb.shape[:2]
        for p, box in enumerate(boxes):
            centre, scale = crop_transform(box, self.input_w, self.input_h, self.padding)
            crop = crop_person(rgb, centre, scale, self.input_w, self.input_h)
            if self.bgr:
                crop = crop[..., ::-1]
            blob = ((crop - self.mean) / self.std).transpose(2, 0, 1)[None].astype(np.float32)
            simcc_x, simcc_y = self.session.run(self.output_names, {self.input_name: blob})
            simcc_x, simcc_y = np.asarray(simcc_x)[0], np.asarray(simcc_y)[0]
            if simcc_x.shape[0] < NUM_KEYPOINTS or simcc_x.shape[0] != simcc_y.shape[0]:
                raise PoseC3DError(f"{self.pose_path}: SimCC outputs {simcc_x.shape} / {simcc_y.shape} do not "
                                   f"hold {NUM_KEYPOINTS} (COCO) keypoints")
            ratio = simcc_x.shape[1] / self.input_w
            if not np.isclose(simcc_y.shape[1] / self.input_h, ratio):
                raise PoseC3DError(f"{self.pose_path}: simcc_x has {simcc_x.shape[1]} bins for width "
                                   f"{self.input_w} but simcc_y {simcc_y.shape[1]} for height {self.input_h}")
            kp, sc = decode_simcc(simcc_x[:NUM_KEYPOINTS], simcc_y[:NUM_KEYPOINTS], ratio)
            kp = centre + (kp - np.array([self.input_w, self.input_h]) / 2) * scale
            kp[:, 0] = kp[:, 0].clip(0, width - 1)
            kp[:, 1] = kp[:, 1].clip(0, height - 1)
            keypoints[p], scores[p] = kp, np.clip(sc, 0, 1)
        return keypoints, scores

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rgb = check_frame(rgb)
        boxes = np.asarray(self.detector(rgb), np.float32)[: self.max_persons]
        if not len(boxes):
            return empty_poses()
        keypoints, scores = self.estimate_in_boxes(rgb, boxes)
        return keypoints, scores, boxes[:, :4].copy()
