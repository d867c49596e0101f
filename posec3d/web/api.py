"""The HTTP API beside the pages: ``POST /api/v1/predict``, ``GET /api/v1/models``, ``GET /healthz``.

Plus two pieces of ASGI middleware that guard every route, pages included: HTTP Basic auth
(``--auth``) and the upload size limit (413 before the body is read when Content-Length says so,
or as soon as a streamed body passes the limit).
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Optional

from fastapi import APIRouter, FastAPI, File, Form, HTTPException, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from posec3d.errors import PoseC3DError, VideoError
from posec3d.web.service import MULTIPART_SLACK, Busy, TooLarge, WebService, safe_display_name

PUBLIC_PATHS = ("/healthz",)


def _error(status: int, message: str, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


async def _send_json(send, status: int, message: str, headers: Optional[dict] = None) -> None:
    body = json.dumps({"detail": message}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class UploadLimit:
    """413 for any request body over the limit (plus multipart slack), read or announced."""

    def __init__(self, app, max_bytes: int, max_mb: float):
        self.app, self.max_bytes, self.max_mb = app, max_bytes + MULTIPART_SLACK, max_mb

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"upload over the {self.max_mb:g} MB limit (--max-upload-mb)"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _send_json(send, 413, message, {"connection": "close"})
        seen = 0
        started = answered = False

        async def counted_receive():
            # Past the limit: answer 413 now and tell the app the client went away (an exception
            # here would reach the form parser, which turns any error into its own 400).
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_bytes and not started:
                    answered = True
                    await _send_json(send, 413, message, {"connection": "close"})
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event):
            nonlocal started
            if answered:  # whatever the app says after our 413 goes nowhere
                return
            started = started or event["type"] == "http.response.start"
            await send(event)

        await self.app(scope, counted_receive, guarded_send)


class BasicAuth:
    """HTTP Basic auth on every path but ``/healthz`` (browsers ask once and resend it)."""

    def __init__(self, app, user: str, password: str):
        self.app = app
        self.expected = base64.b64encode(f"{user}:{password}".encode()).decode()

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope.get("path") in PUBLIC_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        ok = False
        if scheme.lower() == "basic":
            try:
                ok = secrets.compare_digest(base64.b64decode(token, validate=True).decode("latin-1"),
                                            base64.b64decode(self.expected).decode("latin-1"))
            except (binascii.Error, ValueError):
                ok = False
        if ok:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        await _send_json(send, 401, "authentication required", {"www-authenticate": 'Basic realm="posec3d"'})


def api_router(service: WebService) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "model": service.model_name}

    @router.get("/api/v1/models")
    def models() -> dict:
        from posec3d.zoo import list_models

        rec = service.recognizer
        return {
            "serving": {"name": service.model_name, "num_classes": int(rec.num_classes),
                        "labels": list(rec.labels)[:int(rec.num_classes)],
                        "unknown_threshold": service.unknown_threshold},
            "models": [{"name": m.name, "description": m.description} for m in list_models()],
        }

    @router.post("/api/v1/predict")
    async def predict(video: UploadFile = File(...), topk: int = Form(5), per_person: bool = Form(False),
                      window: Optional[int] = Form(None), stride: Optional[int] = Form(None)) -> dict:
        if topk < 1:
            raise HTTPException(400, "topk must be >= 1")
        if window is not None and window < 1 or stride is not None and stride < 1:
            raise HTTPException(400, "window and stride must be >= 1")
        if stride is not None and window is None:
            raise HTTPException(400, "stride needs window")
        display = safe_display_name(video.filename)

        def work() -> dict:
            with service.request_dir() as folder:
                path = service.save_upload(video.file, folder, display)
                result = service.analyse(path, display, topk=topk, per_person=per_person, window=window,
                                         stride=stride)
                return result.to_json()

        try:
            return await run_in_threadpool(work)
        except TooLarge as e:
            raise HTTPException(413, str(e)) from None
        except Busy as e:
            raise HTTPException(503, str(e)) from None
        except VideoError as e:
            raise HTTPException(400, str(e)) from None
        except PoseC3DError as e:
            raise HTTPException(422, str(e)) from None
        finally:
            await video.close()

    return router


def install(app: FastAPI, service: WebService) -> None:
    """The API routes, one-line 400s for malformed form fields, and the guards."""
    app.include_router(api_router(service))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(400, f"{where}: {first.get('msg', 'invalid value')}")

    s = service.settings
    # Starlette wraps the last-added middleware outermost: auth first, then the size check.
    app.add_middleware(UploadLimit, max_bytes=s.max_upload_bytes, max_mb=s.max_upload_mb)
    if s.auth is not None:
        app.add_middleware(BasicAuth, user=s.auth[0], password=s.auth[1])
