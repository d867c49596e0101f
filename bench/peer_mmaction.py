"""The mmaction2 1.2.0 side of ``bench/peer.py``; runs in the peer's own venv (../shared/peer/INSTALL.md).

Not run by hand: ``bench/peer.py`` starts it and sends one JSON task per line on stdin; it answers
one JSON line per task. The peer's own logging goes to stderr so stdout stays the protocol.
Each task runs the peer on its own code path: ``Runner.from_cfg(cfg).test()`` for testing a
dataset, ``Runner.from_cfg(cfg).train()`` for training iterations, its dataset's ``__getitem__``
(load the sample, run the pipeline) for the pipelines. Config: the wheel's NTU60 SlowOnly joint one.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import time

PROTOCOL = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # print() of the peer now lands on stderr

import torch  # noqa: E402

torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))

import mmaction  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmaction.utils import register_all_modules  # noqa: E402

register_all_modules(init_default_scope=True)
CONFIG = os.path.join(os.path.dirname(mmaction.__file__), ".mim", "configs", "skeleton", "posec3d",
                      "slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py")


class IterClock(Hook):
    """Timestamps after every training iteration (after the other hooks: priority LOWEST)."""

    def __init__(self):
        self.stamps = []

    def before_train(self, runner) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.stamps.append((time.perf_counter(), time.process_time()))


def base_config(task: dict) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = task["work_dir"]
    cfg.log_level = "WARNING"
    cfg.launcher = "none"
    cfg.default_hooks.logger.interval = 1000
    cfg.visualizer = dict(type="ActionVisualizer", vis_backends=[dict(type="LocalVisBackend")])
    return cfg


def loader(cfg_loader, task: dict, split: str) -> None:
    workers = int(task["workers"])
    cfg_loader.num_workers = workers
    cfg_loader.persistent_workers = workers > 0
    ds = cfg_loader.dataset
    while ds.get("type") == "RepeatDataset":
        ds.times = 1
        ds = ds.dataset
    ds.ann_file, ds.split = task["ann_file"], split


def run_test(task: dict) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    cfg = base_config(task)
    cfg.load_from = task["checkpoint"]
    loader(cfg.test_dataloader, task, task["split"])
    cfg.test_evaluator = [dict(type="AccMetric"), dict(type="DumpResults", out_file_path=task["dump"])]
    metrics = Runner.from_cfg(cfg).test()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with open(task["dump"], "rb") as f:
        rows = pickle.load(f)
    scores = [[float(x) for x in r["pred_score"]] for r in rows]
    return {"seconds": seconds, "cpu_seconds": cpu, "top1": float(metrics.get("acc/top1", float("nan"))), "scores": scores}


def run_train(task: dict) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    cfg = base_config(task)
    loader(cfg.train_dataloader, task, task["split"])
    cfg.train_dataloader.batch_size = int(task["batch"])
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1000)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.randomness = dict(seed=0)
    runner = Runner.from_cfg(cfg)
    clock = IterClock()
    runner.register_hook(clock, priority="LOWEST")
    runner.train()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    stamps = clock.stamps
    return {"seconds": seconds, "cpu_seconds": cpu, "iteration_seconds": [b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
            "iteration_cpu_seconds": [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]}


def run_pipeline(task: dict) -> dict:
    from mmaction.registry import DATASETS

    cfg = Config.fromfile(CONFIG)
    ds_cfg = (cfg.test_dataloader if task["which"] == "test" else cfg.train_dataloader).dataset
    while ds_cfg.get("type") == "RepeatDataset":
        ds_cfg = ds_cfg.dataset
    ds_cfg.ann_file, ds_cfg.split = task["ann_file"], task["split"]
    dataset = DATASETS.build(ds_cfg)
    dataset[0]  # warm-up (imports, lazy init)
    start, cpu = time.perf_counter(), time.process_time()
    samples = 0
    while True:  # whole passes until min_seconds, as posec3d's worker does
        for i in range(len(dataset)):
            dataset[i]
        samples += len(dataset)
        if time.perf_counter() - start >= task.get("min_seconds", 0):
            break
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "samples": samples}


TASKS = {"test": run_test, "train": run_train, "pipeline": run_pipeline}


def main() -> None:
    PROTOCOL.write(json.dumps({"ready": True, "mmaction2": mmaction.__version__, "torch": torch.__version__,
                               "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        task = json.loads(line)
        if task.get("task") == "quit":
            break
        try:
            answer = TASKS[task["task"]](task)
        except Exception as e:  # report, keep serving: the orchestrator decides
            import traceback

            traceback.print_exc()
            answer = {"error": f"{type(e).__name__}: {e}"}
        PROTOCOL.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
