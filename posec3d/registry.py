"""The one small registry that turns OpenMMLab-style config dicts into objects.

``dict(type='Resize', scale=(-1, 64))`` -> ``Resize(scale=(-1, 64))``. A class may be registered
under several names, so pyskl and mmaction2 spellings of the same thing both resolve.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from posec3d.errors import ConfigError


class Registry:
    def __init__(self, name: str):
        self.name = name
        self._items: dict[str, Callable] = {}

    def register(self, *names: str) -> Callable:
        """Decorator: register a class or function under its own name and any extra ``names``."""

        def deco(obj: Callable) -> Callable:
            for key in (obj.__name__, *names):
                if key in self._items and self._items[key] is not obj:
                    raise KeyError(f"{self.name} registry: {key!r} is already registered")
                self._items[key] = obj
            return obj

        return deco

    def get(self, key: str) -> Callable:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise ConfigError(f"unknown {self.name} type {key!r}; known types: {known}") from None

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def build(self, cfg: dict, **defaults: Any) -> Any:
        """Build ``cfg['type'](**rest)``; ``defaults`` fill keys the config leaves out."""
        if not isinstance(cfg, dict) or "type" not in cfg:
            raise ConfigError(f"{self.name} config must be a dict with a 'type' key, got {cfg!r}")
        args = copy.deepcopy(dict(cfg))
        obj = self.get(args.pop("type"))
        for k, v in defaults.items():
            args.setdefault(k, v)
        try:
            return obj(**args)
        except TypeError as e:
            raise ConfigError(f"cannot build {self.name} {cfg['type']!r} from {cfg!r}: {e}") from e


TRANSFORMS = Registry("transform")
MODELS = Registry("model")
DATASETS = Registry("dataset")
