"""Atomic file writes: every file posec3d writes goes through here.

Write to a temporary file in the target directory, flush and fsync it, then rename it over the
target, so a crash leaves either the old file or the new one, never half of one.

Temporary files are named ``.<name>.<host>-<pid>.<random>.tmp``: a write that is killed leaves
one behind, and the next process that writes into that folder deletes it (the first write of a
process into a folder scans it once), as soon as the process that made it is gone. A write that fails on the file system (disk full,
read-only, no permission) raises ``OutputError`` naming the file; the old file stays as it was.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import IO, Iterator

from posec3d.errors import OutputError

# Errors of the file system rather than of the data: reported as OutputError, one line.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                 errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.EIO}
_REASONS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted", errno.EFBIG: "file too large"}
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[A-Za-z0-9_]+\.tmp(?P<ext>\.[A-Za-z0-9]+)?$")


_CLEANED: set[str] = set()


def output_error(e: OSError, path: str | os.PathLike) -> OutputError:
    """``<path>: cannot write (no space left on the device)`` from an OSError of a write."""
    reason = _REASONS.get(e.errno) or e.strerror or str(e)
    return OutputError(f"{path}: cannot write ({reason})")


def is_write_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in _WRITE_ERRNOS


def temp_path_for(path: str | os.PathLike, keep_suffix: bool = False) -> str:
    """Create (empty, 0600) and return a temporary file next to ``path`` for an atomic write.

    ``keep_suffix`` ends the name with the target's extension too (encoders pick the format from it).
    """
    path = Path(path)
    folder = str(path.parent.absolute())
    if folder not in _CLEANED:  # once per folder and process: a folder may hold many files
        _CLEANED.add(folder)
        remove_stale_temp_files(folder)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.",
                               suffix=".tmp" + (path.suffix if keep_suffix else ""), dir=path.parent)
    os.close(fd)
    return tmp


def remove_stale_temp_files(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete our temporary files in ``folder`` (of target ``name`` only, if given) whose writing
    process on this machine has ended: what a killed write (kill -9, power loss) left behind."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if not m or (name is not None and m["name"] != name) or m["host"] != _HOST:
            continue
        if _alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _publish(tmp: str, path: Path) -> None:
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically."""
    if "w" not in mode:
        raise ValueError(f"atomic_write needs a write mode, got {mode!r}")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path)
    except OSError as e:
        raise output_error(e, path) from None
    in_body = False
    try:
        with open(tmp, mode, encoding=encoding) as f:
            in_body = True
            try:
                yield f
            except OSError as e:
                if is_write_error(e):  # the body's f.write() hit a full or read-only disk
                    raise output_error(e, path) from None
                raise
            in_body = False
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except OSError as e:  # flush / fsync / close / rename: the file system refused
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if in_body:  # the caller's own error (reading something else, say): not ours to rename
            raise
        raise output_error(e, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)  # make the rename itself durable


def _fsync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename inside it survives a crash (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def commit_file(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished file written elsewhere under a temporary name (e.g. a resumable
    download's ``.part``) into place: fsync it, rename it over ``path``, fsync the folder."""
    tmp, path = Path(tmp), Path(path)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_output_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path for writers that open files themselves (video encoders, exporters):
    it replaces ``path`` when the block ends without error, else it is deleted."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path_for(path, keep_suffix=True)
    except OSError as e:
        raise output_error(e, path) from None
    try:
        yield tmp
        _publish(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_write_error(e):
            raise output_error(e, path) from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(*paths: str | os.PathLike | None, folders: bool = False) -> None:
    """Fail fast with OutputError when a file cannot be created where an output goes (read-only,
    no permission), before minutes of work that would end in the same error. ``folders``: the
    paths are output folders rather than files. (A full disk is found only by writing.)"""
    for path in paths:
        if path is None:
            continue
        folder = Path(path) if folders else Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.unlink(temp_path_for(folder / ".posec3d-write-check"))
        except OSError as e:
            raise output_error(e, path) from None
