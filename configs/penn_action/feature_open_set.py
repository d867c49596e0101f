"""Feature-space "unknown" scores against the maximum probability, on the real-video dev set.

``python configs/penn_action/feature_open_set.py CONFIG CHECKPOINT [-o work_dirs/penn_action/feature_open_set.json]``

The open set of the bundled model uses the calibrated top probability (``calibrate.py``). Scores
that look at where a clip lands in the network's feature space (the head's pooled 216-d input,
averaged over the test views) often separate unfamiliar inputs better, because a confident softmax
can come from anywhere in that space. Measured here, with the same rule as ``calibrate.py``:

- kNN: cosine similarity of the L2-normalised feature to its k-th nearest train_part clip
  (Sun et al., ICML 2022);
- Mahalanobis: the distance to the nearest class mean under one shared covariance
  (Lee et al., NeurIPS 2018), on raw and on L2-normalised features;
- kNN relative to outliers: the k-th similarity to train_part minus that to round 3's outlier clips
  (``make_outliers.py``; skipped when its pickle is absent).

For each: AUROC of the in-vocabulary vs out-of-vocabulary dev clips, and the share of
out-of-vocabulary clips under the highest threshold that loses no more than ``--max-drop`` of the
correctly labelled in-vocabulary clips (then after losing 1, 2, 3 of them, to show how steep it is).
"""
from __future__ import annotations

import io
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from calibrate import LABEL_MAP, REPO, SPLITS, auroc, dev_clips, model_parser  # noqa: E402

OUTLIERS = REPO / "work_dirs/penn_action/penn_outliers.pkl"


class FeatureReader:
    """A recognizer whose forward pass also keeps the head's input (the pooled features)."""

    def __init__(self, config: str, checkpoint: str):
        from posec3d.engine.inference import ActionRecognizer

        self.rec = ActionRecognizer(config, checkpoint, LABEL_MAP)
        self.rec.temperature = 1.0  # raw probabilities: the temperature is fitted on val_part here
        self._kept: list[torch.Tensor] = []
        self.rec.model.cls_head.fc_cls.register_forward_pre_hook(lambda _m, args: self._kept.append(args[0]))

    def __call__(self, annotation: dict) -> tuple[np.ndarray, np.ndarray]:
        """(features averaged over the test views, the views' averaged probabilities) of one clip."""
        self._kept.clear()
        probs = self.rec.scores(annotation)
        return torch.cat(self._kept).float().mean(0).numpy(), probs


def collect(reader: FeatureReader) -> dict:
    with open(SPLITS, "rb") as f:
        data = pickle.load(f)  # written by make_splits.py
    by_id = {a["frame_dir"]: a for a in data["annotations"]}
    out: dict = {"labels": np.array(reader.rec.labels)}
    for split in ("train_part", "val_part"):
        rows = [reader(by_id[i]) for i in data["split"][split]]
        out[f"{split}_feats"] = np.stack([r[0] for r in rows])
        out[f"{split}_probs"] = np.stack([r[1] for r in rows])
        out[f"{split}_labels"] = np.array([by_id[i]["label"] for i in data["split"][split]])
        print(f"{split}: {len(rows)} clips", flush=True)
    dev = {k: [] for k in ("names", "split", "label", "feats", "probs")}
    for row, ann in dev_clips():
        feats, probs = reader(ann)
        for key, value in (("names", row["name"]), ("split", row["split"]), ("label", row["label"]),
                           ("feats", feats), ("probs", probs)):
            dev[key].append(value)
    out.update({f"dev_{k}": np.asarray(v) for k, v in dev.items()})
    print(f"dev: {len(dev['names'])} clips", flush=True)
    if OUTLIERS.is_file():
        with open(OUTLIERS, "rb") as f:
            outliers = pickle.load(f)
        out["outlier_feats"] = np.stack([reader(a)[0] for a in outliers["annotations"]])
        print(f"outliers: {len(out['outlier_feats'])} clips", flush=True)
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def kth_similarity(queries: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    sims = unit(queries) @ unit(bank).T
    return -np.sort(-sims, axis=1)[:, k - 1]


def mahalanobis_score(queries: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray) -> np.ndarray:
    """Minus the squared distance to the nearest class mean, one covariance shared by the classes
    (a ridge of 0.1 % of its mean variance keeps it invertible: 216 dims, ~1000 clips)."""
    classes = np.unique(bank_labels)
    means = np.stack([bank[bank_labels == c].mean(0) for c in classes])
    centred = bank - means[np.searchsorted(classes, bank_labels)]
    cov = centred.T @ centred / len(bank)
    precision = np.linalg.inv(cov + 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov)))
    dists = np.stack([np.einsum("ij,jk,ik->i", queries - m, precision, queries - m) for m in means], 1)
    return -dists.min(1)


