"""Poses from video: decoding, pose estimators, person tracking, video -> pyskl annotation.

Importing this package is light: MediaPipe and onnxruntime load when an estimator is created.
"""
from posec3d.pose.estimators import MediaPipePose, PoseEstimator, build_estimator
from posec3d.pose.extract import VideoTruncatedWarning, extract_video, iter_video_poses
from posec3d.pose.tracking import PoseTracker
from posec3d.pose.video import VideoReader

__all__ = ["VideoReader", "PoseEstimator", "MediaPipePose", "build_estimator", "PoseTracker",
           "extract_video", "iter_video_poses", "VideoTruncatedWarning"]
