"""Calibration on synthetic logits, checked against torch's cross-entropy and brute-force searches."""
from __future__ import annotations

import numpy as np
import torch

from posec3d.engine.calibration import (apply_temperature, choose_threshold, energy_score, fit_temperature, nll,
                                         softmax)


def _synthetic(n=4000, c=6, true_t=2.5, seed=0):
    """Logits whose labels are drawn from softmax(z / true_t): the NLL-optimal temperature is ~true_t."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3, (n, c))
    p = softmax(z / true_t)
    labels = np.array([rng.choice(c, p=row) for row in p])
    return z, labels


def test_temperature_on_one_view_is_logit_scaling():
    z, _ = _synthetic(50)
    for t in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(apply_temperature(softmax(z), t), softmax(z / t), atol=1e-9)


def test_nll_matches_torch_cross_entropy():
    z, y = _synthetic(200)
    for t in (0.7, 2.0):
        ref = torch.nn.functional.cross_entropy(torch.tensor(z / t), torch.tensor(y)).item()
        assert abs(nll(softmax(z), y, t) - ref) < 1e-6


def test_fit_temperature_recovers_the_generating_temperature_and_the_grid_minimum():
    z, y = _synthetic()
    t = fit_temperature(softmax(z), y)
    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 2001))
    ce = [torch.nn.functional.cross_entropy(torch.tensor(z / g), torch.tensor(y)).item() for g in grid]
    best = grid[int(np.argmin(ce))]
    assert abs(t - best) / best < 0.01
    assert abs(t - 2.5) < 0.25  # the labels were drawn at T = 2.5


def test_energy_is_temperature_times_logsumexp():
    z, _ = _synthetic(30)
    np.testing.assert_allclose(energy_score(z, 2.0), 2.0 * torch.logsumexp(torch.tensor(z) / 2.0, 1).numpy(),
                               atol=1e-9)


def _brute_force(in_scores, in_correct, ood, max_drop):
    """Try every candidate threshold; keep the one rejecting the most OOD within the allowed drop."""
    base = in_correct.mean()
    best = None
    for thr in sorted(set(np.concatenate([in_scores, ood, [0.0, 1.0 + 1e-9]]).tolist())):
        drop = base - (in_correct & (in_scores >= thr)).mean()
        if drop <= max_drop + 1e-12:
            rej = (ood < thr).mean()
            if best is None or rej >= best[1]:
                best = (thr, rej)
    return best


def test_choose_threshold_agrees_with_brute_force():
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(20, 120))
        in_scores = rng.uniform(0.2, 1.0, n).round(2)  # rounding makes ties
        in_correct = rng.random(n) < 0.85
        ood = rng.uniform(0.1, 0.9, 40).round(2)
        max_drop = float(rng.choice([0.0, 0.01, 0.05]))
        got = choose_threshold(in_scores, in_correct, ood, max_drop)
        thr, rej = _brute_force(in_scores, in_correct, ood, max_drop)
        assert got.ood_rejected == rej
        assert got.in_top1 - got.in_top1_open <= max_drop + 1e-12
        assert got.threshold <= thr + 1e-12  # never above the admissible maximum


# ----------------------------------------------------------------------------------------------
# The recognizer side: the temperature is applied in the one scoring function, the manifest is read


def test_recognizer_applies_the_temperature_and_reads_the_manifest(tmp_path):
    import json
    import pickle
    from pathlib import Path

    import pytest

    from posec3d.engine.calibration import read_calibration
    from posec3d.engine.inference import ActionRecognizer
    from posec3d.errors import ConfigError
    from posec3d.zoo import resolve_model

    m = resolve_model("penn-action")
    plain = ActionRecognizer(m.config, m.checkpoint, m.label_map, num_clips=2)
    hot = ActionRecognizer(m.config, m.checkpoint, m.label_map, num_clips=2,
                           calibration={"temperature": 2.0, "unknown_threshold": 0.4})
    assert (plain.temperature, plain.unknown_threshold) == (1.0, 0.0)
    assert (hot.temperature, hot.unknown_threshold) == (2.0, 0.4)
    shared = Path(__file__).resolve().parents[2].parent / "shared/data/skeleton/k400_mediapipe_coco17_samples.pkl"
    with open(shared, "rb") as f:
        ann = pickle.load(f)["annotations"][1]
    p = plain.scores(ann).astype(np.float64)
    q = hot.scores(ann).astype(np.float64)
    expected = np.sqrt(p) / np.sqrt(p).sum()  # softmax(log p / 2), by hand
    np.testing.assert_allclose(q, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hot.scores_batch([ann, ann]), np.stack([q, q]), rtol=1e-5, atol=1e-7)

    # The bundled model's own block (whatever its values) is what from_bundled uses.
    bundled = ActionRecognizer.from_bundled("penn-action", num_clips=2)
    block = json.loads((m.config.parent / "model.json").read_text()).get("calibration", {})
    assert bundled.temperature == block.get("temperature", 1.0)
    assert bundled.unknown_threshold == block.get("unknown_threshold", 0.0)

    assert read_calibration(tmp_path) == {}
    (tmp_path / "model.json").write_text(json.dumps({"calibration": {"temperature": -1}}))
    with pytest.raises(ConfigError, match="model.json"):
        read_calibration(tmp_path)
