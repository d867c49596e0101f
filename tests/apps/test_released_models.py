"""Released checkpoints by name: the catalogue's facts, `posec3d models`, `posec3d download` against
a loopback HTTP server with Range support, `test --model NAME` and `train --load-from NAME`.

The server serves the real golden checkpoints of ../shared/golden/models under OpenMMLab-style
names that end in their real sha256 prefixes; a user catalogue ($POSEC3D_MODELS) points at it
and $POSEC3D_HOME at a temporary cache.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import pickle
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from posec3d.apps.cli import app
from posec3d.errors import CheckpointError, ConfigError, DownloadError
from posec3d.zoo import resolve_model, weights_path
from posec3d.zoo.catalogue import LABEL_MAPS, REPO_ROOT, find_released, released_models
from posec3d.zoo.download import download

NTU60_M_CONFIG = REPO_ROOT / "configs/compat/slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint.py"
SLOWONLY = "slowonly_r50_ntu60_xsub_keypoint"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------------------------
# The packaged catalogue: facts and configs


def test_catalogue_entries_carry_consistent_facts():
    entries = [e for e in released_models() if e.catalogue.name == "released.json"]
    names = [e.name for e in entries]
    assert len(names) == len(set(names)) >= 40
    for e in entries:
        assert e.config.is_file(), e.name
        assert e.url and e.url.startswith(("http://download.openmmlab.com/", "https://download.openmmlab.com/")), e.name
        assert e.label_map.is_file() and len(e.label_map.read_text().splitlines()) == e.num_classes, e.name
        if e.source == "mmaction2":  # OpenMMLab names end in the first 8 hex digits of the sha256
            assert e.url.rsplit("/", 1)[1] == e.file
            assert re.fullmatch(r"[0-9a-f]{8}", e.sha256_prefix) and e.file.endswith(f"-{e.sha256_prefix}.pth")
            assert e.verification == "sha256 prefix"
        else:  # pyskl's .../joint.pth names carry no hash: checked by size and a strict load
            assert e.source == "pyskl" and "/pyskl/ckpt/" in e.url and e.sha256_prefix is None
            assert e.verification.startswith("size + load check")
        assert e.metric == ("mean_class_top1" if e.name.startswith("gym-") else "top1")
    by_name = {e.name: e for e in entries}
    # Spot checks against the model-zoo READMEs (SPEC §7).
    assert by_name["ntu60-xsub-slowonly-joint"].top1 == 93.7
    assert by_name["ntu60-xsub-slowonly-joint-mmaction2"].file == \
        "slowonly_r50_8xb16-u48-240e_ntu60-xsub-keypoint_20220815-38db104b.pth"
    assert by_name["k400-posec3d"].url.endswith("/k400_posec3d-041f49c6.pth")
    assert by_name["gym-x3d-shallow-limb"].top1 == 90.0
    assert by_name["ntu60-xsub-rgbpose-conv3d-mmaction2"].sha256_prefix == "ac7b0e77"


def _golden_keys(golden, stem) -> dict[str, tuple]:
    keys = {}
    for line in (golden / "models" / f"{stem}.keys.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape, _ = line.split("\t")
            keys[name] = tuple(int(v) for v in re.findall(r"\d+", shape))
    return keys


def _reblock(keys: dict, blocks: tuple) -> dict:
    """A ResNet key family with other stage depths: layer i gets blocks[i] blocks, block 0 as the
    golden block 0 (with its downsample) and the others as the golden block 1."""
    out = {k: v for k, v in keys.items() if not k.startswith("backbone.layer")}
    for i, n in enumerate(blocks, start=1):
        for b in range(n):
            src = f"backbone.layer{i}.{min(b, 1)}."
            out.update({f"backbone.layer{i}.{b}." + k[len(src):]: v for k, v in keys.items() if k.startswith(src)})
    return out


def _pathway(keys: dict, path: str, fc: str) -> dict:
    """rgb_only / pose_only keys: one pathway of RGBPoseConv3D without its lateral connections
    (the init checkpoint is made by the reverse renaming, SPEC §3.3)."""
    out = {}
    for k, v in keys.items():
        if k.startswith(f"backbone.{path}.") and "_lateral" not in k:
            out["backbone." + k[len(f"backbone.{path}."):]] = None
        elif k.startswith(f"cls_head.{fc}."):
            out["cls_head.fc_cls." + k.rsplit(".", 1)[1]] = None
    return out


def test_every_entry_config_builds_its_checkpoint_family(golden):
    """SPEC §8: each entry's config builds a model with the state-dict keys of its checkpoint family."""
    from posec3d.engine.config import load_config, model_cfg
    from posec3d.models import build_model

    slowonly = _golden_keys(golden, SLOWONLY)
    families = {
        "slowonly_r50_463": slowonly,
        "slowonly_r50_346": _reblock(slowonly, (3, 4, 6)),
        "c3d_light": _golden_keys(golden, "c3d_light_ntu60_xsub_joint"),
        "x3d_shallow": _golden_keys(golden, "x3d_shallow_ntu60_xsub_joint"),
        "rgbpose_conv3d": _golden_keys(golden, "rgbpose_conv3d_ntu60_full"),
    }
    families["rgb_only"] = _pathway(families["rgbpose_conv3d"], "rgb_path", "fc_rgb")
    families["pose_only"] = _pathway(families["rgbpose_conv3d"], "pose_path", "fc_pose")
    assert "backbone.layer3.5.conv3.conv.weight" in families["slowonly_r50_346"]
    assert "backbone.layer3.5.conv3.conv.weight" not in slowonly
    built = {}
    for e in released_models():
        if e.config not in built:
            with torch.device("meta"):  # shapes and names only: no memory, no init time
                model = build_model(model_cfg(load_config(e.config)))
            built[e.config] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        got, want = built[e.config], families[e.family]
        assert set(got) == set(want), (e.name, sorted(set(got) ^ set(want))[:6])
        for k, shape in want.items():
            if shape is not None and not k.startswith("cls_head."):
                assert got[k] == shape, (e.name, k)
        heads = [k for k in got if k.startswith("cls_head.") and k.endswith("weight")]
        assert all(got[k][0] == e.num_classes for k in heads), (e.name, {k: got[k] for k in heads})


