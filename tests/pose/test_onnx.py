"""The ONNX top-down backend, run for real on tiny ONNX models built here with torch.

The pose model's SimCC outputs peak where the crop shows a bright vertical / horizontal line
(column / row means of the red channel), shifted by a known number of bins per keypoint, so the
decoded keypoints have hand-derived positions in the frame.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posec3d.errors import PoseC3DError
from posec3d.pose.estimators import OnnxTopDownPose, build_estimator
from posec3d.pose.estimators.onnx_topdown import (
    OnnxPersonDetector,
    crop_person,
    decode_simcc,
    resize_bilinear,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")

IN_H, IN_W, RATIO = 64, 48, 2


class LineSimCC(torch.nn.Module):
    """simcc_x[k] peaks at bin 2*c + k (c = brightest crop column); simcc_y[k] at 2*r + 2k."""

    def forward(self, x):
        red = x[:, 0]
        col = torch.softmax(red.mean(1) * 4, -1).repeat_interleave(RATIO, -1)
        row = torch.softmax(red.mean(2) * 4, -1).repeat_interleave(RATIO, -1)
        simcc_x = torch.stack([torch.roll(col, k, -1) for k in range(17)], 1)
        simcc_y = torch.stack([torch.roll(row, 2 * k, -1) for k in range(17)], 1)
        return simcc_x, simcc_y


class FixedDetector(torch.nn.Module):
    """dets (1, 3, 5) in 64x64 input pixels: a person, a weak person, a non-person."""

    def forward(self, x):
        dets = torch.tensor([[[8.0, 16.0, 40.0, 48.0, 0.9], [0.0, 0.0, 10.0, 10.0, 0.2],
                              [4.0, 4.0, 20.0, 20.0, 0.95]]]) + 0 * x.mean()
        labels = torch.tensor([[0, 0, 1]]) + 0 * x.mean().long()
        return dets, labels


def _export(module, shape, path, outputs):
    torch.onnx.export(module, torch.zeros(shape), str(path), input_names=["input"], output_names=outputs,
                      dynamo=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    pose = _export(LineSimCC(), (1, 3, IN_H, IN_W), folder / "pose.onnx", ["simcc_x", "simcc_y"])
    det = _export(FixedDetector(), (1, 3, 64, 64), folder / "det.onnx", ["dets", "labels"])
    return pose, det


def _lines(height, width, x0, y0):
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, x0, 0] = 255
    rgb[y0, :, 0] = 255
    return rgb


def test_decode_simcc_by_hand():
    sx = np.zeros((2, 8), np.float32)
    sy = np.zeros((2, 6), np.float32)
    sx[0, 5], sx[1, 2] = 0.9, 0.4
    sy[0, 1], sy[1, 4] = 0.7, 0.8
    kp, score = decode_simcc(sx, sy, split_ratio=2.0)
    np.testing.assert_allclose(kp, [[2.5, 0.5], [1.0, 2.0]])
    np.testing.assert_allclose(score, [0.7, 0.4])  # the smaller of the two maxima


def test_crop_and_resize_sample_the_right_pixels():
    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    # scale 1, centre on a pixel: an exact copy of a window
    crop = crop_person(rgb, np.array([20.0, 15.0]), 1.0, 8, 6)
    np.testing.assert_array_equal(crop, rgb[12:18, 16:24].astype(np.float32))
    # outside the frame is black
    assert crop_person(rgb, np.array([0.0, 0.0]), 1.0, 4, 4)[0, 0].tolist() == [0, 0, 0]
    # 2x downscale of a 2x nearest-upscaled image gives the image back
    big = np.repeat(np.repeat(rgb, 2, 0), 2, 1)
    np.testing.assert_allclose(resize_bilinear(big, 40, 30), rgb, atol=1e-4)


def test_keypoints_exact_at_unit_scale(models):
    pose_path, _ = models
    est = OnnxTopDownPose(pose_path, box_detector=lambda rgb: np.zeros((0, 5)), max_persons=1)
    rgb = _lines(160, 200, x0=103, y0=70)
    # a 30 x 51.2 box padded by 1.25 is exactly 48 x 64 = the model input: crop pixel = frame pixel
    box = np.array([[85.0, 54.4, 115.0, 105.6]])
    kp, score = est.estimate_in_boxes(rgb, box)
    k = np.arange(17)
    np.testing.assert_allclose(kp[0, :, 0], 103 + k / RATIO, atol=1e-4)
    np.testing.assert_allclose(kp[0, :, 1], 70 + 2 * k / RATIO, atol=1e-4)
    assert np.all((score > 0.5) & (score <= 1))
    est.close()


def test_bgr_models_get_swapped_channels(models):
    box = np.array([[85.0, 54.4, 115.0, 105.6]])
    red = _lines(160, 200, x0=103, y0=70)
    blue = red[..., ::-1].copy()  # the same lines in the blue channel
    rgb_model = OnnxTopDownPose(models[0], box_detector=lambda rgb: box)
    bgr_model = OnnxTopDownPose(models[0], box_detector=lambda rgb: box, bgr=True)
    np.testing.assert_allclose(bgr_model.estimate_in_boxes(blue, box)[0], rgb_model.estimate_in_boxes(red, box)[0])
    assert not np.allclose(bgr_model.estimate_in_boxes(red, box)[0], rgb_model.estimate_in_boxes(red, box)[0])


def test_detector_and_pose_end_to_end(models):
    pose_path, det_path = models
    # 128 x 96 frame into a 64 x 64 detector: ratio 0.5, so the person box is (16, 32, 80, 96)
    det = OnnxPersonDetector(det_path, score_thr=0.5)
    rgb = _lines(96, 128, x0=50, y0=60)
    boxes = det(rgb)
    np.testing.assert_allclose(boxes, [[16, 32, 80, 96, 0.9]], atol=1e-5)
    est = build_estimator(pose_model=pose_path, det_model=det_path, max_persons=2)
    kp, score, box = est(rgb)
    assert kp.shape == (1, 17, 2) and score.shape == (1, 17) and box.shape == (1, 4)
    # box 64 x 64 padded 1.25 -> 80 x 80; crop 48 x 64 -> scale = max(80/48, 80/64) = 5/3
    scale = 5 / 3
    k = np.arange(17)
    # the crop column nearest the line is at most half a crop pixel from it
    assert np.all(np.abs(kp[0, :, 0] - (50 + k / RATIO * scale)) <= scale / 2 + 1e-3)
    assert np.all(np.abs(kp[0, :, 1] - np.minimum(60 + k * scale, 95)) <= scale / 2 + 1e-3)
    est.close()


def test_bad_model_files_raise_clear_errors(tmp_path, models):
    with pytest.raises(PoseC3DError, match="not found"):
        OnnxTopDownPose(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx")
    with pytest.raises(PoseC3DError, match="junk.onnx"):
        OnnxTopDownPose(junk)
    with pytest.raises(PoseC3DError, match="pose model"):
        build_estimator(det_model=models[1])


def test_mediapipe_boxes_feed_the_onnx_model(models, data_dir):
    """Without --det-model the person boxes are the embedded MediaPipe model's."""
    from posec3d.pose.estimators import MediaPipePose
    from posec3d.pose.video import VideoReader

    with VideoReader(data_dir / "videos/kinetics/clean_and_jerk.mp4", max_frames=1) as reader:
        (_, rgb), = list(reader)
    with MediaPipePose(max_persons=1) as mediapipe:
        _, _, expected_boxes = mediapipe(rgb)
    est = OnnxTopDownPose(models[0], max_persons=1)
    kp, score, boxes = est(rgb)
    est.close()
    assert len(expected_boxes) == 1
    np.testing.assert_allclose(boxes, expected_boxes, atol=1e-3)
    # every keypoint lies in the padded crop around that box (and in the frame)
    x1, y1, x2, y2 = boxes[0]
    crop_w = 1.25 * max(x2 - x1, (y2 - y1) * IN_W / IN_H)
    pad = (crop_w - (x2 - x1)) / 2 + 1
    assert np.all((kp[0, :, 0] >= max(x1 - pad, 0)) & (kp[0, :, 0] <= min(x2 + pad, 339)))
    assert kp.shape == (1, 17, 2) and np.all((score >= 0) & (score <= 1))
