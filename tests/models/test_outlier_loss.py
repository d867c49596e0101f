"""Outlier exposure in I3DHead's loss (Hendrycks et al., ICLR 2019): samples labelled -1 are pushed
towards a uniform output; the labelled samples keep their own cross-entropy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from posec3d.errors import ConfigError
from posec3d.models.heads import I3DHead


def log_softmax_np(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_outlier_term_is_the_cross_entropy_to_uniform():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)) * 3
    labels = np.array([2, -1, 0, -1, -1])
    head = I3DHead(num_classes=4, in_channels=8, outlier_weight=0.5)
    losses = head.loss(torch.tensor(logits), torch.tensor(labels))
    logp = log_softmax_np(logits)
    known = labels >= 0
    expected_ce = -np.mean(logp[known, labels[known]])  # mean over the 2 labelled samples only
    expected_outlier = 0.5 * np.mean(-logp[~known].mean(axis=1))  # mean over classes, then samples
    assert losses["loss_cls"].item() == pytest.approx(expected_ce, rel=1e-9)
    assert losses["loss_outlier"].item() == pytest.approx(expected_outlier, rel=1e-9)
    # Accuracy counts the labelled samples only.
    assert losses["top1_acc"].item() == pytest.approx(np.mean(logits[known].argmax(1) == labels[known]))


def test_outlier_term_is_smallest_at_a_uniform_output_and_pulls_towards_it():
    head = I3DHead(num_classes=5, in_channels=8, outlier_weight=1.0)
    flat = head.loss(torch.zeros(3, 5), torch.full((3,), -1))
    assert flat["loss_outlier"].item() == pytest.approx(math.log(5))
    assert flat["loss_cls"].item() == 0  # no labelled sample: no labelled term
    logits = torch.tensor([[4.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    head.loss(logits, torch.tensor([-1]))["loss_outlier"].backward()
    assert logits.grad[0, 0] > 0 and (logits.grad[0, 1:] < 0).all()  # a step lowers the peak


def test_without_outliers_the_loss_is_plain_cross_entropy():
    logits, labels = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    losses = I3DHead(num_classes=3, in_channels=8).loss(logits, labels)
    assert "loss_outlier" not in losses
    assert losses["loss_cls"].item() == pytest.approx(-np.mean(log_softmax_np(logits.numpy())[range(6), labels]))


def test_outliers_need_a_weight():
    with pytest.raises(ConfigError, match="outlier_weight"):
        I3DHead(num_classes=3, in_channels=8).loss(torch.randn(2, 3), torch.tensor([0, -1]))
    with pytest.raises(ConfigError, match="outlier_weight"):
        I3DHead(num_classes=3, in_channels=8, outlier_weight=-1)
