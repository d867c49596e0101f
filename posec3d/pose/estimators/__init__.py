"""Pose estimators behind one interface: the embedded MediaPipe model and ONNX top-down models."""
from __future__ import annotations

import os

from posec3d.pose.estimators.base import NUM_KEYPOINTS, PoseEstimator
from posec3d.pose.estimators.blazepose import BLAZEPOSE_TO_COCO17, MediaPipePose, bundled_model_path

__all__ = ["NUM_KEYPOINTS", "PoseEstimator", "MediaPipePose", "OnnxTopDownPose", "BLAZEPOSE_TO_COCO17",
           "bundled_model_path", "build_estimator"]


def __getattr__(name: str):
    # onnxruntime is an optional dependency: import the ONNX backend only when asked for.
    if name == "OnnxTopDownPose":
        from posec3d.pose.estimators.onnx_topdown import OnnxTopDownPose

        return OnnxTopDownPose
    raise AttributeError(name)


def build_estimator(pose_model: str | os.PathLike | None = None, det_model: str | os.PathLike | None = None,
                    max_persons: int = 2) -> PoseEstimator:
    """The bundled MediaPipe model when ``pose_model`` is None, a MediaPipe PoseLandmarker bundle
    when it is a ``.task`` file (e.g. the lite or heavy model), else an ONNX top-down model whose
    person boxes come from ``det_model`` (ONNX) or, without it, from the bundled MediaPipe model.
    """
    from posec3d.errors import PoseC3DError

    is_task = pose_model is not None and str(pose_model).endswith(".task")
    if pose_model is None or is_task:
        if det_model is not None:
            raise PoseC3DError(f"{det_model}: a detector model goes with an ONNX pose model (--pose-model *.onnx)")
        return MediaPipePose("full" if pose_model is None else pose_model, max_persons=max_persons)
    from posec3d.pose.estimators.onnx_topdown import OnnxTopDownPose

    return OnnxTopDownPose(pose_model, det_model=det_model, max_persons=max_persons)
