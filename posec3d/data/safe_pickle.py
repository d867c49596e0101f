"""The safe unpickler, re-exported where the data package has always offered it (it lives at the top
of the package, `posec3d.safe_pickle`, because checkpoints and caches use it too)."""
from posec3d.safe_pickle import (  # noqa: F401
    PickleLimitError,
    SafeUnpickler,
    UnsafePickleError,
    load_path,
    load_torch_zip,
    safe_load,
    safe_loads,
)
