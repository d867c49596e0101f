"""Metrics on SPEC §6's worked example, LR curves against hand-derived values, samplers."""
import math

import numpy as np
import pytest

from posec3d.data.samplers import EvalSampler, TrainSampler, WorkerSeeder, class_balanced_indices
from posec3d.engine.config import Config, lr_schedule_cfg
from posec3d.engine.metrics import confusion_matrix, evaluate, mean_class_accuracy, top_k_accuracy
from posec3d.engine.schedule import LRSchedule

SPEC_SCORES = [[.1, .7, .2, 0], [.6, .3, .1, 0], [.2, .2, .6, 0], [.1, .2, .3, .4]]
SPEC_LABELS = [1, 1, 2, 2]


def test_spec_worked_example():
    assert top_k_accuracy(SPEC_SCORES, SPEC_LABELS, (1, 2)) == [0.5, 1.0]
    assert mean_class_accuracy(SPEC_SCORES, SPEC_LABELS) == 0.25


def test_mean_class_counts_predicted_only_classes_as_zero():
    # preds 0,1,1 ; labels 0,0,1 -> classes {0,1}: class0 1/2, class1 1/1 -> 0.75
    scores = np.eye(3)[[0, 1, 1]]
    assert mean_class_accuracy(scores, [0, 0, 1]) == pytest.approx(0.75)
    # preds 2 only for a label-1 sample: union {1,2}: class1 0/1, class2 count 0 -> 0 -> mean 0
    assert mean_class_accuracy(np.eye(3)[[2]], [1]) == 0.0


def test_evaluate_and_confusion():
    m = evaluate(SPEC_SCORES, SPEC_LABELS)
    assert m == {"top1": 0.5, "top5": 1.0, "mean_class_accuracy": 0.25, "num_samples": 4}
    cm = confusion_matrix([1, 0, 2, 3], SPEC_LABELS, 4)
    assert cm[1, 1] == 1 and cm[1, 0] == 1 and cm[2, 2] == 1 and cm[2, 3] == 1 and cm.sum() == 4


def test_pyskl_cosine_by_iter():
    cfg = Config(lr_config=dict(policy='CosineAnnealing', by_epoch=False, min_lr=0))
    s = LRSchedule(lr_schedule_cfg(cfg), base_lr=0.4, iters_per_epoch=10, max_epochs=2)
    assert s.lr_at(0) == pytest.approx(0.4)
    assert s.lr_at(10) == pytest.approx(0.2)  # half way: cos(pi/2) = 0
    assert s.lr_at(5) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))


def test_mmaction2_cosine_converted_matches_pyskl():
    mm = Config(param_scheduler=[dict(type='CosineAnnealingLR', eta_min=0, T_max=2, by_epoch=True,
                                      convert_to_iter_based=True)])
    py = Config(lr_config=dict(policy='CosineAnnealing', by_epoch=False, min_lr=0))
    a = LRSchedule(lr_schedule_cfg(mm), 0.2, 7, 2)
    b = LRSchedule(lr_schedule_cfg(py), 0.2, 7, 2)
    for i in range(14):
        assert a.lr_at(i) == pytest.approx(b.lr_at(i))


def test_step_schedules_both_layouts():
    py = Config(lr_config=dict(policy='step', step=[9, 11]))
    mm = Config(param_scheduler=[dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[9, 11], gamma=0.1)])
    for cfg in (py, mm):
        s = LRSchedule(lr_schedule_cfg(cfg), 0.01, 5, 12)
        assert s.lr_at(9 * 5 - 1) == pytest.approx(0.01)
        assert s.lr_at(9 * 5) == pytest.approx(0.001)
        assert s.lr_at(11 * 5) == pytest.approx(0.0001)


def test_linear_warmup_pyskl():
    cfg = Config(lr_config=dict(policy='step', step=[100], warmup='linear', warmup_iters=4, warmup_ratio=0.1))
    s = LRSchedule(lr_schedule_cfg(cfg), 1.0, 10, 3)
    assert [round(s.lr_at(i), 6) for i in range(5)] == [0.1, 0.325, 0.55, 0.775, 1.0]


def test_train_sampler_ranks_partition_the_single_process_order():
    one = list(TrainSampler(10, seed=3))
    assert sorted(one) == list(range(10))
    r0, r1 = (list(TrainSampler(10, seed=3, rank=r, world_size=2)) for r in (0, 1))
    assert r0 == one[0::2] and r1 == one[1::2]
    s = TrainSampler(10, seed=3)
    s.set_epoch(1)
    assert list(s) != one  # a new order each epoch
    s.set_epoch(0)
    assert list(s) == one  # ... and the same order when an epoch is replayed


def test_train_sampler_pads_to_equal_length():
    parts = [list(TrainSampler(7, seed=0, rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert set(sum(parts, [])) == set(range(7))


def test_class_balanced_counts():
    labels = [0] * 4 + [1] * 6
    idx = class_balanced_indices(labels, [1, 2.5], 2, np.random.default_rng(0))
    counts = np.bincount(np.asarray(labels)[idx])
    assert counts.tolist() == [8, 30]  # class 0: 1*2 copies; class 1: 2.5*2 = 5 copies
    s = TrainSampler(10, labels=labels, class_prob=[1, 1.5], times=1)
    assert len(list(s)) == len(s) == 4 + 9


def test_eval_sampler_and_worker_seed_rule():
    assert [list(EvalSampler(5, r, 2)) for r in (0, 1)] == [[0, 2, 4], [1, 3]]
    w = WorkerSeeder(seed=10, rank=1, num_workers=4)
    w.epoch = 2
    assert w.worker_seed(3) == 10 + 2 + 4 * 1 + 3
