"""The HTTP API of `posec3d serve` against a real server process: predict, models, healthz, limits.

The server runs with ``--unknown-threshold 0.99``, so the open-set flag is exercised too (the
short clip's best score is below it: every answer is unknown, its label still the best guess).
"""
from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.web.conftest import MAX_UPLOAD_MB, cut_clip, start_server, stop_server

pytestmark = pytest.mark.slow

THRESHOLD = 0.99
OPTIONS = dict(topk=2, per_person="true", window=24, stride=12)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("serve-api"), "--concurrency", "2",
                       "--unknown-threshold", str(THRESHOLD))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def clips(tmp_path_factory, data_dir):
    """Two seconds of a real clip (short side 240: a person and a prediction, cheap to analyse) and
    half a second of it (to show the server still answers)."""
    folder = tmp_path_factory.mktemp("clips")
    src = data_dir / "videos/kinetics/clean_and_jerk.mp4"
    return (cut_clip(src, folder / "clean_and_jerk_2s.mp4", 2.0, short_side=240),
            cut_clip(src, folder / "clean_and_jerk_half_s.mp4", 0.5, short_side=240))


@pytest.fixture(scope="module")
def references(clips):
    """The `posec3d demo --json` documents of the short clip (plain, and with OPTIONS), computed in
    this process from one pose extraction (what ``analyse_video`` does)."""
    import torch

    from posec3d.pose.extract import extract_video
    from posec3d.stream import classify_annotation, load_recognizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recognizer = load_recognizer()
        annotation = extract_video(clips[0])
        plain = classify_annotation(recognizer, clips[0].name, annotation, topk=3,
                                    unknown_threshold=THRESHOLD).to_json()
        options = classify_annotation(recognizer, clips[0].name, annotation, topk=2, per_person=True, window=24,
                                      stride=12, unknown_threshold=THRESHOLD).to_json()
    finally:
        torch.set_num_threads(threads)
    return plain, options


def _predict(url, path, name=None, **fields):
    with open(path, "rb") as f:
        return httpx.post(f"{url}/api/v1/predict", files={"video": (name or path.name, f, "video/mp4")},
                          data={k: str(v) for k, v in fields.items()}, timeout=300)


def _same(doc, ref):
    """Equal documents, scores to 1e-4 (two processes, same code and input)."""
    got, want = list(_walk(doc)), list(_walk(ref))
    assert [k for k, _ in got] == [k for k, _ in want]
    for (key, a), (_, b) in zip(got, want):
        assert a == (pytest.approx(b, abs=1e-4) if isinstance(b, float) else b), key


def _walk(value, path=""):
    if isinstance(value, dict):
        for k in value:
            yield from _walk(value[k], f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, value


def _still_serving(server, tiny):
    answer = _predict(server.url, tiny, topk=1)
    assert answer.status_code == 200 and answer.json()["label"] == "clean_and_jerk"


def test_health_and_models(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok", "model": "penn-action"}
    models = httpx.get(f"{server.url}/api/v1/models").json()
    from posec3d.zoo import list_models, resolve_model

    assert [m["name"] for m in models["models"]] == [m.name for m in list_models()]
    assert models["serving"]["name"] == "penn-action"
    assert models["serving"]["labels"] == resolve_model("penn-action").labels()
    assert models["serving"]["unknown_threshold"] == THRESHOLD


def test_eight_concurrent_predictions_match_the_demo_document(server, clips, references):
    plain, options = references
    assert plain["unknown"] is True and plain["score"] < THRESHOLD and plain["label"] == "clean_and_jerk"
    fields = [dict(topk=3)] * 7 + [OPTIONS]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda f: _predict(server.url, clips[0], **f), fields))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers]
    for answer in answers[:7]:
        _same(answer.json(), plain)
    _same(answers[7].json(), options)
    assert [(w["start"], w["end"]) for w in options["timeline"]][:2] == [(0, 24), (12, 36)]
    assert server.temp_files() == []  # every request's folder is gone


def test_oversize_upload_is_413_and_the_server_keeps_serving(server, tmp_path, clips):
    big = tmp_path / "big.mp4"
    big.write_bytes(clips[0].read_bytes() * (MAX_UPLOAD_MB * 2**20 // clips[0].stat().st_size + 2))
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
    _still_serving(server, clips[1])
    assert server.temp_files() == []


def test_text_file_is_400_in_one_line_and_the_client_path_is_never_opened(server, tmp_path, clips):
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    answer = _predict(server.url, text)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail == "notes.txt: not a video (no frame PyAV can decode)"
    _still_serving(server, clips[1])
    # A client-named path is only ever a label: the uploaded bytes are what gets analysed.
    assert _predict(server.url, text, name="/etc/../etc/passwd").json()["detail"].startswith("passwd: not a video")
    bad = httpx.post(f"{server.url}/api/v1/predict", data={"topk": "x"}, files={"video": ("a.mp4", b"x")})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("topk")
    assert httpx.post(f"{server.url}/api/v1/predict", data={"stride": "4"},
                      files={"video": ("a.mp4", b"x")}).json() == {"detail": "stride needs window"}
    assert server.temp_files() == []
