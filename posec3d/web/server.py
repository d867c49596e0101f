"""Put the API and the pages on one FastAPI app and run it with uvicorn."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from posec3d.web.service import Settings, WebService


def build_app(service: WebService):
    """The FastAPI app: API routes and guards first, then the Gradio pages mounted at ``/``."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # Gradio's uploads and the outputs it serves stay under this server's own temporary folder.
    os.environ["GRADIO_TEMP_DIR"] = str(service.temp_root / "gradio")
    import gradio as gr
    from fastapi import FastAPI

    from posec3d.web import api
    from posec3d.web.pages import build_pages

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        # Cleanup here, not after uvicorn.run returns: on SIGTERM / Ctrl-C uvicorn shuts the app
        # down and then re-raises the signal, which ends the process before any later code runs.
        yield
        service.close()

    app = FastAPI(title="posec3d", docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    api.install(app, service)
    examples = service.settings.examples
    return gr.mount_gradio_app(app, build_pages(service), path="/", ssr_mode=False,
                               max_file_size=service.settings.max_upload_bytes,
                               allowed_paths=[str(examples)] if examples else None,
                               footer_links=[])


def load_service(settings: Settings) -> WebService:
    from posec3d.stream import load_recognizer
    from posec3d.zoo import DEFAULT_MODEL

    recognizer = load_recognizer(settings.model, settings.config, settings.checkpoint, settings.label_map,
                                 device=settings.device)
    name = Path(settings.config).stem if settings.config else settings.model or DEFAULT_MODEL
    return WebService(settings, recognizer, model_name=name)


def run(settings: Settings, *, log=print) -> None:
    import uvicorn

    service = load_service(settings)
    try:
        app = build_app(service)
        log(f"posec3d serve: http://{settings.host}:{settings.port}/ (API: /api/v1/predict, /api/v1/models, "
            "/healthz)")
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        service.close()
