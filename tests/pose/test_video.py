"""VideoReader on the real clips: frame accuracy, stride, downscaling, errors, truncation."""
from __future__ import annotations

import av
import numpy as np
import pytest

from posec3d.errors import VideoError
from posec3d.pose.video import VideoReader, scaled_size


def _plain_decode(path, indices):
    """Reference: single-threaded PyAV decode, full size, picking frames by position."""
    wanted, out = set(indices), {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="rgb24")
    return [out[i] for i in indices]


def test_stride_and_max_frames_are_frame_accurate(data_dir):
    path = data_dir / "videos/misc/test.avi"  # 164 frames, 320x240
    with VideoReader(path, stride=7, max_frames=12) as reader:
        frames = list(reader)
        assert (reader.width, reader.height) == (320, 240)
        assert reader.expected_frames == 164 and reader.fps == pytest.approx(25)
        assert not reader.truncated
    indices = [i for i, _ in frames]
    assert indices == list(range(0, 7 * 12, 7))
    for (_, got), want in zip(frames, _plain_decode(path, indices)):
        assert got.flags["C_CONTIGUOUS"] and got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_all_frames_of_real_videos_decode(data_dir):
    # frame counts from shared/data/README.md
    for name, count in [("videos/ntu/S001C001P001R001A001_rgb.avi", 103), ("videos/ntu/demo_skeleton.mp4", 72),
                        ("videos/kinetics/demo_arm_wrestling.mp4", 280)]:
        with VideoReader(data_dir / name, short_side=128) as reader:
            assert sum(1 for _ in reader) == count
            assert reader.frames_decoded == count and not reader.truncated


def test_downscale_keeps_aspect_and_contiguity(data_dir):
    with VideoReader(data_dir / "videos/ntu/ntu_sample.avi", short_side=540, max_frames=2) as reader:
        frames = [f for _, f in reader]
        assert (reader.width, reader.height) == (1920, 1080)
        assert (reader.out_width, reader.out_height) == (960, 540)
    assert frames[0].shape == (540, 960, 3) and frames[0].flags["C_CONTIGUOUS"]
    # small videos are never upscaled; odd sizes are rounded to even
    assert scaled_size(340, 256, 540) == (340, 256)
    assert scaled_size(1921, 1081, 540) == (960, 540)


def test_missing_and_unreadable_files_raise_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found") as e:
        VideoReader(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(e.value)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        VideoReader(junk)
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path)  # a folder is not a video file


def test_truncated_avi_keeps_decoded_frames_and_reports(data_dir, tmp_path):
    src = data_dir / "videos/ntu/S001C001P001R001A001_rgb.avi"
    cut = tmp_path / "cut.avi"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut, short_side=None) as reader:
        frames = list(reader)
    assert reader.truncated and "103" in reader.truncation_reason
    assert 10 < len(frames) < 103
    # the frames that survive are the original ones, in order (the very last one may be cut short)
    indices = [0, len(frames) - 2]
    for got, want in zip([frames[i][1] for i in indices], _plain_decode(src, indices)):
        np.testing.assert_array_equal(got, want)


def test_truncated_mp4_without_index_is_a_video_error(data_dir, tmp_path):
    # this MP4 keeps its index (moov) at the end: cut in half, nothing is decodable
    data = (data_dir / "videos/kinetics/clean_and_jerk.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        list(VideoReader(cut))


def test_audio_only_file_is_a_video_error(tmp_path):
    import wave

    path = tmp_path / "sound.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    with pytest.raises(VideoError, match="sound.wav: the file has no video stream"):
        VideoReader(path)
    with pytest.raises(VideoError, match="empty.mp4"):
        (tmp_path / "empty.mp4").write_bytes(b"")
        VideoReader(tmp_path / "empty.mp4")
