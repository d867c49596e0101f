"""configs/penn_action/feature_open_set.py: the feature-space "unknown" scores it measures."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fos():
    path = REPO / "configs/penn_action/feature_open_set.py"
    spec = importlib.util.spec_from_file_location("feature_open_set", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:  # it puts its own folder first on sys.path to import calibrate.py; leave no trace
        for folder in (str(path.parent), str(path.parent / "dev_set")):
            while folder in sys.path:
                sys.path.remove(folder)
    return module


def test_kth_similarity_is_the_kth_largest_cosine_to_the_bank(fos):
    rng = np.random.default_rng(0)
    queries, bank = rng.normal(size=(7, 5)), rng.normal(size=(40, 5)) * rng.uniform(0.1, 10, size=(40, 1))
    for k in (1, 3, 40):
        expected = [sorted((q @ b / np.linalg.norm(q) / np.linalg.norm(b) for b in bank), reverse=True)[k - 1]
                    for q in queries]
        np.testing.assert_allclose(fos.kth_similarity(queries, bank, k), expected, rtol=1e-12)


def test_mahalanobis_score_is_minus_the_squared_distance_to_the_nearest_class_mean(fos):
    rng = np.random.default_rng(1)
    # correlated features, one well-conditioned covariance for both classes (on a near-singular one
    # the ridge is what keeps the distances finite, and it then moves them by more than 1 %)
    mix = np.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.4, 0.0, 1.5]])
    means = np.array([[0.0, 0.0, 0.0], [6.0, -3.0, 2.0]])
    labels = np.repeat([4, 9], 4000)  # class ids need not be 0..n-1
    bank = rng.normal(size=(8000, 3)) @ mix + means[(labels == 9).astype(int)]
    queries = rng.normal(size=(20, 3)) * 3 + 2
    # reference: scipy's distance under the textbook pooled within-class covariance
    pooled = sum(np.cov(bank[labels == c].T, bias=True) for c in (4, 9)) / 2
    inv = np.linalg.inv(pooled)
    class_means = [bank[labels == c].mean(0) for c in (4, 9)]
    expected = [-min(mahalanobis(q, m, inv) ** 2 for m in class_means) for q in queries]
    # (the score adds a ridge of 0.1 % of the mean variance: distances move by well under 1 %)
    np.testing.assert_allclose(fos.mahalanobis_score(queries, bank, labels), expected, rtol=1e-2)
    assert fos.mahalanobis_score(class_means[1][None], bank, labels)[0] == pytest.approx(0, abs=1e-9)


def test_feature_reader_keeps_the_features_and_leaves_the_scores_alone(fos, data_dir):
    import pickle

    import torch

    from posec3d.engine.inference import ActionRecognizer
    from posec3d.zoo import resolve_model

    m = resolve_model("penn-action")
    reader = fos.FeatureReader(m.config, m.checkpoint)
    plain = ActionRecognizer(m.config, m.checkpoint, m.label_map)  # temperature 1, as the reader's
    with open(data_dir / "skeleton/k400_mediapipe_coco17_samples.pkl", "rb") as f:
        ann = pickle.load(f)["annotations"][0]
    feats, probs = reader(ann)
    assert feats.shape == (reader.rec.model.cls_head.fc_cls.in_features,)
    np.testing.assert_allclose(probs, plain.scores(ann), atol=1e-6)
    # The head is linear, so it maps the views' mean feature to the views' mean logits.
    fc = reader.rec.model.cls_head.fc_cls
    plain.model.average_clips = "score"
    with torch.inference_mode():
        mean_logits = plain.model.forward_test(plain.views(ann)[None].float()).numpy()[0]
        from_feats = fc(torch.as_tensor(feats)[None]).numpy()[0]
    np.testing.assert_allclose(from_feats, mean_logits, atol=1e-4)
