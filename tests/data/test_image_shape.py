"""A negative or zero image size is refused when annotations load (it used to flip heatmaps silently)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from posec3d.data.annotations import load_annotations
from posec3d.errors import AnnotationError


def _write(tmp_path, **shape):
    sample = dict(frame_dir="v0", label=0, img_shape=(100, 120), original_shape=(100, 120), total_frames=3,
                  keypoint=np.full((1, 3, 17, 2), 50, np.float32), keypoint_score=np.ones((1, 3, 17), np.float32))
    sample.update(shape)
    path = tmp_path / "ann.pkl"
    path.write_bytes(pickle.dumps([sample]))
    return path


@pytest.mark.parametrize("key, value", [("img_shape", (-100, 120)), ("img_shape", (100, 0)),
                                        ("original_shape", (100, -1.5)), ("img_shape", (np.nan, 10))])
def test_non_positive_image_size_is_refused(tmp_path, key, value):
    with pytest.raises(AnnotationError, match=rf"ann.pkl: sample 0 .*{key} must be two positive sizes"):
        load_annotations(_write(tmp_path, **{key: value}))


def test_positive_sizes_of_any_number_type_load(tmp_path):
    assert load_annotations(_write(tmp_path, img_shape=np.array([100, 120])))[0]["total_frames"] == 3
