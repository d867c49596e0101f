"""Which recognizer a command uses: a bundled / released model by name, or a config + checkpoint."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from posec3d.errors import ConfigError


def load_recognizer(model: Optional[str] = None, config: Optional[str | os.PathLike] = None,
                    checkpoint: Optional[str | os.PathLike] = None, label_map: Optional[str | os.PathLike] = None,
                    **kwargs):
    """An ``engine.inference.ActionRecognizer``: ``model`` by name (resolved by ``posec3d.zoo.resolve_model``),
    or ``config`` + ``checkpoint`` (+ ``label_map``), or the default bundled model.

    ``kwargs`` go to ``ActionRecognizer`` (``device``, ``num_clips``, ``flip``, ``fuse_bn``).
    """
    from posec3d.engine.inference import ActionRecognizer

    if model is not None and (config or checkpoint):
        raise ConfigError("give either --model NAME or --config/--checkpoint, not both")
    if config is not None or checkpoint is not None:
        if config is None or checkpoint is None:
            raise ConfigError("--config and --checkpoint go together (add --label-map for class names)")
        for p in (config, checkpoint, label_map):
            if p is not None and not Path(p).is_file():
                raise ConfigError(f"{p}: file not found")
        return ActionRecognizer(config, checkpoint, label_map, **kwargs)
    return ActionRecognizer.from_bundled(model, **kwargs)
