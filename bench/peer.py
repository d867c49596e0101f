"""posec3d against mmaction2 1.2.0, side by side in one run, on the code paths the commands use.

Two long-lived worker processes, one per toolkit (mmaction2 in its own venv, ../shared/peer/INSTALL.md),
get the same tasks alternately (posec3d, peer, peer, posec3d, ...), same threads, same inputs:

- ``test``: testing a dataset end to end, as ``posec3d test`` runs it (``load_config`` +
  ``engine.tester.test``) against the peer's ``Runner.from_cfg(cfg).test()``: Penn Action clips
  (ground-truth joints mapped to COCO-17) through each toolkit's NTU60 SlowOnly joint config, 10 clips
  x flip, the released NTU60 SlowOnly checkpoint. Timed from config to metrics.
- ``train``: training iterations as ``posec3d train`` runs them (``engine.trainer.train``) against
  the peer's ``Runner.train()``, same batch and loader workers; one iteration = the time between the
  ends of consecutive iterations (data wait included), the first (loader start-up) left out.
- ``test_pipeline`` / ``train_pipeline``: the datasets' ``__getitem__`` alone (load + pipeline), whole
  passes over the same samples repeated by both sides until ``--pipeline-min-seconds``.

Prints ONE JSON object: medians per side, ratios of wall times (peer / posec3d: > 1 means posec3d is
faster; the headline), the same ratios of the timed process's CPU time (all its threads, loader worker
processes not counted: less sensitive to a busy machine), the targets of issue 11 and the load
average through the run. Progress goes to stderr.

    python bench/peer.py [--rounds 3] [--test-samples 1] [--train-iters 2] [--batch 4] [--threads 2]
        [--pipeline-source penn|ntu] [--pipeline-min-seconds 1] [--tasks test_pipeline,train_pipeline,test,train] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

POSEC3D_CONFIG = REPO / "configs" / "ntu60_xsub" / "slowonly_r50_joint.py"
TARGETS = {"test": 2.5, "train": 1.4, "test_pipeline": 20.0, "train_pipeline": 20.0}


def shared_dir() -> Path:
    return Path(os.environ.get("POSEC3D_SHARED", REPO.parent / "shared")).resolve()


def say(msg: str) -> None:
    print(f"[peer.py {time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", file=sys.stderr, flush=True)


# ---- inputs ------------------------------------------------------------------------------------

def write_inputs(path: Path, test_samples: int, train_samples: int, pipeline_samples: int,
                 pipeline_source: str = "penn") -> dict:
    """Penn Action training clips, 13 joints → COCO-17 (MapJoints: no eyes/ears), spread over the
    classes, in one pyskl file with a split per task; both toolkits read this same file.
    ``pipeline_source='ntu'``: the pipelines get the 3 real 2-person NTU clips of
    shared/data/skeleton instead (repeated under new names), the kind of sample the README's
    earlier pipeline figures used."""
    from posec3d.data.annotations import load_annotation_file, save_annotations
    from posec3d.data.skeletons import PENN_ACTION_TO_COCO17
    from posec3d.data.transforms.joints import MapJoints

    raw = load_annotation_file(shared_dir() / "data" / "datasets" / "penn_action" / "penn_action_train_gt13_2d.pkl")
    by_class: dict[int, list] = {}
    for a in raw["annotations"]:
        by_class.setdefault(int(a["label"]), []).append(a)
    order = [a for rank in range(max(len(v) for v in by_class.values()))
             for c in sorted(by_class) for a in by_class[c][rank:rank + 1]]  # round robin over classes
    need = test_samples + train_samples + pipeline_samples
    to_coco = MapJoints(mappings={13: list(PENN_ACTION_TO_COCO17)})
    picked = []
    for a in order[:need]:
        mapped = to_coco({"keypoint": a["keypoint"].copy(), "keypoint_score": a["keypoint_score"].copy()})
        picked.append({**a, "keypoint": mapped["keypoint"].astype("float32"),
                       "keypoint_score": mapped["keypoint_score"].astype("float32")})
    if pipeline_source == "ntu":
        picked = picked[:test_samples + train_samples]
        ntu = load_annotation_file(shared_dir() / "data" / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl")
        ntu = ntu["annotations"]
        picked += [{**ntu[i % len(ntu)], "frame_dir": f"{ntu[i % len(ntu)]['frame_dir']}_{i}"}
                   for i in range(pipeline_samples)]
    ids = [a["frame_dir"] for a in picked]
    split = {"test": ids[:test_samples], "train": ids[test_samples:test_samples + train_samples],
             "pipeline": ids[test_samples + train_samples:]}
    save_annotations(path, picked, split=split)
    return split


# ---- the posec3d worker (runs in a child process, like the peer's) -------------------------------

def posec3d_worker() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))  # what `--threads N` does
    import posec3d
    from posec3d.engine.config import load_config

    def options(task: dict, split: str) -> list[str]:
        return [f"data.{split}.ann_file={task['ann_file']}", f"data.{split}.split={task['split']}",
                f"data.workers_per_gpu={task['workers']}"]

    def run_test(task: dict) -> dict:
        from posec3d.engine.tester import test

        start, cpu = time.perf_counter(), time.process_time()
        cfg = load_config(POSEC3D_CONFIG, options(task, "test"))
        result = test(cfg, task["checkpoint"])
        return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "top1": result.metrics.get("top1"),
                "scores": [s.tolist() for s in result.scores]}

    def run_train(task: dict) -> dict:
        from posec3d.engine.trainer import train

        stamps: list[tuple[float, float]] = []

        def clock(advance=1, total=None, **fields):
            if total is not None or advance:  # the loop is about to start / an iteration ended
                stamps.append((time.perf_counter(), time.process_time()))

        start, cpu = time.perf_counter(), time.process_time()
        opts = [f"data.train.dataset.ann_file={task['ann_file']}", f"data.train.dataset.split={task['split']}",
                "data.train.times=1", f"data.videos_per_gpu={task['batch']}", f"data.workers_per_gpu={task['workers']}",
                "total_epochs=1", "log_config.interval=1000", *task.get("options", [])]
        cfg = load_config(POSEC3D_CONFIG, opts)
        train(cfg, task["work_dir"], seed=0, progress=clock, echo=lambda _m: None)
        return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
                "iteration_seconds": [b[0] - a[0] for a, b in zip(stamps, stamps[1:])],
                "iteration_cpu_seconds": [b[1] - a[1] for a, b in zip(stamps, stamps[1:])]}

    def run_pipeline(task: dict) -> dict:
        from posec3d.engine.loaders import build_dataset, split_dataset_cfg

        split = "test" if task["which"] == "test" else "train"
        inner = "data.test" if split == "test" else "data.train.dataset"
        cfg = load_config(POSEC3D_CONFIG, [f"{inner}.ann_file={task['ann_file']}", f"{inner}.split={task['split']}",
                                           "data.train.times=1"])
        dataset = build_dataset(split_dataset_cfg(cfg, split), str(POSEC3D_CONFIG), test_mode=split == "test")
        from posec3d.data.dataset import reuse_heatmap_volumes

        reuse_heatmap_volumes(dataset)  # as the loaders of `test` and `train` do
        dataset[0]
        start, cpu = time.perf_counter(), time.process_time()
        samples = 0
        while True:  # whole passes until min_seconds: the peer's worker does the same
            for i in range(len(dataset)):
                dataset[i]
            samples += len(dataset)
            if time.perf_counter() - start >= task.get("min_seconds", 0):
                break
        return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu, "samples": samples}

    tasks = {"test": run_test, "train": run_train, "pipeline": run_pipeline}
    protocol.write(json.dumps({"ready": True, "posec3d": posec3d.__version__, "torch": torch.__version__,
                               "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        task = json.loads(line)
        if task.get("task") == "quit":
            break
        try:
            answer = tasks[task["task"]](task)
        except Exception as e:
            import traceback

            traceback.print_exc()
            answer = {"error": f"{type(e).__name__}: {e}"}
        protocol.write(json.dumps(answer) + "\n")


# ---- the orchestrator --------------------------------------------------------------------------

class Worker:
    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name = name
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     text=True, cwd=REPO)
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (see {self.log.name})")
        return json.loads(line)

    def ask(self, task: dict) -> dict:
        self.proc.stdin.write(json.dumps(task) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"{self.name} {task['task']}: {answer['error']} (log: {self.log.name})")
        return answer

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"task": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per task (median over them)")
    parser.add_argument("--test-samples", type=int, default=1, help="Penn Action clips tested end to end per round")
    parser.add_argument("--train-iters", type=int, default=2, help="timed training iterations per round (+1 warm-up)")
    parser.add_argument("--batch", type=int, default=4, help="training batch (both sides)")
    parser.add_argument("--pipeline-samples", type=int, default=8)
    parser.add_argument("--pipeline-min-seconds", type=float, default=1.0,
                        help="each side repeats whole passes over the pipeline samples until this long (a pass "
                             "of 24 training samples takes posec3d ~15 ms: too short to time on a shared machine)")
    parser.add_argument("--pipeline-source", choices=["penn", "ntu"], default="penn",
                        help="samples for the pipeline tasks: Penn Action (1 person) or real NTU (2 persons)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads and OMP_NUM_THREADS (both sides)")
    parser.add_argument("--workers", type=int, default=2, help="data loader workers (both sides)")
    parser.add_argument("--tasks", default="test_pipeline,train_pipeline,test,train")
    parser.add_argument("--peer-python", default=str(Path.home() / ".cache" / "peer-venv" / "bin" / "python"))
    parser.add_argument("--checkpoint", default=None, help="default: the golden NTU60 SlowOnly joint checkpoint")
    parser.add_argument("--keep", default=None, help="keep the worker logs and inputs in this folder")
    args = parser.parse_args()
    if not Path(args.peer_python).exists():
        sys.exit(f"bench/peer.py: no peer interpreter at {args.peer_python}; install it by ../shared/peer/INSTALL.md")
    checkpoint = Path(args.checkpoint or shared_dir() / "golden" / "models" / "slowonly_r50_ntu60_xsub_keypoint.pth")
    tasks = args.tasks.split(",")
    from posec3d.files import atomic_write_text

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="peer_bench_"))
    tmp.mkdir(parents=True, exist_ok=True)
    ann = tmp / "penn_action_coco17.pkl"
    split = write_inputs(ann, args.test_samples, (args.train_iters + 1) * args.batch, args.pipeline_samples,
                         args.pipeline_source)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "BENCH_THREADS": str(args.threads), "PYTHONPATH": str(REPO)}
    load = [os.getloadavg()]
    say(f"starting the workers (inputs in {tmp})")
    ours = Worker("posec3d", [sys.executable, str(Path(__file__).resolve()), "--worker"], env, tmp / "posec3d.log")
    peer_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    peer = Worker("mmaction2", [args.peer_python, str(REPO / "bench" / "peer_mmaction.py")], peer_env, tmp / "peer.log")

    def task_for(name: str, side: str, r: int) -> dict:
        common = {"ann_file": str(ann), "workers": args.workers}
        wd = str(tmp / f"{side}_{name}_{r}")
        if name == "test":
            return {"task": "test", **common, "split": "test", "checkpoint": str(checkpoint), "work_dir": wd,
                    "dump": str(tmp / f"{side}_scores_{r}.pkl")}
        if name == "train":
            return {"task": "train", **common, "split": "train", "batch": args.batch, "work_dir": wd}
        return {"task": "pipeline", **common, "split": "pipeline", "which": name.split("_")[0], "work_dir": wd,
                "min_seconds": args.pipeline_min_seconds}

    raw: dict = {t: {"posec3d": [], "mmaction2": []} for t in tasks}
    agreement = None
    try:
        for r in range(args.rounds):
            for name in tasks:
                sides = [("posec3d", ours), ("mmaction2", peer)]
                if r % 2:
                    sides.reverse()  # A B, B A, A B: neither side always runs first
                for side, worker in sides:
                    say(f"round {r + 1}/{args.rounds} {name}: {side}")
                    answer = worker.ask(task_for(name, side, r))
                    raw[name][side].append(answer)
                load.append(os.getloadavg())
                # Kept as the run goes, so a run cut short still leaves its measurements.
                atomic_write_text(tmp / "raw_partial.json", json.dumps({"raw": raw, "load": load}))
                if name == "test" and r == 0:
                    agreement = _agreement(raw["test"]["posec3d"][0]["scores"], raw["test"]["mmaction2"][0]["scores"])
    finally:
        ours.close()
        peer.close()

    out = {"what": __doc__.split("\n\n")[0], "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "versions": {"posec3d": ours.info, "mmaction2": peer.info},
           "settings": {**vars(args), "checkpoint": str(checkpoint), "posec3d_config": str(POSEC3D_CONFIG.relative_to(REPO)),
                        "peer_config": "mmaction/.mim/configs/skeleton/posec3d/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py",
                        "inputs": {k: len(v) for k, v in split.items()}},
           "medians": {}, "ratios_peer_over_posec3d": {}, "targets": TARGETS, "met": {},
           "cpu_time_ratios_main_process": {}}
    for name, sides in raw.items():
        med = {}
        for side, answers in sides.items():
            if name == "train":  # the first iteration (loader start-up) is left out
                med[side] = {
                    "seconds_per_iteration": statistics.median(statistics.median(a["iteration_seconds"][1:])
                                                               for a in answers),
                    "cpu_seconds_per_iteration": statistics.median(statistics.median(a["iteration_cpu_seconds"][1:])
                                                                   for a in answers),
                    "seconds_per_call": statistics.median(a["seconds"] for a in answers),
                    "all_iteration_seconds": [[round(x, 2) for x in a["iteration_seconds"]] for a in answers]}
                keys = ("seconds_per_iteration", "cpu_seconds_per_iteration")
            elif name == "test":
                med[side] = {"seconds_per_call": statistics.median(a["seconds"] for a in answers),
                             "cpu_seconds_per_call": statistics.median(a["cpu_seconds"] for a in answers),
                             "all_seconds": [round(a["seconds"], 2) for a in answers], "top1": answers[0].get("top1")}
                med[side]["seconds_per_video"] = med[side]["seconds_per_call"] / args.test_samples
                keys = ("seconds_per_call", "cpu_seconds_per_call")
            else:
                med[side] = {"ms_per_sample": statistics.median(1000 * a["seconds"] / a["samples"] for a in answers),
                             "cpu_ms_per_sample": statistics.median(1000 * a["cpu_seconds"] / a["samples"]
                                                                    for a in answers),
                             "all_ms_per_sample": [round(1000 * a["seconds"] / a["samples"], 1) for a in answers]}
                keys = ("ms_per_sample", "cpu_ms_per_sample")
        out["medians"][name] = med
        ratio = med["mmaction2"][keys[0]] / med["posec3d"][keys[0]]
        out["ratios_peer_over_posec3d"][name] = round(ratio, 3)
        out["cpu_time_ratios_main_process"][name] = round(med["mmaction2"][keys[1]] / med["posec3d"][keys[1]], 3)
        out["met"][name] = ratio >= TARGETS.get(name, 0)
    if agreement is not None:
        out["test_predictions_agree"] = agreement
    out["loadavg_1min_start_end_max"] = [round(load[0][0], 2), round(load[-1][0], 2), round(max(x[0] for x in load), 2)]
    out["loadavg_all"] = [[round(v, 2) for v in x] for x in load]
    print(json.dumps(out, indent=1))
    if not args.keep:  # a failed run keeps its worker logs for reading
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def _agreement(ours: list, theirs: list) -> dict:
    """Top-1 agreement of the two toolkits on the same clips (their test pipelines differ slightly:
    the peer crops the center after Resize(-1, 64), posec3d's config resizes to 64x64)."""
    import numpy as np

    a, b = np.asarray(ours), np.asarray(theirs)
    return {"same_top1": float(np.mean(a.argmax(1) == b.argmax(1))), "max_abs_score_difference": float(np.abs(a - b).max())}


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        posec3d_worker()
    else:
        main()
