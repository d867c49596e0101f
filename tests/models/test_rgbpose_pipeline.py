"""RGBPose data pipeline (MMUniformSampleFrames, MMDecode, MMCompact) and an end-to-end forward."""
from __future__ import annotations

import pickle

import av
import numpy as np
import pytest
import torch

from posec3d.data.multimodal import MMCompact, MMDecode, MMUniformSampleFrames
from posec3d.data.pipeline import Compose
from posec3d.errors import VideoError

from .conftest import load_golden_model

NTU_ID = "S001C001P001R001A001"

# mmaction2's rgbpose_conv3d val pipeline (1 clip, no crop).
VAL_PIPELINE = [
    dict(type="MMUniformSampleFrames", clip_len=dict(RGB=8, Pose=32), num_clips=1, test_mode=True),
    dict(type="MMDecode"),
    dict(type="MMCompact", hw_ratio=1.0, allow_imgpad=True),
    dict(type="Resize", scale=(256, 256), keep_ratio=False),
    dict(type="GeneratePoseTarget", sigma=0.7, use_score=True, with_kp=True, with_limb=False, scaling=0.25),
    dict(type="FormatShape", input_format="NCTHW"),
    dict(type="PackActionInputs", collect_keys=("imgs", "heatmap_imgs")),
]


