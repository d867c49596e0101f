"""Learning-rate schedules as a pure function of the iteration (SPEC §5).

``lr_at(i)`` depends only on the global iteration ``i`` (0-based, the step about to be taken),
so resuming needs no scheduler state: the resumed run asks for the same ``i`` and gets the same
lr. Phases come from ``config.lr_schedule_cfg`` (pyskl ``lr_config`` or mmaction2
``param_scheduler``); an annealing phase (cosine / step / constant) sets the curve and warmup
phases (linear / constant factor) multiply it.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from posec3d.errors import ConfigError


class LRSchedule:
    def __init__(self, phases: Sequence[Mapping], base_lr: float, iters_per_epoch: int, max_epochs: int):
        if iters_per_epoch <= 0:
            raise ConfigError("the training set gives zero iterations per epoch (empty split or batch too large?)")
        self.phases = [dict(p) for p in phases]
        self.base_lr = float(base_lr)
        self.iters_per_epoch = int(iters_per_epoch)
        self.max_epochs = int(max_epochs)
        self.max_iters = self.iters_per_epoch * self.max_epochs

    def _clock(self, phase: Mapping, i: int) -> tuple[float, float, float]:
        """(t, begin, end) of a phase at iteration i, in the phase's own unit."""
        if phase.get("by_epoch", True):
            epoch = i / self.iters_per_epoch
            t = epoch if phase.get("convert_to_iter_based") else math.floor(epoch)
            total = self.max_epochs
        else:
            t, total = i, self.max_iters
        begin = phase.get("begin") or 0
        end = phase.get("end")
        return t, float(begin), float(total if end is None else end)

    def lr_at(self, i: int) -> float:
        lr = self.base_lr
        for phase in self.phases:
            t, begin, end = self._clock(phase, i)
            kind = phase["type"]
            if kind == "cosine":
                if t < begin:
                    continue
                span = phase.get("T_max") or (end - begin)
                eta_min = phase.get("eta_min", 0.0)
                if phase.get("eta_min_ratio") is not None:
                    eta_min = self.base_lr * float(phase["eta_min_ratio"])
                progress = min(t - begin, span) / span
                lr = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * progress)) / 2
            elif kind == "step":
                if t < begin:
                    continue
                steps = phase["milestones"]
                if phase.get("every"):
                    n = int((t - begin) // steps[0])
                else:
                    n = sum(1 for m in steps if t >= m)
                lr = lr * phase.get("gamma", 0.1) ** n
            elif kind == "linear":
                if begin <= t < end:
                    start, stop = phase.get("start_factor", 1 / 3), phase.get("end_factor", 1.0)
                    lr = lr * (start + (stop - start) * (t - begin) / (end - begin))
            elif kind == "constant":
                if "factor" in phase and begin <= t < end:
                    lr = lr * phase["factor"]
            else:
                raise ConfigError(f"unknown lr schedule phase {kind!r}")
        return lr
