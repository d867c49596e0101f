"""RandomRepeat: the clip played k times, checked frame by frame against t mod T."""
from __future__ import annotations

import numpy as np
import pytest

from posec3d.data.pipeline import Compose
from posec3d.errors import ConfigError


def test_random_repeat_tiles_time_and_feeds_the_sampler():
    kp = np.arange(1 * 5 * 3 * 2, dtype=np.float32).reshape(1, 5, 3, 2) + 1
    score = np.linspace(0.1, 1, 15, dtype=np.float32).reshape(1, 5, 3)
    out = Compose([dict(type="RandomRepeat", repeats=(3,))])(
        dict(keypoint=kp.copy(), keypoint_score=score.copy(), total_frames=5))
    assert out["total_frames"] == 15 and out["keypoint"].shape == (1, 15, 3, 2)
    for t in range(15):
        np.testing.assert_array_equal(out["keypoint"][:, t], kp[:, t % 5])
        np.testing.assert_array_equal(out["keypoint_score"][:, t], score[:, t % 5])
    # Then uniform sampling spreads clip_len frames over all three plays.
    np.random.seed(0)
    out = Compose([dict(type="RandomRepeat", repeats=(3,)), dict(type="UniformSampleFrames", clip_len=6),
                   dict(type="PoseDecode")])(dict(keypoint=kp.copy(), total_frames=5, test_mode=False))
    assert out["keypoint"].shape == (1, 6, 3, 2)
    assert set(out["frame_inds"].tolist()) - set(range(15)) == set()


def test_random_repeat_draws_with_the_given_weights():
    t = Compose([dict(type="RandomRepeat", repeats=(1, 2), weights=(0.25, 0.75))])
    np.random.seed(1)
    ks = [t(dict(keypoint=np.ones((1, 4, 2, 2), np.float32), total_frames=4))["total_frames"] // 4
          for _ in range(2000)]
    assert abs(np.mean(np.array(ks) == 2) - 0.75) < 0.04
    with pytest.raises(ConfigError):
        Compose([dict(type="RandomRepeat", repeats=(0, 2))])
    with pytest.raises(ConfigError):
        Compose([dict(type="RandomRepeat", repeats=(1, 2), weights=(1,))])