@pytest.fixture(scope="module")
def ntu_sample(data_dir) -> dict:
    with open(data_dir / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl", "rb") as f:
        anns = pickle.load(f)["annotations"]
    sample = next(a for a in anns if a["frame_dir"] == NTU_ID)
    return dict(sample, filename=str(data_dir / "videos" / "ntu" / f"{NTU_ID}_rgb.avi"), start_index=0)


def _segment_indices(total: int, clip_len: int, seed: int) -> list[int]:
    """Hand-written reference of test-mode segment sampling (T >= 2L), mmaction2 RNG stream."""
    rng = np.random.RandomState(seed)
    out = []
    for k in range(clip_len):
        lo, hi = k * total // clip_len, (k + 1) * total // clip_len
        out.append(lo + int(rng.randint(hi - lo)))
    return out


def test_sampling_reseeds_per_modality():
    results = MMUniformSampleFrames(clip_len=dict(RGB=8, Pose=32), test_mode=True)(dict(total_frames=103))
    assert results["RGB_inds"].dtype == np.int32
    assert results["RGB_inds"].tolist() == _segment_indices(103, 8, 255)
    assert results["Pose_inds"].tolist() == _segment_indices(103, 32, 255)
    assert results["clip_len"] == {"RGB": 8, "Pose": 32} and results["modality"] == ["RGB", "Pose"]


def test_decode_real_ntu_clip(ntu_sample):
    inds = np.array([5, 0, 5, 102], dtype=np.int32)
    results = MMDecode()(dict(ntu_sample, modality=["RGB", "Pose"], RGB_inds=inds, Pose_inds=inds[:2]))
    with av.open(ntu_sample["filename"]) as c:
        all_frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(all_frames) == 103
    for got, i in zip(results["imgs"], inds):
        assert got.shape == (1080, 1920, 3) and np.array_equal(got, all_frames[i])
    np.testing.assert_array_equal(results["keypoint"], ntu_sample["keypoint"][:, [5, 0]])
    assert results["img_shape"] == (1080, 1920)  # same size as the annotation: no rescale


def test_decode_rescales_keypoints_to_the_real_frame_size(tmp_path):
    """Annotation in 128x96 pixels, video re-encoded at 64x48 (as NTU's 960x540 copies): factor 0.5."""
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as c:
        stream = c.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qscale": "1"}
        for i in range(6):
            img = np.full((48, 64, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    kp = np.zeros((1, 6, 17, 2), np.float32)
    kp[..., 0], kp[..., 1] = 100.0, 50.0
    results = MMDecode()(dict(frame_dir=str(tmp_path / "clip"), img_shape=(96, 128), original_shape=(96, 128),
                              keypoint=kp, modality=["RGB", "Pose"], RGB_inds=np.array([4, 1]),
                              Pose_inds=np.array([0, 3])))
    assert results["filename"].endswith("clip.mp4")
    assert [round(float(f.mean()) / 40) for f in results["imgs"]] == [4, 1]
    assert results["img_shape"] == results["original_shape"] == (48, 64)
    np.testing.assert_allclose(results["keypoint"][..., 0], 50.0)
    np.testing.assert_allclose(results["keypoint"][..., 1], 25.0)
    np.testing.assert_array_equal(results["keypoint_score"], 1.0)  # absent scores mean 1
    with pytest.raises(VideoError, match="frame 9"):
        MMDecode()(dict(filename=str(path), img_shape=(48, 64), keypoint=kp, modality=["RGB"],
                        RGB_inds=np.array([9])))


def test_compact_pads_frames_where_the_box_leaves_the_image():
    # Keypoints span x 0..40 (0 = missing, so 10..40), y 20..60 in a 100x80 (h x w) image.
    kp = np.array([[[[10, 20], [40, 60], [0, 0]]]], np.float32)
    frames = [np.full((100, 80, 3), 7, np.uint8)]
    out = MMCompact(padding=0.25, threshold=10, hw_ratio=1.0)(dict(img_shape=(100, 80), keypoint=kp, imgs=frames))
    # centre (25, 40), half sizes 15·1.25 = 18.75 and 20·1.25 = 25 → square 25: box x 0..50, y 15..65.
    assert out["img_shape"] == (50, 50)
    np.testing.assert_array_equal(out["keypoint"][0, 0], [[10, 5], [40, 45], [0, 0]])
    assert out["imgs"][0].shape == (50, 50, 3) and np.all(out["imgs"][0] == 7)
    # A box beyond the left edge: zero padding on that side.
    kp = np.array([[[[2, 20], [30, 60]]]], np.float32)
    out = MMCompact()(dict(img_shape=(100, 80), keypoint=kp, imgs=[np.full((100, 80, 3), 7, np.uint8)]))
    # centre (16, 40), half 17.5 → 25 (hw_ratio 1): x -9..41, y 15..65.
    img = out["imgs"][0]
    assert img.shape == (50, 50, 3) and np.all(img[:, :9] == 0) and np.all(img[:, 9:] == 7)
    # Too small a pose: the whole image is kept.
    kp = np.array([[[[10, 10], [12, 12]]]], np.float32)
    out = MMCompact()(dict(img_shape=(100, 80), keypoint=kp, imgs=[np.zeros((100, 80, 3), np.uint8)]))
    assert out["img_shape"] == (100, 80) and out["imgs"][0].shape == (100, 80, 3)


@pytest.mark.slow
def test_end_to_end_real_clip_with_golden_slim_model(golden_models, summary, ntu_sample):
    packed = Compose(VAL_PIPELINE)(dict(ntu_sample))
    imgs, heat = packed["imgs"], packed["heatmap_imgs"]
    assert tuple(imgs.shape) == (1, 3, 8, 256, 256) and tuple(heat.shape) == (1, 17, 32, 64, 64)
    assert imgs.dtype == torch.float32 and 0 <= imgs.min() and imgs.max() <= 255 and imgs.std() > 10
    assert 0 <= heat.min() and heat.max() <= 1 and (heat.amax(dim=(0, 2, 3, 4)) > 0.3).sum() >= 10
    model = load_golden_model(golden_models, summary, "rgbpose_conv3d_ntu60_slim").eval()
    with torch.no_grad():
        scores = model.forward_test(imgs[None], heat[None])
    for part in ("rgb", "pose"):
        assert scores[part].shape == (1, 60) and torch.isfinite(scores[part]).all()
        assert scores[part].sum().item() == pytest.approx(1.0, abs=1e-5)  # 'prob' averaging
