"""Fixtures shared by the stream tests: one torch thread, the bundled recognizer loaded once."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    """Every test here runs with one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="package")
def recognizer():
    """The bundled penn-action model on the fast path (BN folded, channels-last)."""
    from posec3d.stream import load_recognizer

    return load_recognizer()


@pytest.fixture(scope="package")
def golden_poses(golden):
    """Real two-person poses (1080p pixels) from the golden transform cases, as annotations."""
    def load(name):
        case = np.load(golden / f"transforms/{name}.npz")
        return {"keypoint": case["input/keypoint"], "keypoint_score": case["input/keypoint_score"],
                "img_shape": tuple(int(v) for v in case["input/img_shape"]),
                "total_frames": int(case["input/total_frames"])}
    return load

