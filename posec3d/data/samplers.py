"""Index samplers for training and evaluation, single-process or distributed.

The order of an epoch depends only on ``seed + epoch`` (never on global RNG state), so a resumed
run replays the same epochs, and every rank computes the same permutation and takes its own
stride of it (``rank::world_size``), as torch's DistributedSampler does.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


def class_balanced_indices(labels: Sequence[int], class_prob: Sequence[float], times: int,
                           rng: np.random.Generator) -> np.ndarray:
    """pyskl's class-specific sampling: class c's indices appear ``class_prob[c] * times`` times.

    The whole part of the repeat count gives full copies; the fractional part a random subset.
    Indices refer to the un-repeated dataset (valid for a RepeatDataset too).
    """
    labels = np.asarray(labels)
    out = []
    for c, prob in enumerate(class_prob):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        repeat = float(prob) * times
        whole = int(repeat)
        out.extend([members] * whole)
        extra = int(round((repeat - whole) * len(members)))
        if extra:
            out.append(rng.choice(members, size=extra, replace=False))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class TrainSampler(Sampler[int]):
    """Shuffled (optionally class-balanced) indices, padded so every rank gets as many."""

    def __init__(self, num_samples: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, labels: Sequence[int] | None = None,
                 class_prob: Sequence[float] | None = None, times: int = 1):
        if class_prob is not None and labels is None:
            raise ValueError("class_prob needs the dataset labels")
        self.num_samples = int(num_samples)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.shuffle = shuffle
        self.labels, self.class_prob, self.times = labels, class_prob, int(times)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _epoch_indices(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + self.epoch)
        if self.class_prob is not None:
            indices = class_balanced_indices(self.labels, self.class_prob, self.times, rng)
        else:
            indices = np.arange(self.num_samples)
        if self.shuffle:
            indices = indices[rng.permutation(len(indices))]
        return indices

    def _total(self, n: int) -> int:
        return -(-n // self.world_size) * self.world_size

    def __iter__(self) -> Iterator[int]:
        indices = self._epoch_indices()
        total = self._total(len(indices))
        if total > len(indices) and len(indices):  # pad by wrapping, as DistributedSampler does
            indices = np.concatenate([indices, np.resize(indices, total - len(indices))])
        return iter(indices[self.rank:total:self.world_size].tolist())

    def __len__(self) -> int:
        if self.class_prob is not None:
            # The fractional parts make the count depend only on class sizes, not on the draw.
            n = len(class_balanced_indices(self.labels, self.class_prob, self.times, np.random.default_rng(0)))
        else:
            n = self.num_samples
        return self._total(n) // self.world_size


class EvalSampler(Sampler[int]):
    """Dataset order, strided over ranks, no padding (so no sample is scored twice)."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.num_samples, self.rank, self.world_size = int(num_samples), int(rank), int(world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))


class WorkerSeeder:
    """``worker_init_fn``: seeds numpy, random and torch in each loader worker.

    Worker seed = (seed + epoch) + num_workers * rank + worker_id: SPEC §5's rule with the epoch
    folded in, so each epoch draws fresh augmentations yet a resumed epoch draws the same ones.
    Set ``epoch`` before creating the epoch's iterator (workers are started per epoch).
    """

    def __init__(self, seed: int, rank: int, num_workers: int):
        self.seed, self.rank, self.num_workers = int(seed), int(rank), int(num_workers)
        self.epoch = 0

    def worker_seed(self, worker_id: int) -> int:
        return (self.seed + self.epoch + self.num_workers * self.rank + worker_id) % 2**32

    def __call__(self, worker_id: int) -> None:
        seed_everything(self.worker_seed(worker_id))


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
