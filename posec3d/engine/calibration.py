"""Confidence calibration and the open-set ("unknown") threshold of a recognizer.

A classifier trained on 15 classes spreads all of its probability over those 15, so a clip of
something else still gets a confident label. Two steps make its top score usable as "how sure":

1. **Temperature scaling** (Guo et al., 2017): scores become ``softmax(z / T)``, one scalar ``T``
   fitted by minimising the negative log-likelihood on held-out clips. Our models average the
   softmax of several views, so ``z`` is the log of the averaged probabilities (for one view this
   is exactly temperature scaling of the logits; for several it is the same monotone re-sharpening
   of the averaged distribution). Ranking never changes, only confidence.
2. **A threshold** on the calibrated top probability: below it the result is reported as unknown.
   :func:`choose_threshold` takes the highest threshold that costs in-vocabulary top-1 at most
   ``max_drop`` on held-out real clips, which rejects as many out-of-vocabulary clips as possible.

:func:`energy_score` (Liu et al., 2020) is the alternative open-set score, kept for measurement.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posec3d.errors import ConfigError

_EPS = 1e-12


def _log(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature-scaled probabilities ``softmax(log(p) / T)`` (rows of ``probs``); T = 1 is the identity."""
    if temperature == 1.0:
        return np.asarray(probs)
    return softmax(_log(probs) / float(temperature)).astype(np.asarray(probs).dtype)


def nll(probs: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under the temperature-scaled ``probs`` (N, C)."""
    logp = _log(probs) / float(temperature)
    logp = logp - logp.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logp).sum(axis=1))
    labels = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_norm - logp[np.arange(len(labels)), labels]))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bounds=(0.05, 20.0), iters: int = 100) -> float:
    """The ``T`` minimising :func:`nll` on held-out (probs, labels), by golden-section search on log T.

    The NLL of temperature scaling is convex in 1/T, hence unimodal in log T on the bracket.
    """
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(probs, labels, math.exp(a)), nll(probs, labels, math.exp(b))
    for _ in range(iters):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(probs, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(probs, labels, math.exp(b))
    return float(math.exp((lo + hi) / 2))


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Negative free energy ``T * logsumexp(z / T)`` per row: higher means more in-distribution."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    return float(temperature) * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    in_top1: float            # in-vocabulary top-1 without the open-set rule
    in_top1_open: float       # ... when results below the threshold count as wrong ("unknown")
    ood_rejected: float       # fraction of out-of-vocabulary clips reported unknown


def open_set_figures(threshold: float, in_scores, in_correct, ood_scores) -> ThresholdChoice:
    in_scores, ood_scores = np.asarray(in_scores, float), np.asarray(ood_scores, float)
    in_correct = np.asarray(in_correct, bool)
    return ThresholdChoice(
        threshold=float(threshold),
        in_top1=float(in_correct.mean()),
        in_top1_open=float((in_correct & (in_scores >= threshold)).mean()),
        ood_rejected=float((ood_scores < threshold).mean()) if ood_scores.size else float("nan"))


def choose_threshold(in_scores, in_correct, ood_scores=(), max_drop: float = 0.01) -> ThresholdChoice:
    """The highest threshold at which in-vocabulary top-1 falls by at most ``max_drop``.

    ``in_scores``: the calibrated top probability of each in-vocabulary clip, ``in_correct``:
    whether its top class is right. A clip is unknown when its score is *below* the threshold, so
    a correct clip is lost once the threshold passes its score. Raising the threshold only ever
    rejects more, so the highest admissible one rejects the most out-of-vocabulary clips; it is
    placed just above the last score it may reject (ties reject together).
    """
    in_scores = np.asarray(in_scores, float)
    in_correct = np.asarray(in_correct, bool)
    n = len(in_scores)
    allowed = int(math.floor(max_drop * n + 1e-9))  # correct clips we may lose
    correct_scores = np.sort(in_scores[in_correct])
    if correct_scores.size == 0:
        return open_set_figures(1.0, in_scores, in_correct, ood_scores)
    if allowed >= correct_scores.size:
        threshold = float(np.nextafter(correct_scores[-1], np.inf))
    else:
        # Reject at most `allowed` correct clips: stay at or below the (allowed)-th smallest score,
        # and not above a tie that would take more of them.
        threshold = float(correct_scores[allowed])
    return open_set_figures(threshold, in_scores, in_correct, ood_scores)


def read_calibration(folder: str | Path) -> dict:
    """The ``"calibration"`` block of ``folder/model.json`` (a bundled model), ``{}`` when there is none.

    Checked here so that a bad manifest fails when the model loads, naming the file.
    """
    manifest = Path(folder) / "model.json"
    if not manifest.is_file():
        return {}
    try:
        block = json.loads(manifest.read_text(encoding="utf-8")).get("calibration") or {}
        temperature = float(block.get("temperature", 1.0))
        threshold = float(block.get("unknown_threshold", 0.0))
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise ConfigError(f"{manifest}: unreadable calibration block ({e})") from None
    if not (temperature > 0 and math.isfinite(temperature)) or not 0 <= threshold <= 1:
        raise ConfigError(f"{manifest}: calibration needs temperature > 0 and 0 <= unknown_threshold <= 1, "
                          f"got {temperature} and {threshold}")
    return {**block, "temperature": temperature, "unknown_threshold": threshold}
