"""Training logs: a JSONL metrics file, TensorBoard when installed, and a text echo.

Only rank 0 writes. ``metrics.jsonl`` is rewritten atomically on every flush (it stays small:
one line per logged interval and per validation), so a killed run never leaves half a line, and
a resumed run first drops the lines past the iteration it resumes from.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable

from posec3d.files import atomic_write_text


class MetricsLog:
    def __init__(self, work_dir: Path, enabled: bool = True, resume_iter: int | None = None,
                 echo: Callable[[str], None] | None = None):
        self.path = Path(work_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.echo = echo
        self.records: list[dict] = []
        if enabled and resume_iter is not None and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                if rec.get("iter", 0) <= resume_iter:
                    self.records.append(rec)
        self.tb = _tensorboard(work_dir) if enabled else None

    def log(self, record: dict, flush: bool = True) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        self.records.append(clean)
        if self.tb is not None:
            step = record.get("iter", 0)
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("iter", "epoch"):
                    self.tb.add_scalar(f"{record.get('mode', 'train')}/{k}", v, step)
        if flush:
            self.flush()

    def flush(self) -> None:
        if self.enabled:
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))
            if self.tb is not None:
                self.tb.flush()

    def close(self) -> None:
        self.flush()
        if self.tb is not None:
            self.tb.close()


def _tensorboard(work_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(Path(work_dir) / "tensorboard"))
