"""Fixtures for the model tests: golden checkpoints, configs and inputs from shared/golden/models."""
from __future__ import annotations

import json
import os

# On the shared 2-core CPU, spinning OpenMP workers steal the time slices everyone needs; sleeping
# ones make these tests several times faster under load. Effective only before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from posec3d.models import build_model  # noqa: E402
from posec3d.models.checkpoint import load_checkpoint  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    """2 threads and deterministic kernels for every model test; restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def golden_models(golden):
    return golden / "models"


@pytest.fixture(scope="session")
def summary(golden_models) -> dict:
    return json.loads((golden_models / "models_summary.json").read_text())


@pytest.fixture(scope="session")
def rand_inputs(golden_models) -> dict[str, np.ndarray]:
    with np.load(golden_models / "inputs_rand.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def pipeline_inputs(golden_models) -> dict[str, np.ndarray]:
    with np.load(golden_models / "inputs_pipeline.npz") as f:
        return {k: f[k] for k in f.files}


def load_golden_model(golden_models, summary, name: str):
    """The model built from the golden config, with its golden checkpoint loaded strictly."""
    model = build_model(summary[name]["model_cfg"])
    load_checkpoint(model, golden_models / f"{name}.pth", strict=True)
    return model


def golden_outputs(golden_models, name: str) -> dict[str, np.ndarray]:
    with np.load(golden_models / f"{name}.outputs.npz") as f:
        return {k: f[k] for k in f.files}


def golden_key_listing(golden_models, name: str) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in (golden_models / f"{name}.keys.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype))
    return rows
