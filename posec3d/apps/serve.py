"""`posec3d serve`: the web app (Video, Camera and Dataset tabs) and its HTTP API."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from posec3d.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WEB_EXTRA = {"gradio": "gradio", "fastapi": "fastapi", "uvicorn": "uvicorn", "python-multipart": "multipart"}


def _installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (gradio takes seconds to import)."""
    from importlib.util import find_spec

    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
        return False


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="TCP port."),
    model: Optional[str] = typer.Option(None, "--model", help="Bundled model name (see `posec3d models`); "
                                        "default: penn-action."),
    config: Optional[Path] = typer.Option(None, "--config", help="Config file (pyskl / mmaction2 / posec3d)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint matching --config."),
    label_map: Optional[Path] = typer.Option(None, "--label-map", help="Class names, one per line."),
    max_upload_mb: float = typer.Option(200.0, "--max-upload-mb", min=0.001, help="Largest upload accepted "
                                        "(larger: HTTP 413)."),
    auth: Optional[str] = typer.Option(None, "--auth", help="USER:PASS: HTTP Basic auth on every page and "
                                       "API route (but /healthz)."),
    concurrency: int = typer.Option(2, "--concurrency", min=1, help="Videos analysed at once; more requests "
                                    "wait in line."),
    max_queue: int = typer.Option(16, "--max-queue", min=0, help="Requests allowed to wait; more get HTTP 503."),
    unknown_threshold: Optional[float] = typer.Option(None, "--unknown-threshold", min=0.0, max=1.0,
                                                      help="Top score below this shows as unknown (default: "
                                                      "the model's own; 0: off)."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="A folder of videos offered as examples "
                                            "on the Video tab."),
    max_persons: int = typer.Option(2, "--max-persons", min=1, help="People tracked per video."),
    device: str = typer.Option("cpu", "--device", help="torch device for the recognizer."),
) -> None:
    """Serve the web app: drop a video or turn on the camera, see each person's action."""
    from posec3d.web.server import run
    from posec3d.web.service import Settings

    user_pass = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise ConfigError("--auth takes USER:PASS")
        user_pass = (user, password)
    if examples is not None and not examples.is_dir():
        raise ConfigError(f"{examples}: --examples must be a folder of videos")
    missing = [name for name, module in WEB_EXTRA.items() if not _installed(module)]
    if missing:
        raise ConfigError(f"posec3d serve needs the web extra ({', '.join(missing)} missing): "
                          "pip install 'posec3d[web]'")
    if host not in LOOPBACK:
        typer.echo(f"warning: serving on {host}, reachable from other machines"
                   + ("" if user_pass else "; add --auth USER:PASS so only you can use it"), err=True)
    settings = Settings(host=host, port=port, model=model, config=config, checkpoint=checkpoint, label_map=label_map,
                        max_upload_mb=max_upload_mb, auth=user_pass, concurrency=concurrency, max_queue=max_queue,
                        unknown_threshold=unknown_threshold, examples=examples, max_persons=max_persons,
                        device=device)
    run(settings, log=typer.echo)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    app.command("serve")(serve)
