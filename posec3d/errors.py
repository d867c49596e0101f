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
