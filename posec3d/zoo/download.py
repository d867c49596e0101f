"""Fetch a catalogue checkpoint into the cache: streamed, resumable, checked, renamed into place.

The bytes go to ``<file>.part`` next to the destination, so an interrupted download (a cut
connection, Ctrl-C) continues from where it stopped, with an HTTP Range request, within the same
call (a few reconnects) or on the next one. Only a complete file that passes its check is renamed
to its final name, so the cache never holds half a checkpoint under a real name.

Checks: the sha256 (or the sha256 prefix an OpenMMLab file name carries) when the catalogue has
one; otherwise (pyskl's files carry no hash) the size the server announced and a strict load of
the file into the model its config builds. A file that fails is deleted.
"""
from __future__ import annotations

import hashlib
import http.client
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from posec3d.errors import CheckpointError, DownloadError, PoseC3DError
from posec3d.files import commit_file, output_error
from posec3d.zoo.catalogue import ReleasedModel, checkpoint_dir

CHUNK = 1 << 20
USER_AGENT = "posec3d-download"
# A dropped connection mid-file is retried from where it stopped this many times per call.
RECONNECTS = 3


@dataclass(frozen=True)
class Downloaded:
    """What ``download`` did: the final path, its sha256 and how it was checked."""

    path: Path
    sha256: str
    size: int
    checked: str            # 'sha256', 'sha256 prefix' or 'size + load check (...)'
    already: bool = False   # the file was there already (re-checked, nothing fetched)
    resumed_from: int = 0   # bytes kept from an earlier partial download
    reconnects: int = 0     # connections re-opened after a cut in this call


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_loads(entry: ReleasedModel, path: Path) -> None:
    """Load ``path`` strictly into the model ``entry.config`` builds (the check for unhashed files)."""
    from posec3d.engine.config import load_config, model_cfg
    from posec3d.models import build_model
    from posec3d.models.checkpoint import load_checkpoint

    model = build_model(model_cfg(load_config(entry.config)))
    load_checkpoint(model, path, strict=True)


def _hash_problem(entry: ReleasedModel, digest: str) -> str | None:
    if entry.sha256 and digest != entry.sha256:
        return f"sha256 {digest[:16]}... is not the catalogue's {entry.sha256[:16]}..."
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        return f"sha256 starts {digest[:len(entry.sha256_prefix)]}, the file name says {entry.sha256_prefix}"
    return None


def _verify(entry: ReleasedModel, path: Path, shown_as: Path) -> str:
    """The file's sha256 after checking it; a failing file is deleted and CheckpointError raised."""
    digest = sha256_of(path)
    problem = _hash_problem(entry, digest)
    if problem is None and not (entry.sha256 or entry.sha256_prefix):
        try:
            check_loads(entry, path)
        except PoseC3DError as e:
            problem = f"it does not load into the model of {entry.config.name} ({str(e)[:160]})"
    if problem:
        path.unlink(missing_ok=True)
        raise CheckpointError(f"{shown_as}: {problem}; the file was deleted, run `posec3d download {entry.name}` "
                              "again")
    return digest


def _total_from(resp, offset: int) -> Optional[int]:
    if resp.status == 206:
        content_range = resp.headers.get("Content-Range", "")  # bytes START-END/TOTAL
        try:
            start = int(content_range.split()[1].split("-")[0])
            total = content_range.rsplit("/", 1)[1]
        except (IndexError, ValueError):
            raise DownloadError(f"{resp.url}: unreadable Content-Range {content_range!r}") from None
        if start != offset:
            raise DownloadError(f"{resp.url}: asked for bytes from {offset}, the server sent from {start}")
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download(entry: ReleasedModel, dest_dir: str | Path | None = None, *,
             progress: Optional[Callable[..., None]] = None, timeout: float = 30.0,
             reconnects: int = RECONNECTS) -> Downloaded:
    """Download ``entry`` into ``dest_dir`` (default: the cache's ``checkpoints/``).

    ``progress(advance=bytes, total=bytes)`` is called as data arrives. Raises ``DownloadError``
    (network, HTTP) or ``CheckpointError`` (the file fails its check and is deleted).
    """
    dest = Path(dest_dir) if dest_dir is not None else checkpoint_dir()
    final = dest / entry.file
    if final.is_file():
        digest = _verify(entry, final, final)
        return Downloaded(final, digest, final.stat().st_size, entry.verification, already=True)
    if not entry.url:
        raise DownloadError(f"model {entry.name!r} has no url in {entry.catalogue}; put its checkpoint at {final}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise output_error(e, dest) from None
    part = dest / (entry.file + ".part")
    resumed_from = part.stat().st_size if part.is_file() else 0
    shown = 0  # bytes the progress bar has been told about
    cuts = 0
    connected = False  # a response came this call: a later failure to reconnect is a cut, not "offline"
    total: Optional[int] = None
    while True:
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(entry.url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # nothing left to send: the partial file is complete
                break
            raise DownloadError(f"cannot download {entry.name}: {entry.url} answered HTTP {e.code} {e.reason}; "
                                f"fetch it by hand and save it as {final}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", None) or e
            if cuts < reconnects and connected:
                cuts += 1
                continue
            kept = f" ({offset} bytes kept in {part.name}; run the command again to resume)" if offset else ""
            raise DownloadError(f"cannot download {entry.name}: no connection to {entry.url} ({reason}); fetch it "
                                f"by hand and save it as {final}{kept}") from None
        connected = True
        with resp:
            if offset and resp.status != 206:  # the server ignores Range: start again
                offset = 0
            total = _total_from(resp, offset)
            if progress is not None:
                progress(advance=offset - shown, total=total)
                shown = offset
            try:
                with open(part, "ab" if offset else "wb") as f:
                    while True:
                        block = resp.read(CHUNK)
                        if not block:
                            break
                        f.write(block)
                        if progress is not None:
                            progress(advance=len(block))
                            shown += len(block)
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, TimeoutError):
                pass  # the size check below decides whether to reconnect
            except OSError as e:  # disk full, read-only, no permission: one line naming the file
                raise output_error(e, part) from None
        size = part.stat().st_size
        if total is None or size == total:
            break
        if size > total:
            part.unlink()
            raise DownloadError(f"{entry.url}: received {size} bytes, more than the {total} announced; "
                                "the partial file was deleted, run the command again")
        if cuts >= reconnects:
            raise DownloadError(f"cannot download {entry.name}: the connection to {entry.url} broke {cuts + 1} "
                                f"times ({size} of {total} bytes kept in {part.name}); run the command again "
                                "to resume")
        cuts += 1
    digest = _verify(entry, part, final)
    size = part.stat().st_size
    try:
        commit_file(part, final)
    except OSError as e:
        raise output_error(e, final) from None
    return Downloaded(final, digest, size, entry.verification, resumed_from=resumed_from, reconnects=cuts)