# ----------------------------------------------------------------------------------------------
# A loopback server with Range support


class _Server:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next: set[str] = set()  # file names whose next response stops halfway
        self.ignore_range = False  # answer 200 with the whole file, as servers without Range do
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.cut_next:
                    server.cut_next.discard(name)
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(golden, tmp_path_factory):
    """The golden checkpoints under OpenMMLab-style names (real sha256 prefixes), a tampered one,
    and a user catalogue describing them."""
    root = tmp_path_factory.mktemp("served")
    src = golden / "models" / f"{SLOWONLY}.pth"
    prefix = _sha256(src)[:8]
    good = f"slowonly_r50_ntu60-xsub-keypoint_golden-{prefix}.pth"
    shutil.copy(src, root / good)
    tampered = bytearray(src.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    bad = f"slowonly_r50_ntu60-xsub-keypoint_tampered-{prefix}.pth"
    (root / bad).write_bytes(bytes(tampered))
    x3d = golden / "models" / "x3d_shallow_ntu60_xsub_joint.pth"
    shutil.copy(x3d, root / "joint.pth")  # pyskl style: no hash in the name
    shutil.copy(golden / "models" / "c3d_light_ntu60_xsub_joint.pth", root / "wrong.pth")
    server = _Server(root)
    common = dict(source="user", dataset="NTU RGB+D 60 XSub", num_classes=60,
                  label_map=str(LABEL_MAPS / "label_map_ntu60.txt"))
    x3d_config = str(REPO_ROOT / "configs/ntu60_xsub/x3d_shallow_joint.py")
    models = [
        dict(name="golden-slowonly", config=str(NTU60_M_CONFIG), file=good, url=f"{server.url}/{good}",
             sha256_prefix=prefix, family="slowonly_r50_463", **common),
        dict(name="golden-tampered", config=str(NTU60_M_CONFIG), file=bad, url=f"{server.url}/{bad}",
             sha256_prefix=prefix, **common),
        dict(name="golden-x3d-nohash", config=x3d_config, file="golden_x3d_joint.pth",
             url=f"{server.url}/joint.pth", sha256_prefix=None, **common),
        dict(name="golden-x3d-wrong", config=x3d_config, file="golden_x3d_wrong.pth",
             url=f"{server.url}/wrong.pth", sha256_prefix=None, **common),
        dict(name="golden-offline", config=str(NTU60_M_CONFIG), file=good, url=f"http://127.0.0.1:9/{good}",
             sha256_prefix=prefix, **common),
    ]
    catalogue = root / "lab_models.json"
    catalogue.write_text(json.dumps({"models": models}))
    yield {"server": server, "catalogue": catalogue, "good": good, "bad": bad, "src": src, "prefix": prefix}
    server.close()


@pytest.fixture
def env(served, tmp_path, monkeypatch):
    monkeypatch.setenv("POSEC3D_MODELS", str(served["catalogue"]))
    monkeypatch.setenv("POSEC3D_HOME", str(tmp_path / "home"))
    served["server"].requests.clear()
    return tmp_path / "home" / "checkpoints"


def _cli(*args):
    return CliRunner().invoke(app, list(args))


def _main(capsys, monkeypatch, *args) -> tuple[int, str]:
    """Run the real entry point (its error handling included): (exit code, stderr)."""
    from posec3d.apps.cli import main

    monkeypatch.setenv("COLUMNS", "1000")  # rich wraps a message at the terminal width otherwise
    monkeypatch.setattr("sys.argv", ["posec3d", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main()
    return exit_.value.code, capsys.readouterr().err


def test_download_streams_with_progress_checks_the_prefix_and_renames(served, env):
    result = _cli("download", "golden-slowonly")
    assert result.exit_code == 0, result.output
    final = env / served["good"]
    assert final.is_file() and not list(env.glob("*.part"))
    assert _sha256(final) == _sha256(served["src"])
    assert "sha256 prefix" in result.output and served["prefix"] in result.output
    size = served["src"].stat().st_size
    assert f"{size}/{size}" in result.output  # the progress bar, in bytes
    # The cached file is now what --model NAME uses; a second download only re-checks it.
    assert resolve_model("golden-slowonly").checkpoint == final
    again = _cli("download", "golden-slowonly")
    assert again.exit_code == 0 and "already downloaded" in again.output
    assert [r for r in served["server"].requests] == [(served["good"], None)]
    # Fine-tuning finds it by name, by its URL, or by a path ending in its hashed file name.
    for location in ("golden-slowonly", find_released("golden-slowonly").url, f"checkpoints/{served['good']}"):
        assert weights_path(location) == str(final)
    listed = {r["name"]: r for r in json.loads(_cli("models", "--json").output)["models"]}
    assert listed["golden-slowonly"]["downloaded"] is True and listed["golden-slowonly"]["path"] == str(final)
    assert listed["golden-tampered"]["downloaded"] is False
    assert listed["ntu60-xsub-slowonly-joint"]["verified_by"].startswith("size + load check")


def test_progress_callback_sees_every_byte(served, env):
    seen = {"total": None, "bytes": 0}

    def progress(advance=0, total=None, **_):
        seen["total"] = total if total is not None else seen["total"]
        seen["bytes"] += advance

    done = download(find_released("golden-slowonly"), progress=progress)
    size = served["src"].stat().st_size
    assert seen == {"total": size, "bytes": size} and done.size == size


def test_a_connection_cut_halfway_resumes_with_range(served, env):
    served["server"].cut_next.add(served["good"])
    done = download(find_released("golden-slowonly"))
    assert done.reconnects == 1 and done.sha256 == _sha256(served["src"])
    (first, r1), (second, r2) = served["server"].requests
    size = served["src"].stat().st_size
    assert r1 is None and r2 == f"bytes={size // 2}-"


def test_a_partial_file_from_an_earlier_run_resumes(served, env):
    env.mkdir(parents=True)
    data = served["src"].read_bytes()
    (env / (served["good"] + ".part")).write_bytes(data[:3_000_000])
    result = _cli("download", "golden-slowonly")
    assert result.exit_code == 0, result.output
    assert "resumed from byte 3000000" in result.output
    assert served["server"].requests == [(served["good"], "bytes=3000000-")]
    assert (env / served["good"]).read_bytes() == data


def test_a_server_without_range_support_restarts_from_zero(served, env):
    env.mkdir(parents=True)
    data = served["src"].read_bytes()
    (env / (served["good"] + ".part")).write_bytes(b"\0" * 1000)  # not even the right bytes
    seen = []
    served["server"].ignore_range = True
    try:
        done = download(find_released("golden-slowonly"), progress=lambda advance=0, **_: seen.append(advance))
    finally:
        served["server"].ignore_range = False
    assert done.path.read_bytes() == data
    assert sum(seen) == len(data)  # the bar counts the new bytes only


def test_a_tampered_file_is_rejected_and_removed(served, env, capsys, monkeypatch):
    code, err = _main(capsys, monkeypatch, "download", "golden-tampered")
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(rf"sha256 starts [0-9a-f]{{8}}, the file name says {served['prefix']}; the file was deleted",
                     err), err
    assert not any(env.iterdir())
    with pytest.raises(CheckpointError, match="posec3d download golden-tampered"):
        resolve_model("golden-tampered")


def test_files_without_a_hash_are_checked_by_loading(served, env):
    done = download(find_released("golden-x3d-nohash"))
    assert done.checked.startswith("size + load check") and done.path.is_file()
    with pytest.raises(CheckpointError, match="does not load into the model of x3d_shallow_joint.py.*deleted"):
        download(find_released("golden-x3d-wrong"))  # a C3D file under an X3D config
    assert not (env / "golden_x3d_wrong.pth").exists() and not list(env.glob("*.part"))


def test_no_network_gives_one_line_with_the_url_and_the_place(served, env, capsys, monkeypatch):
    code, err = _main(capsys, monkeypatch, "download", "golden-offline")
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "no connection to http://127.0.0.1:9/" in err
    assert f"save it as {env / served['good']}" in err
    with pytest.raises(DownloadError):
        download(find_released("golden-offline"))


def test_model_names_never_download(served, env, capsys, monkeypatch):
    for args in (["test", "--model", "golden-slowonly", "--ann-file", "x.pkl"],
                 ["demo", "video.mp4", "-o", "out.mp4", "--model", "golden-slowonly"]):
        code, err = _main(capsys, monkeypatch, *args)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "not downloaded" in err and err.strip().endswith("run: posec3d download golden-slowonly"), err
    assert served["server"].requests == []
    with pytest.raises(ConfigError, match="unknown model 'no-such'.*penn-action"):
        resolve_model("no-such")
    # mmaction2's UCF101 config loads the K400 pretrain by URL: that is the released k400-posec3d.
    config = "configs/ucf101/slowonly_kinetics400-pretrained-r50_8xb16-u48-120e_ucf101-split1-keypoint.py"
    code, err = _main(capsys, monkeypatch, "train", config)
    assert code == 1 and err.strip().endswith("not downloaded; run: posec3d download k400-posec3d"), err


def test_a_labs_own_folder_of_checkpoints(golden, tmp_path, monkeypatch):
    """$POSEC3D_MODELS: entries relative to the JSON file, a checkpoint already on disk, no URL."""
    lab = tmp_path / "lab"
    (lab / "ckpt").mkdir(parents=True)
    shutil.copy(golden / "models" / "x3d_shallow_ntu60_xsub_joint.pth", lab / "ckpt" / "x3d_e24.pth")
    shutil.copy(REPO_ROOT / "configs/ntu60_xsub/x3d_shallow_joint.py", lab / "x3d.py")
    (lab / "labels.txt").write_text("".join(f"action {i}\n" for i in range(60)))
    (lab / "models.json").write_text(json.dumps({"models": [
        {"name": "lab-x3d", "config": "x3d.py", "path": "ckpt/x3d_e24.pth", "file": "x3d_e24.pth",
         "label_map": "labels.txt", "num_classes": 60, "top1": 91.0}]}))
    monkeypatch.setenv("POSEC3D_MODELS", str(lab / "models.json"))
    monkeypatch.setenv("POSEC3D_HOME", str(tmp_path / "home"))
    m = resolve_model("lab-x3d")
    assert (m.config, m.checkpoint, m.label_map) == (lab / "x3d.py", lab / "ckpt/x3d_e24.pth", lab / "labels.txt")
    assert m.source == "user" and m.labels()[59] == "action 59"
    row = {r["name"]: r for r in json.loads(_cli("models", "--json").output)["models"]}["lab-x3d"]
    assert row["kind"] == "user" and row["downloaded"] and row["ready"]
    (lab / "models.json").write_text('{"models": [{"name": "broken"}]}')
    with pytest.raises(ConfigError, match=r"models.json: model entry 'broken' lacks config, file"):
        resolve_model("lab-x3d")
    # A lab entry named like the bundled model could never be reached by --model: refused by name.
    (lab / "models.json").write_text(json.dumps({"models": [
        {"name": "penn-action", "config": "x3d.py", "path": "ckpt/x3d_e24.pth", "file": "x3d_e24.pth"}]}))
    with pytest.raises(ConfigError, match=r"models.json: model name 'penn-action' is the bundled model's"):
        resolve_model("lab-x3d")


# ----------------------------------------------------------------------------------------------
# Using the downloaded file


def _golden_pair_annotations(golden) -> list[dict]:
    """The two synthetic cases whose NTU60 test-pipeline heatmaps fed the golden run (num_clips=1,
    flip), in the order of inputs_pipeline.npz."""
    annos = []
    for i, case in enumerate(("pose_p2_f100", "pose_p2_f100_partial_edge")):
        with np.load(golden / "transforms" / f"{case}.npz") as z:
            shape = tuple(int(v) for v in z["input/img_shape"])
            annos.append({"frame_dir": case, "label": i, "img_shape": shape, "original_shape": shape,
                          "total_frames": int(z["input/total_frames"]), "keypoint": z["input/keypoint"],
                          "keypoint_score": z["input/keypoint_score"]})
    return annos


@pytest.mark.slow
def test_test_and_train_from_the_downloaded_checkpoint(served, env, golden, data_dir, tmp_path):
    assert _cli("download", "golden-slowonly").exit_code == 0
    # test --model NAME: the released config + the cached file give mmaction2's probabilities.
    ann = tmp_path / "golden_cases.pkl"
    with open(ann, "wb") as f:
        pickle.dump({"split": {"test": ["pose_p2_f100", "pose_p2_f100_partial_edge"]},
                     "annotations": _golden_pair_annotations(golden)}, f)
    scores = tmp_path / "scores.pkl"
    result = _cli("test", "--model", "golden-slowonly", "--ann-file", str(ann), "--split", "test",
                  "--num-clips", "1", "--flip", "--out", str(scores), "--threads", "1",
                  "test_dataloader.num_workers=0", "test_dataloader.persistent_workers=False")
    assert result.exit_code == 0, result.output
    with open(scores, "rb") as f:
        got = np.stack(pickle.load(f))
    with np.load(golden / "models" / f"{SLOWONLY}.outputs.npz") as z:
        want = z["pipeline_kp/prob_avg"]
    np.testing.assert_allclose(got, want, atol=1e-5)

    # train --load-from NAME: fine-tunes from it (real NTU skeletons, two short iterations).
    real = data_dir / "skeleton" / "ntu60_mediapipe_coco17_samples.pkl"
    work = tmp_path / "tuned"
    opts = ["train_dataloader.dataset.dataset.split=xsub_val", "train_dataloader.dataset.times=1",
            f"train_dataloader.dataset.dataset.ann_file={real}", "train_dataloader.batch_size=2",
            "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
            "train_cfg.max_epochs=1", "param_scheduler.0.T_max=1", "optim_wrapper.optimizer.lr=0.001",
            "train_dataloader.dataset.dataset.pipeline.0.clip_len=12",
            "train_dataloader.dataset.dataset.pipeline.5.scale=(32,32)"]
    result = _cli("train", str(NTU60_M_CONFIG), "--load-from", "golden-slowonly", "--work-dir", str(work),
                  "--seed", "0", "--threads", "1", "--cfg-options", *opts)
    assert result.exit_code == 0, result.output
    assert "loaded weights from" in result.output and served["good"] in result.output
    assert "2 iterations" in result.output
    tuned = torch.load(work / "latest.pth", map_location="cpu", weights_only=True)["state_dict"]
    start = torch.load(served["src"], map_location="cpu", weights_only=True)["state_dict"]
    convs = [k for k in start if k.endswith("conv.weight")]
    assert any(not torch.equal(tuned[k], start[k]) for k in convs), "nothing trained"
    for k in convs:  # small steps from the released weights, not a fresh initialisation
        assert (tuned[k] - start[k]).norm() < 0.05 * start[k].norm(), k


def test_load_from_a_model_of_another_backbone_is_one_error(served, env, data_dir, tmp_path, capsys, monkeypatch):
    """The MSR Action3D config builds X3D-shallow: SlowOnly weights do not fit, which is an error
    rather than a warning followed by training from scratch."""
    assert _cli("download", "golden-slowonly").exit_code == 0
    real = data_dir / "datasets" / "msr_action3d" / "msr_action3d_kinect20_proj2d.pkl"
    code, err = _main(capsys, monkeypatch, "train", "configs/msr_action3d/x3d_shallow_xsub.py", "--load-from",
                      "golden-slowonly", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                      f"data.train.dataset.ann_file={real}", "data.workers_per_gpu=0")
    assert code == 1
    assert "none of its 215 backbone tensors fit the model the config builds (X3D" in err, err
    assert not (tmp_path / "w" / "latest.pth").exists()