def measure(feats: dict, max_drop: float) -> dict:
    from posec3d.engine.calibration import apply_temperature, choose_threshold, fit_temperature

    labels = [str(x) for x in feats["labels"]]
    temperature = fit_temperature(feats["val_part_probs"].astype(np.float64), feats["val_part_labels"])
    probs = apply_temperature(feats["dev_probs"], temperature)
    in_vocab = feats["dev_split"] == "penn"
    truth = np.array([labels.index(str(x)) if str(x) in labels else -1 for x in feats["dev_label"]])
    correct = (probs.argmax(1) == truth)[in_vocab]
    bank, bank_labels, dev = feats["train_part_feats"], feats["train_part_labels"], feats["dev_feats"]
    scores = {"max_probability": probs.max(1)}
    for k in (1, 5, 10, 50):
        scores[f"knn_k{k}"] = kth_similarity(dev, bank, k)
    scores["mahalanobis"] = mahalanobis_score(dev, bank, bank_labels)
    scores["mahalanobis_l2"] = mahalanobis_score(unit(dev), unit(bank), bank_labels)
    if "outlier_feats" in feats:
        for k in (1, 5):
            scores[f"knn_k{k}_minus_outliers"] = scores[f"knn_k{k}"] - kth_similarity(dev, feats["outlier_feats"], k)
    rows = {}
    for name, s in scores.items():
        s = np.asarray(s, float)
        strict = choose_threshold(s[in_vocab], correct, s[~in_vocab], max_drop)
        # the OOD share under each of the four lowest correct clips' scores: after losing 0..3 of them
        lowest = np.sort(s[in_vocab][correct])[:4]
        rows[name] = {"auroc": auroc(s[in_vocab], s[~in_vocab]), "ood_rejected": strict.ood_rejected,
                      "ood_rejected_losing_1_2_3": [float(np.mean(s[~in_vocab] < t)) for t in lowest[1:]]}
    return {"temperature": temperature, "dev_in_clips": int(in_vocab.sum()), "dev_in_correct": int(correct.sum()),
            "dev_ood_clips": int((~in_vocab).sum()), "scores": rows}


def main() -> None:
    parser = model_parser(__doc__, REPO / "work_dirs/penn_action/feature_open_set.json")
    parser.add_argument("--reuse", action="store_true", help="Score the features kept next to --out (.feats.npz) "
                                                              "by an earlier run instead of computing them.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from posec3d.files import atomic_write_bytes, atomic_write_text

    feats_path = args.out.with_suffix(".feats.npz")
    if args.reuse and feats_path.is_file():
        with np.load(feats_path) as z:
            feats = {k: z[k] for k in z.files}
    else:
        feats = collect(FeatureReader(args.config, args.checkpoint))
        buf = io.BytesIO()
        np.savez(buf, **feats)
        atomic_write_bytes(feats_path, buf.getvalue())
    result = measure(feats, args.max_drop)
    print(f"{'score':28s} AUROC  OOD unknown (strict; losing 1 / 2 / 3 correct dev clips)")
    for name, row in result["scores"].items():
        more = " / ".join(f"{r:.2f}" for r in row["ood_rejected_losing_1_2_3"])
        print(f"{name:28s} {row['auroc']:.3f}  {row['ood_rejected']:.3f} ({more})")
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
