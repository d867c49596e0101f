"""End-of-training figures: ``curves.png`` (loss, lr, validation accuracy) and ``confusion_matrix.png``."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from posec3d.files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")


#: At most this many points on the loss curve: more only draws noise.
MAX_LOSS_POINTS = 200


def even_loss_curve(train: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(bin end iterations, mean loss per bin) on evenly spaced bins.

    The log's points are not evenly spaced: every ``log_interval`` iterations plus one at each
    epoch's end, so short windows (a few batches, noisy) sit between full ones and the raw line
    jumps. Each record is the mean over the iterations since the one before; bins of equal width
    (the usual interval, widened to keep at most MAX_LOSS_POINTS) average them weighted by the
    iterations they cover.
    """
    if not train:
        return np.zeros(0), np.zeros(0)
    ends = np.asarray([r["iter"] for r in train], dtype=np.float64)
    losses = np.asarray([r["loss"] for r in train], dtype=np.float64)
    starts = np.concatenate([[0.0], ends[:-1]])
    if ends[0] <= 0 or np.any(ends <= starts):  # not a plain increasing log (e.g. merged runs)
        return ends, losses
    widths = ends - starts
    usual = float(np.median(widths))
    width = max(usual, ends[-1] / MAX_LOSS_POINTS)
    bins = np.minimum(np.ceil(ends / width).astype(int), int(np.ceil(ends[-1] / width)))
    totals = np.bincount(bins, weights=losses * widths)
    counts = np.bincount(bins, weights=widths)
    keep = counts > 0
    edges = np.minimum(np.arange(len(counts)) * width, ends[-1])
    return edges[keep], totals[keep] / counts[keep]


def plot_curves(records: Sequence[dict], path: Path) -> None:
    plt = _pyplot()
    train = [r for r in records if r.get("mode") == "train" and r.get("loss") is not None]
    epochs = [r for r in records if r.get("mode") == "epoch" and r.get("loss") is not None]
    val = [r for r in records if r.get("mode") == "val"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    x, y = even_loss_curve(train)
    axes[0].plot(x, y, lw=1, alpha=0.6, label="mean over even intervals")
    if epochs:
        axes[0].plot([r["iter"] for r in epochs], [r["loss"] for r in epochs], marker="o", ms=3, lw=1.5,
                     color="tab:red", label="epoch mean")
        axes[0].legend(fontsize=8)
    axes[0].set(title="training loss", xlabel="iteration")
    axes[1].plot([r["iter"] for r in train], [r["lr"] for r in train], lw=1, color="tab:orange")
    axes[1].set(title="learning rate", xlabel="iteration")
    if val:
        for key in ("top1", "top5", "mean_class_accuracy"):
            axes[2].plot([r["epoch"] for r in val], [r[key] for r in val], marker="o", label=key)
        axes[2].legend()
        axes[2].set_ylim(0, 1)
    axes[2].set(title="validation accuracy", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def plot_confusion(cm: np.ndarray, path: Path, class_names: Sequence[str] | None = None, title: str = "") -> None:
    plt = _pyplot()
    n = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    size = max(5, min(0.35 * n + 2, 30))
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = list(class_names) if class_names and len(class_names) == n else [str(i) for i in range(n)]
    if n <= 60:
        ax.set_xticks(range(n), names, rotation=90, fontsize=7)
        ax.set_yticks(range(n), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    _save(fig, path)
    plt.close(fig)
