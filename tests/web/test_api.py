"""The HTTP API of `posec3d serve` against a real server process: predict, models, healthz, limits."""
from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tests.web.conftest import MAX_UPLOAD_MB, cut_clip, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("serve-api"), "--concurrency", "2")
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, data_dir):
    """Two seconds of a real clip, narrowed: enough for a person and a prediction, cheap to analyse."""
    return cut_clip(data_dir / "videos/kinetics/clean_and_jerk.mp4",
                    tmp_path_factory.mktemp("clips") / "clean_and_jerk_2s.mp4", 2.0, short_side=240)


@pytest.fixture(scope="module")
def reference(short_clip):
    """The `posec3d demo --json` document of the short clip, computed in this process."""
    import torch

    from posec3d.stream import analyse_video, load_recognizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        doc = analyse_video(short_clip, load_recognizer(), topk=3).to_json()
    finally:
        torch.set_num_threads(threads)
    doc["video"] = short_clip.name
    return doc


def _predict(url, path, name=None, **fields):
    with open(path, "rb") as f:
        return httpx.post(f"{url}/api/v1/predict", files={"video": (name or path.name, f, "video/mp4")},
                          data={k: str(v) for k, v in fields.items()}, timeout=300)


def _close(doc, ref):
    assert doc["video"] == ref["video"]
    assert [p["label"] for p in doc["predictions"]] == [p["label"] for p in ref["predictions"]]
    assert [p["score"] for p in doc["predictions"]] == pytest.approx([p["score"] for p in ref["predictions"]],
                                                                       abs=1e-4)
    assert (doc["num_frames"], doc["num_persons"]) == (ref["num_frames"], ref["num_persons"])
    assert (doc["label"], doc["unknown"]) == (ref["label"], ref["unknown"])


def test_health_and_models(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "model": "penn-action"}
    models = httpx.get(f"{server.url}/api/v1/models").json()
    from posec3d.zoo import list_models, resolve_model

    assert [m["name"] for m in models["models"]] == [m.name for m in list_models()]
    assert models["serving"]["name"] == "penn-action"
    assert models["serving"]["labels"] == resolve_model("penn-action").labels()


def test_eight_concurrent_predictions_match_the_demo_document(server, short_clip, reference):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _predict(server.url, short_clip, topk=3), range(8)))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    for a in answers:
        _close(a.json(), reference)
    assert server.temp_files() == []  # every request's folder is gone


def test_oversize_upload_is_413_and_the_server_keeps_serving(server, tmp_path, short_clip, reference):
    big = tmp_path / "big.mp4"
    big.write_bytes(short_clip.read_bytes() * (MAX_UPLOAD_MB * 2**20 // short_clip.stat().st_size + 2))
    answer = _predict(server.url, big)
    assert answer.status_code == 413 and "MB limit" in answer.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b"--x\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a.mp4\"\r\n\r\n"
        for _ in range(MAX_UPLOAD_MB + 2):
            yield b"\0" * 2**20
        yield b"\r\n--x--\r\n"

    streamed = httpx.post(f"{server.url}/api/v1/predict", content=chunks(), timeout=60,
                          headers={"content-type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413
    _close(_predict(server.url, short_clip, topk=3).json(), reference)
    assert server.temp_files() == []


def test_text_file_is_400_in_one_line_and_the_client_path_is_never_opened(server, tmp_path, short_clip, reference):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    answer = _predict(server.url, text)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("notes.txt: not a video") and "\n" not in detail
    # A client-named path is only ever a label: the uploaded bytes are what gets analysed.
    named = _predict(server.url, short_clip, name="/etc/../etc/passwd", topk=3).json()
    assert named["video"] == "passwd" and named["predictions"] == reference["predictions"]
    bad = httpx.post(f"{server.url}/api/v1/predict", data={"topk": "x"}, files={"video": ("a.mp4", b"x")})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("topk")
    assert httpx.post(f"{server.url}/api/v1/predict", data={"stride": "4"},
                      files={"video": ("a.mp4", b"x")}).json() == {"detail": "stride needs window"}
    _close(_predict(server.url, short_clip, topk=3).json(), reference)
    assert server.temp_files() == []


def test_windows_and_persons_follow_the_demo_options(server, short_clip):
    doc = _predict(server.url, short_clip, topk=2, per_person="true", window=24, stride=12).json()
    frames = doc["num_frames"]
    assert [(w["start"], w["end"]) for w in doc["timeline"]][0] == (0, 24)
    assert doc["timeline"][-1]["end"] == frames
    assert len(doc["predictions"]) == 2 and doc["persons"][0]["person"] == 0
    json.dumps(doc)


def test_auth_guards_everything_but_healthz_and_the_open_set_threshold(tmp_path_factory, short_clip, reference):
    srv = start_server(tmp_path_factory.mktemp("serve-auth"), "--auth", "ana:s3cret", "--unknown-threshold", "0.99")
    try:
        assert httpx.get(f"{srv.url}/healthz").status_code == 200
        assert httpx.get(f"{srv.url}/api/v1/models").status_code == 401
        assert httpx.get(f"{srv.url}/").status_code == 401
        assert httpx.get(f"{srv.url}/api/v1/models", auth=("ana", "wrong")).status_code == 401
        assert httpx.get(f"{srv.url}/api/v1/models", auth=("ana", "s3cret")).status_code == 200
        assert httpx.get(f"{srv.url}/", auth=("ana", "s3cret")).status_code == 200
        with open(short_clip, "rb") as f:
            doc = httpx.post(f"{srv.url}/api/v1/predict", files={"video": (short_clip.name, f)}, data={"topk": "3"},
                             auth=("ana", "s3cret"), timeout=300).json()
        # Below --unknown-threshold the result is unknown; the label stays the best guess.
        assert reference["score"] < 0.99
        assert doc["unknown"] is True and doc["unknown_threshold"] == 0.99
        assert doc["label"] == reference["label"] and doc["predictions"] == reference["predictions"]
    finally:
        stop_server(srv)
