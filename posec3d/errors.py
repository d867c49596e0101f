"""Errors a user can cause, one type per kind.

The CLI prints the message alone and exits non-zero, so every message must name the file
(or sample) and the problem on its own.
"""


class PoseC3DError(Exception):
    """Base class of every user-facing error raised by posec3d."""


class AnnotationError(PoseC3DError):
    """A bad annotation file or sample (format, shapes, values, split names)."""


class VideoError(PoseC3DError):
    """A missing, unreadable or truncated video."""


class OutputError(PoseC3DError):
    """A file or folder that cannot be written: disk full, read-only file system, no permission."""


class ConfigError(PoseC3DError):
    """A bad config file, or a config that does not fit the data or checkpoint."""


class CheckpointError(PoseC3DError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class DownloadError(PoseC3DError):
    """A download that could not be completed (no network, HTTP error, interrupted too often)."""


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about untrusted values.

    Computed from a bounded view of containers, so a value built from shared references (a
    "billion laughs" label) or a huge array costs no more than a short one."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 2, 4, 4, 4, 4
    r.maxstring, r.maxlong, r.maxother = limit, limit, limit
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile object's repr may fail; say what it is instead
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def message_of(error: BaseException) -> str:
    """The one-line message of a user-facing error. An error re-raised by a DataLoader worker arrives as
    "Caught X in DataLoader worker process N. Original Traceback ... module.X: message": keep the message."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        lines = text.rstrip().splitlines()
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].startswith(prefix):
                return " ".join([lines[i][len(prefix):], *lines[i + 1:]]).strip()
    return " ".join(text.split("\n")).strip() if "\n" in text else text
