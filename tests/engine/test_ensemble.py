"""`posec3d ensemble` on the real mmaction2 fusion dumps, checked against plain numpy."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from posec3d.engine.ensemble import ensemble, load_scores
from posec3d.errors import AnnotationError, ConfigError


def _numpy_reference(paths, weights, softmax=False):
    mats, labels = [], None
    for p in paths:
        with open(p, "rb") as f:
            items = pickle.load(f)  # trusted test fixture: plain pickle is fine here
        mats.append(np.stack([it["pred_score"].numpy() for it in items]).astype(np.float64))
        labels = np.array([int(it["gt_label"][0]) for it in items])
    if softmax:
        mats = [np.exp(m) / np.exp(m).sum(1, keepdims=True) for m in mats]
    fused = sum(w * m for w, m in zip(weights, mats))
    top1 = float(np.mean(fused.argmax(1) == labels))
    top5 = float(np.mean([labels[i] in np.argsort(fused[i])[-5:] for i in range(len(labels))]))
    return top1, top5


@pytest.fixture
def fusion_paths(data_dir):
    d = data_dir / "skeleton" / "fusion_scores"
    return [str(d / "joint.pkl"), str(d / "bone.pkl")]


@pytest.mark.parametrize("weights,softmax", [([1, 1], False), ([2, 1], False), ([1, 3], True)])
def test_fused_matches_numpy(fusion_paths, weights, softmax):
    got = ensemble(fusion_paths, weights, apply_softmax=softmax)
    top1, top5 = _numpy_reference(fusion_paths, weights, softmax)
    assert got["num_samples"] == 60
    assert got["top1"] == pytest.approx(top1) and got["top5"] == pytest.approx(top5)


def test_pyskl_list_dump_with_ann_file(tmp_path, fusion_paths):
    # A pyskl dump is a plain list of float32 arrays; labels then come from an annotation file.
    items = pickle.load(open(fusion_paths[0], "rb"))
    labels = [int(it["gt_label"][0]) for it in items]
    dump = tmp_path / "joint_pyskl.pkl"
    pickle.dump([it["pred_score"].numpy().astype(np.float32) for it in items], open(dump, "wb"))
    annos = [dict(frame_dir=f"v{i}", label=l, total_frames=1, img_shape=(8, 8), original_shape=(8, 8),
                  keypoint=np.zeros((1, 1, 17, 2), np.float32), keypoint_score=np.ones((1, 1, 17), np.float32))
             for i, l in enumerate(labels)]
    ann = tmp_path / "ann.pkl"
    pickle.dump(dict(split=dict(test=[a["frame_dir"] for a in annos]), annotations=annos), open(ann, "wb"))
    got = ensemble([str(dump), fusion_paths[1]], ann_file=str(ann), split="test")
    assert got["top1"] == pytest.approx(_numpy_reference(fusion_paths, [1, 1])[0])
    with pytest.raises(ConfigError, match="--ann-file"):
        ensemble([str(dump)])


def test_errors_name_the_file(tmp_path, fusion_paths):
    bad = tmp_path / "short.pkl"
    pickle.dump([np.zeros(120, np.float32)] * 10, open(bad, "wb"))
    with pytest.raises(AnnotationError, match="short.pkl"):
        ensemble([fusion_paths[0], str(bad)])
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(subprocess.Popen))
    with pytest.raises(AnnotationError, match="unsafe"):
        load_scores(evil)


def test_cli_json(tmp_path, fusion_paths):
    out = tmp_path / "fused.json"
    r = subprocess.run([sys.executable, "-m", "posec3d", "ensemble", *fusion_paths, "--weights", "2", "1",
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert m["weights"] == [2.0, 1.0]
    assert m["top1"] == pytest.approx(_numpy_reference(fusion_paths, [2, 1])[0])
    assert 0 <= m["mean_class_accuracy"] <= 1
