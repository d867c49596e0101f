"""`posec3d serve` in a real browser: Debian's headless Chromium driven by Playwright's Python API.

No browser download: Playwright launches /usr/bin/chromium (apt-get install chromium, as .ci/run
does). The Camera tab is fed by Chromium's fake camera playing a y4m made from a real clip.
Screenshots land in the test's temporary folder (the README's one was copied from there).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.web.conftest import start_server, stop_server, write_y4m

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("POSEC3D_CHROMIUM", "/usr/bin/chromium"))
playwright_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright "
                                     "(installed by .[test])")
if not CHROMIUM.exists():
    raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium chromium-driver (see .ci/run)")

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
LABEL_WITHIN_S = 15
AUTH = ("ana", "s3cret")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-browser")


@pytest.fixture(scope="module")
def server(folder, data_dir):
    srv = start_server(folder, "--examples", str(data_dir / "videos/kinetics"), "--auth", ":".join(AUTH))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def browser(folder, data_dir):
    camera = write_y4m(data_dir / "videos/kinetics/clean_and_jerk.mp4", folder / "camera.y4m", seconds=4)
    profile = folder / "chromium-profile"
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, viewport={"width": 1400, "height": 1000},
            http_credentials={"username": AUTH[0], "password": AUTH[1]},
            args=CHROMIUM_FLAGS + [f"--use-file-for-fake-video-capture={camera}"])
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#video-input", timeout=60_000)
    yield page
    page.close()


def test_auth_guards_every_page_and_route_but_healthz(server):
    import httpx

    assert httpx.get(f"{server.url}/healthz").status_code == 200
    for path in ("/", "/api/v1/models"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path, auth=("ana", "wrong")).status_code == 401
        assert httpx.get(server.url + path, auth=AUTH).status_code == 200
    video = httpx.post(f"{server.url}/api/v1/predict", files={"video": ("a.mp4", b"x")})
    assert video.status_code == 401 and video.headers["www-authenticate"].startswith("Basic")


def _video_duration(page, selector: str) -> float:
    handle = page.wait_for_function(
        f"() => {{ const v = document.querySelector('{selector} video'); "
        "return v && v.duration > 0 ? v.duration : null }", timeout=60_000)
    return float(handle.json_value())


def test_upload_shows_clean_and_jerk_first_and_plays_the_annotated_video(page, server, folder, data_dir):
    page.set_input_files("#video-input input[type=file]", str(data_dir / "videos/kinetics/clean_and_jerk.mp4"))
    page.wait_for_selector("#video-input video", timeout=60_000)
    page.get_by_text("Options").click()
    page.fill("#window input", "48")
    page.click("#video-run")
    # The progress bar follows the pose extraction (library callback -> gr.Progress, across threads).
    page.wait_for_function("() => /poses - \\d/.test(document.body.innerText)", timeout=120_000)
    top = page.wait_for_selector("#top-label-text", timeout=180_000)
    assert top.inner_text().startswith("clean_and_jerk ")
    # The bar chart lists the same ranking; the JSON document offered for download is the API's.
    assert _video_duration(page, "#video-output") > 0
    page.wait_for_timeout(500)
    page.screenshot(path=str(folder / "video_tab.png"), full_page=True)
    assert "clean_and_jerk" in page.inner_text("#persons-table")
    assert page.is_visible("#timeline-chart")
    # The outputs were copied into Gradio's cache (pruned by age) and the request's folder is gone.
    assert server.temp_files() == []


def test_camera_tab_labels_a_person_within_15_s(page, folder):
    page.get_by_role("tab", name="Camera").click()
    page.click("#camera-input [title='grant webcam access'] button", timeout=30_000)
    page.click("#camera-input button[aria-label='capture photo']", timeout=30_000)  # Gradio's "Record"
    started = time.monotonic()
    label = page.wait_for_selector("#camera-labels .camera-label", timeout=LABEL_WITHIN_S * 1000)
    elapsed = time.monotonic() - started
    text = label.inner_text()
    page.screenshot(path=str(folder / "camera_tab.png"), full_page=True)
    assert elapsed <= LABEL_WITHIN_S
    assert text.startswith("#") and ("clean_and_jerk" in text or "unknown" in text), text


def test_dataset_tab_summarises_and_draws_a_sample(page, server, folder, data_dir):
    from posec3d.data.annotations import load_annotations

    pkl = data_dir / "skeleton/ntu60_mediapipe_coco17_samples.pkl"
    samples = load_annotations(pkl)
    page.get_by_role("tab", name="Dataset").click()
    page.set_input_files("#dataset-file input[type=file]", str(pkl))
    page.wait_for_timeout(1000)
    page.click("#dataset-load")
    page.wait_for_function("() => document.querySelector('#dataset-summary').innerText.includes('samples:')",
                           timeout=60_000)
    summary = page.inner_text("#dataset-summary")
    assert f"samples: {len(samples)}," in summary and pkl.name in summary
    page.click("#dataset-render")
    duration = _video_duration(page, "#dataset-video")
    fps = 30  # vis's default when a sample has no source video
    assert duration == pytest.approx(samples[0]["total_frames"] / fps, abs=0.1)
    page.screenshot(path=str(folder / "dataset_tab.png"), full_page=True)
    assert server.temp_files() == []
    if os.environ.get("POSEC3D_KEEP_SCREENSHOTS"):
        shutil.copytree(folder, os.environ["POSEC3D_KEEP_SCREENSHOTS"], dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.y4m", "chromium-profile", "posec3d-serve-*"))
