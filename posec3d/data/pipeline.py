"""Compose: a pipeline of transforms built from OpenMMLab-style config dicts."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

from posec3d.errors import ConfigError
from posec3d.registry import TRANSFORMS
import posec3d.data.transforms  # noqa: F401  (registers the transforms)


def _register_optional() -> None:
    # RGBPose transforms live in their own module; register them when it is present.
    try:
        importlib.import_module("posec3d.data.multimodal")
    except ModuleNotFoundError as e:
        if e.name != "posec3d.data.multimodal":
            raise


class Compose:
    """Apply transforms in order; a transform returning None drops the sample (returns None)."""

    def __init__(self, transforms: Iterable[dict | Callable]):
        _register_optional()
        self.transforms: list[Callable] = []
        for t in transforms:
            if isinstance(t, dict):
                self.transforms.append(TRANSFORMS.build(t))
            elif callable(t):
                self.transforms.append(t)
            else:
                raise ConfigError(f"pipeline step must be a config dict or a callable, got {t!r}")
        self._fuse_heatmap_format()

    def _fuse_heatmap_format(self) -> None:
        """Let GeneratePoseTarget write FormatShape's layout itself when FormatShape follows it:
        the test volume is ~270 MB per sample, and every skipped copy of it counts."""
        from posec3d.data.transforms import FormatShape, GeneratePoseTarget

        for gen, fmt in zip(self.transforms, self.transforms[1:]):
            if isinstance(gen, GeneratePoseTarget) and isinstance(fmt, FormatShape) \
                    and fmt.input_format == "NCTHW_Heatmap":
                gen.format_views = True

    def reuse_heatmap_volumes(self) -> bool:
        """Let every GeneratePoseTarget reuse its volumes (``heatmap.CanvasPool``) when only
        transforms that never write into them follow it; True if any does.

        For whoever consumes the samples and drops them without writing into them: the engine's
        data loaders, whose collate copies each sample into the batch. A sample handed to user code
        must not be pooled: a volume edited in place there would leave stale values in the next."""
        from posec3d.data.heatmap import CanvasPool
        from posec3d.data.transforms import Collect, FormatShape, GeneratePoseTarget, PackActionInputs, ToTensor

        read_only = (FormatShape, Collect, ToTensor, PackActionInputs)  # views, copies or wraps
        enabled = False
        for i, gen in enumerate(self.transforms):
            if isinstance(gen, GeneratePoseTarget) and all(type(t) in read_only for t in self.transforms[i + 1:]):
                if gen.canvas is None:
                    gen.canvas = CanvasPool()
                enabled = True
        return enabled

    def __call__(self, results: dict) -> Any:
        for t in self.transforms:
            results = t(results)
            if results is None:
                return None
        return results

    def __repr__(self) -> str:
        inner = ",\n    ".join(repr(t) for t in self.transforms)
        return f"Compose([\n    {inner}\n])"
