"""OpenMMLab-style Python config files, in both the pyskl (mmcv 1.x) and mmaction2 1.x layouts.

A config is a Python file whose top-level names form a dict. ``_base_`` files are merged first
(``_delete_=True`` in a child dict replaces instead of merging), ``{{fileDirname}}``-style
placeholders are substituted in the text, ``{{_base_.key}}`` stands for a value of the merged
``_base_`` files (mmcv 1.x), and ``--cfg-options key=value`` overrides are applied last. The getters at the bottom hide the two layouts from the rest of the engine, so the trainer
asks ``batch_size(cfg, 'train')`` and never cares whether that is ``data.videos_per_gpu`` or
``train_dataloader.batch_size``.
"""
from __future__ import annotations

import ast
import copy
import os
import re
import types
from pathlib import Path
from typing import Any, Iterable, Mapping

from posec3d.errors import ConfigError, short_repr

SPLITS = ("train", "val", "test")


class Config(dict):
    """A dict with attribute access; nested dicts (also inside lists) are Configs too."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def __setitem__(self, key, value):
        super().__setitem__(key, _wrap(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __deepcopy__(self, memo):
        return Config({k: copy.deepcopy(v, memo) for k, v in self.items()})

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs):
        for k, v in dict(*args, **kwargs).items():
            self[k] = v

    def to_dict(self) -> dict:
        """Plain nested dicts and lists (for pickling into checkpoints or printing)."""
        return _unwrap(self)

    @property
    def filename(self) -> str | None:
        return self.get("_filename")


def _wrap(value: Any) -> Any:
    if isinstance(value, Config):
        return value
    if isinstance(value, Mapping):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(v) for v in value)
    return value


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | os.PathLike, cfg_options: Mapping[str, Any] | Iterable[str] | None = None) -> Config:
    """Read a config file (with its ``_base_`` files) and apply ``cfg_options`` overrides.

    ``cfg_options`` is a mapping of dotted keys to values, or ``["key=value", ...]`` strings as
    given on the command line (values parsed as Python literals, ``true``/``false``/``none``,
    or comma-separated lists).
    """
    path = _packaged_if_missing(Path(path))
    cfg = Config(_load_file(path, chain=()))
    cfg["_filename"] = str(path)
    if cfg_options:
        apply_options(cfg, cfg_options, source=str(path))
    return cfg


# An installed wheel carries the repository's configs/ as posec3d/configs (see setup.py); an
# editable install has them next to the package.
_PACKAGE = Path(__file__).resolve().parents[1]
PACKAGED_CONFIGS = (_PACKAGE / "configs",) + (
    (_PACKAGE.parent / "configs",) if (_PACKAGE.parent / "pyproject.toml").is_file() else ())


def _packaged_if_missing(path: Path) -> Path:
    """``configs/...`` as the README writes it works from any folder: a path that does not exist
    and starts with ``configs`` is looked up in the installed package's copy."""
    if path.exists() or not path.parts or path.parts[0] != "configs":
        return path
    for root in PACKAGED_CONFIGS:
        packaged = root.joinpath(*path.parts[1:])
        if packaged.is_file():
            return packaged
    return path


def _load_file(path: Path, chain: tuple[Path, ...]) -> dict:
    path = path.expanduser().resolve() if path.exists() else path
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.suffix != ".py":
        raise ConfigError(f"{path}: config files must be Python (.py) files")
    if path in chain:
        raise ConfigError(f"{path}: circular _base_ inheritance ({' -> '.join(map(str, chain))})")
    text = _substitute_placeholders(path.read_text(encoding="utf-8"), path)
    text, references = _name_base_references(text)
    namespace: dict[str, Any] = {"__file__": str(path), "__name__": "__posec3d_config__"}
    try:
        code = compile(text, str(path), "exec")
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: syntax error in config: {e.msg}") from e
    merged = None
    if references:
        # The referenced values must exist before the file runs, so its bases are read first.
        merged = _load_bases(path, _declared_bases(text, path), chain)
        for name, key in references.items():
            namespace[name] = copy.deepcopy(_base_value(merged, key, path))
    try:
        exec(code, namespace)  # noqa: S102 - a config file is code the user chose to run
    except Exception as e:  # any error raised while the file runs is the file's fault
        raise ConfigError(f"{path}: error while running config: {type(e).__name__}: {e}") from e
    own = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("__")  # (the names that carried {{_base_.key}} values among them)
        and not isinstance(v, (types.ModuleType, types.FunctionType, type, types.BuiltinFunctionType))
    }
    bases = own.pop("_base_", None)
    if bases is None:
        return own
    if merged is None:
        merged = _load_bases(path, bases, chain)
    return merge(merged, own)


def _load_bases(path: Path, bases: Any, chain: tuple[Path, ...]) -> dict:
    """The merged ``_base_`` files of the config at ``path``."""
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = _find_base(path, base)
        base_cfg = _load_file(base_path, chain + (path,))
        clash = set(merged) & set(base_cfg)
        if clash:
            raise ConfigError(f"{path}: _base_ files define the same keys twice: {sorted(clash)}")
        merged.update(base_cfg)
    return merged


_BASE_REFERENCE = re.compile(r"\{\{\s*_base_\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\}\}")


def _name_base_references(text: str) -> tuple[str, dict[str, str]]:
    """Each ``{{_base_.key}}`` of ``text`` replaced by a fresh name (dunder, so it never becomes a
    config key); returns the text and {name: dotted key}. Every occurrence gets its own name, so
    two references to one value are two independent copies."""
    references: dict[str, str] = {}

    def name(match: re.Match) -> str:
        fresh = f"__base_reference_{len(references)}__"
        references[fresh] = match.group(1)
        return fresh

    return _BASE_REFERENCE.sub(name, text), references


def _declared_bases(text: str, path: Path) -> Any:
    """The ``_base_`` a config declares, read without running it (a literal, as every config writes it)."""
    for node in ast.parse(text, str(path)).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                raise ConfigError(f"{path}:{node.lineno}: _base_ must be written as a literal when the file "
                                  "uses {{_base_.key}}") from None
    raise ConfigError(f"{path}: {{{{_base_.key}}}} is used but the file names no _base_ file")


def _base_value(merged: Mapping, key: str, path: Path) -> Any:
    value: Any = merged
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise ConfigError(f"{path}: {{{{_base_.{key}}}}}: the _base_ files define no {key!r}")
        value = value[part]
    return value


def _find_base(path: Path, base: str) -> Path:
    candidate = (path.parent / base)
    if candidate.is_file():
        return candidate.resolve()
    # Users copy one mmaction2/pyskl config out of its tree; its runtime base is generic, so a
    # bundled stand-in keeps the file runnable as it is.
    bundled = Path(__file__).with_name("base_configs") / Path(base).name
    if bundled.is_file():
        return bundled
    raise ConfigError(f"{path}: _base_ file {base!r} not found (looked for {candidate})")


def _substitute_placeholders(text: str, path: Path) -> str:
    values = {
        "fileDirname": str(path.parent),
        "fileBasename": path.name,
        "fileBasenameNoExtension": path.stem,
        "fileExtname": path.suffix,
    }
    for name, value in values.items():
        text = text.replace("{{ " + name + " }}", value).replace("{{" + name + "}}", value)
    return text


def merge(base: Mapping, child: Mapping) -> dict:
    """Merge ``child`` into ``base`` recursively; a child dict with ``_delete_=True`` replaces."""
    out = dict(copy.deepcopy(base))
    for k, v in child.items():
        if isinstance(v, Mapping) and v.get("_delete_", False):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------------------------
# Command-line overrides


def parse_option_value(text: str) -> Any:
    """``'3'`` -> 3, ``'[1,2]'`` -> [1, 2], ``'(1,2)'`` -> (1, 2), ``'true'`` -> True, ``'a,b'`` -> ['a', 'b']."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
        pass
    if stripped[:1] in "[(" and stripped[-1:] in "])":
        inner = [parse_option_value(p) for p in _split_top_level(stripped[1:-1])]
        return inner if stripped[0] == "[" else tuple(inner)
    if "," in stripped:
        return [parse_option_value(p) for p in _split_top_level(stripped)]
    return stripped


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    tail = text[start:]
    if tail.strip():
        parts.append(tail)
    return parts


def apply_options(cfg: Config, options: Mapping[str, Any] | Iterable[str], source: str = "config") -> Config:
    """Set dotted keys (``data.train.times=2``, ``model.cls_head.num_classes=20``) in place.

    Integer path parts index lists (``train_pipeline.0.clip_len=32``). Missing dict keys are
    created, so an option can add a key the file does not have.
    """
    if not isinstance(options, Mapping):
        parsed = {}
        for item in options:
            if "=" not in item:
                raise ConfigError(f"--cfg-options {item!r}: expected key=value")
            key, value = item.split("=", 1)
            parsed[key.strip()] = parse_option_value(value)
        options = parsed
    for key, value in options.items():
        parts = key.split(".")
        if parts[0] not in cfg and parts[0] not in KNOWN_TOP_LEVEL_KEYS:
            raise ConfigError(f"{source}: --cfg-options {key}: unknown key {parts[0]!r} (not in the config "
                              f"and not read by posec3d){_did_you_mean(parts[0], set(cfg) | KNOWN_TOP_LEVEL_KEYS)}")
        if len(parts) == 1 and not isinstance(cfg.get(key), Mapping):
            _set_variable(cfg, key, value)
            continue
        node: Any = cfg
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, key, source, create=True)
        last = parts[-1]
        if isinstance(node, list):
            node[_list_index(node, last, key, source)] = _wrap(value)
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise ConfigError(f"{source}: cannot set {key!r}: {'.'.join(parts[:-1])} is not a dict or list")
    return cfg


#: Top-level keys posec3d reads (both layouts). An option may add one of these even when the file
#: lacks it; any other key missing from the file is a typo (``totl_epochs=0``) and is reported.
KNOWN_TOP_LEVEL_KEYS = frozenset({
    "model", "data", "train_dataloader", "val_dataloader", "test_dataloader", "train_cfg", "val_cfg",
    "test_cfg", "total_epochs", "evaluation", "optimizer", "optim_wrapper", "optimizer_config",
    "lr_config", "param_scheduler", "default_hooks", "checkpoint_config", "log_config", "randomness",
    "seed", "load_from", "resume_from", "resume", "heatmap_on", "norm_eval", "sync_bn", "max_persons",
    "work_dir", "find_unused_parameters", "ann_file", "label_map", "test_speedups", "train_speedups",
    "outliers",
})


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(c for c in choices if not c.startswith("_")), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _set_variable(cfg: Config, key: str, value: Any) -> None:
    """Set a top-level value and everywhere the file used it as a variable.

    ``ann_file = '...'`` at the top of a config is copied into the split datasets when the file
    runs, so setting only the top-level name would change nothing. Every dict entry of the same
    name that holds the old value is updated too (split datasets with their own, different
    ``ann_file`` keep it). ``ann_file`` on a config without that variable sets every split's.
    """
    missing = object()
    old = cfg.get(key, missing)

    def visit(node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                if k == key and old is not missing and _same_value(v, old):
                    node[k] = _wrap(value)
                else:
                    visit(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                visit(v)

    for k, v in list(cfg.items()):
        if k != key and not k.startswith("_"):
            visit(v)
    if key == "ann_file" and old is missing:
        for split in SPLITS:
            try:
                inner, _ = unwrap_dataset(dataset_cfg(cfg, split))
            except ConfigError:
                continue
            inner["ann_file"] = value
    cfg[key] = value


def _same_value(a: Any, b: Any) -> bool:
    if b is None or isinstance(b, bool):  # too common to mean "this was the variable"
        return False
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # e.g. arrays: not a config variable
        return False


def _child(node: Any, part: str, key: str, source: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, key, source)]
    if isinstance(node, dict):
        if part not in node:
            if not create:
                raise ConfigError(f"{source}: key {key!r} not found")
            node[part] = Config()
        return node[part]
    raise ConfigError(f"{source}: cannot set {key!r}: {part!r} is inside a {type(node).__name__}")


def _list_index(node: list, part: str, key: str, source: str) -> int:
    try:
        idx = int(part)
        node[idx]
    except (ValueError, IndexError):
        raise ConfigError(f"{source}: {key!r}: {part!r} is not a valid index of a list of {len(node)}") from None
    return idx


# --------------------------------------------------------------------------------------------
# Getters that hide the two layouts


def _where(cfg: Config) -> str:
    return cfg.get("_filename") or "config"


def is_mmaction2_layout(cfg: Config) -> bool:
    return any(f"{s}_dataloader" in cfg for s in SPLITS) and "data" not in cfg


def count(value: Any, key: str, cfg: Config, minimum: int = 0) -> int:
    """An integer setting (batch size, workers, epochs) checked, the error naming the config file."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{_where(cfg)}: {key} must be an integer >= {minimum}, got {short_repr(value)}")
    return int(value)


def require(cfg: Mapping, key: str, where: str) -> Any:
    if key not in cfg:
        raise ConfigError(f"{where}: missing key {key!r}")
    return cfg[key]


def model_cfg(cfg: Config) -> Config:
    model = cfg.get("model")
    if not isinstance(model, Mapping) or "type" not in model:
        raise ConfigError(f"{_where(cfg)}: missing or invalid key 'model' (a dict with a 'type')")
    return model


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def dataloader_cfg(cfg: Config, split: str) -> Config:
    """The per-split loader settings: ``batch_size``, ``num_workers`` and the ``dataset``."""
    _check_split(split)
    where = _where(cfg)
    if is_mmaction2_layout(cfg):
        loader = cfg.get(f"{split}_dataloader")
        if not isinstance(loader, Mapping) or "dataset" not in loader:
            raise ConfigError(f"{where}: missing key '{split}_dataloader.dataset'")
        return Config(
            dataset=loader["dataset"],
            batch_size=count(loader.get("batch_size", 1), f"{split}_dataloader.batch_size", cfg, 1),
            num_workers=count(loader.get("num_workers", 0), f"{split}_dataloader.num_workers", cfg),
            persistent_workers=bool(loader.get("persistent_workers", False)),
        )
    data = cfg.get("data")
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: missing key 'data' (pyskl layout) or '{split}_dataloader' (mmaction2 layout)")
    if split not in data:
        raise ConfigError(f"{where}: missing key 'data.{split}'")
    # pyskl: videos_per_gpu is the train batch; val/test default to 1 unless overridden.
    per_split = data.get(f"{split}_dataloader", {}) or {}
    default_bs = data.get("videos_per_gpu", 1) if split == "train" else 1
    return Config(
        dataset=data[split],
        batch_size=count(per_split.get("videos_per_gpu", default_bs), "videos_per_gpu", cfg, 1),
        num_workers=count(per_split.get("workers_per_gpu", data.get("workers_per_gpu", 0)), "workers_per_gpu", cfg),
        persistent_workers=bool(data.get("persistent_workers", False)),
    )


def dataset_cfg(cfg: Config, split: str) -> Config:
    """The dataset dict of a split, as written (possibly a ``RepeatDataset`` wrapper)."""
    ds = dataloader_cfg(cfg, split).dataset
    if not isinstance(ds, Mapping) or "type" not in ds:
        raise ConfigError(f"{_where(cfg)}: the {split} dataset must be a dict with a 'type', got {ds!r}")
    return ds


def unwrap_dataset(ds: Mapping) -> tuple[Mapping, int]:
    """``RepeatDataset(times=k, dataset=d)`` -> ``(d, k)``; anything else -> ``(ds, 1)``."""
    times = 1
    while ds.get("type") == "RepeatDataset":
        times *= int(ds.get("times", 1))
        ds = ds["dataset"]
    return ds, times


def pipeline_cfg(cfg: Config, split: str) -> list:
    """The list of transform dicts of a split's dataset (``{split}_pipeline`` as a fallback)."""
    inner, _ = unwrap_dataset(dataset_cfg(cfg, split))
    pipeline = inner.get("pipeline", cfg.get(f"{split}_pipeline"))
    if not isinstance(pipeline, list) or not pipeline:
        raise ConfigError(f"{_where(cfg)}: the {split} dataset has no 'pipeline' list")
    return pipeline


def batch_size(cfg: Config, split: str) -> int:
    """Videos per process (per GPU)."""
    return dataloader_cfg(cfg, split).batch_size


def num_workers(cfg: Config, split: str) -> int:
    return dataloader_cfg(cfg, split).num_workers


def class_prob(cfg: Config) -> list | None:
    """Per-class sampling weights for class-balanced training (pyskl ``class_prob``), or None."""
    node: Any = dataset_cfg(cfg, "train")
    while isinstance(node, Mapping):
        if node.get("class_prob") is not None:
            return list(node["class_prob"])
        node = node.get("dataset")
    if is_mmaction2_layout(cfg):
        sampler = cfg.train_dataloader.get("sampler") or {}
        if sampler.get("class_prob") is not None:
            return list(sampler["class_prob"])
    data = cfg.get("data") or {}
    return list(data["class_prob"]) if data.get("class_prob") is not None else None


def total_epochs(cfg: Config) -> int:
    """Training epochs, each a full pass over the (repeated) train dataset."""
    if is_mmaction2_layout(cfg):
        train_cfg = cfg.get("train_cfg") or {}
        if "max_epochs" not in train_cfg:
            raise ConfigError(f"{_where(cfg)}: missing key 'train_cfg.max_epochs'")
        return _at_least_one_epoch(cfg, "train_cfg.max_epochs", train_cfg["max_epochs"])
    if "total_epochs" not in cfg:
        raise ConfigError(f"{_where(cfg)}: missing key 'total_epochs'")
    return _at_least_one_epoch(cfg, "total_epochs", cfg.total_epochs)


def _at_least_one_epoch(cfg: Config, key: str, value: Any) -> int:
    # 0 or -1 would train nothing and still report success.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 1:
        raise ConfigError(f"{_where(cfg)}: {key} must be a whole number of epochs, at least 1, got {str(value)[:40]}")
    return int(value)


def val_interval(cfg: Config) -> int:
    """Validate every this many epochs (1 when unspecified)."""
    if is_mmaction2_layout(cfg):
        return int((cfg.get("train_cfg") or {}).get("val_interval", 1))
    return int((cfg.get("evaluation") or {}).get("interval", 1))


def optimizer_cfg(cfg: Config) -> Config:
    """``dict(type='SGD', lr=.., momentum=.., weight_decay=.., nesterov=..)``."""
    where = _where(cfg)
    if "optim_wrapper" in cfg:
        opt = (cfg.optim_wrapper or {}).get("optimizer")
        key = "optim_wrapper.optimizer"
    else:
        opt = cfg.get("optimizer")
        key = "optimizer"
    if not isinstance(opt, Mapping) or "lr" not in opt:
        raise ConfigError(f"{where}: missing key '{key}' (a dict with 'type' and 'lr')")
    out = Config(opt)
    out.setdefault("type", "SGD")
    return out


def grad_clip_cfg(cfg: Config) -> Config | None:
    """``dict(max_norm=40, norm_type=2)`` or None when the config does not clip."""
    if "optim_wrapper" in cfg:
        clip = (cfg.optim_wrapper or {}).get("clip_grad")
    else:
        clip = (cfg.get("optimizer_config") or {}).get("grad_clip")
    if not clip:
        return None
    if "max_norm" not in clip:
        raise ConfigError(f"{_where(cfg)}: gradient clipping needs 'max_norm', got {dict(clip)!r}")
    return Config(max_norm=float(clip["max_norm"]), norm_type=float(clip.get("norm_type", 2)))


def lr_schedule_cfg(cfg: Config) -> list[Config]:
    """The LR schedule as a list of normalised phases, in mmaction2 ``param_scheduler`` terms.

    Each phase: ``dict(type='cosine'|'step'|'linear'|'constant', by_epoch, begin, end, ...)`` with
    ``begin``/``end`` in epochs (None = to the end). pyskl's ``lr_config`` is translated.
    """
    where = _where(cfg)
    phases: list[Config] = []
    if "param_scheduler" in cfg:
        scheds = cfg.param_scheduler
        if isinstance(scheds, Mapping):
            scheds = [scheds]
        for s in scheds:
            phases.append(_mm_phase(s, where))
        return phases
    lr_config = cfg.get("lr_config")
    if not lr_config:
        return [Config(type="constant", begin=0, end=None, by_epoch=True)]
    policy = str(lr_config.get("policy", "")).lower()
    by_epoch = bool(lr_config.get("by_epoch", True))
    if lr_config.get("warmup"):
        warm_iters = int(lr_config.get("warmup_iters", 0))
        warm_by_epoch = bool(lr_config.get("warmup_by_epoch", False))
        ratio = float(lr_config.get("warmup_ratio", 0.1))
        if lr_config["warmup"] != "linear":
            raise ConfigError(f"{where}: lr_config.warmup {lr_config['warmup']!r} is not supported (only 'linear')")
        phases.append(Config(type="linear", start_factor=ratio, end_factor=1.0, begin=0, end=warm_iters,
                             by_epoch=warm_by_epoch))
    if policy in ("cosineannealing", "cosine"):
        phases.append(Config(type="cosine", begin=0, end=None, by_epoch=by_epoch,
                             eta_min=float(lr_config.get("min_lr", 0.0) or 0.0),
                             eta_min_ratio=lr_config.get("min_lr_ratio")))
    elif policy == "step":
        step = lr_config.get("step")
        if step is None:
            raise ConfigError(f"{where}: lr_config policy 'step' needs 'step'")
        milestones = [int(step)] if isinstance(step, (int, float)) else [int(s) for s in step]
        phases.append(Config(type="step", begin=0, end=None, by_epoch=by_epoch,
                             milestones=milestones, gamma=float(lr_config.get("gamma", 0.1)),
                             every=isinstance(step, (int, float))))
    elif policy in ("fixed", "constant"):
        phases.append(Config(type="constant", begin=0, end=None, by_epoch=True))
    else:
        raise ConfigError(f"{where}: lr_config.policy {lr_config.get('policy')!r} is not supported "
                          "(CosineAnnealing, step, fixed)")
    return phases


def _mm_phase(s: Mapping, where: str) -> Config:
    kind = s.get("type")
    by_epoch = bool(s.get("by_epoch", True))
    begin = s.get("begin", 0)
    end = s.get("end")
    if end is not None and end >= 10**8:  # mmengine's INF default
        end = None
    common = dict(begin=begin, end=end, by_epoch=by_epoch,
                  convert_to_iter_based=bool(s.get("convert_to_iter_based", False)))
    if kind == "CosineAnnealingLR":
        t_max = s.get("T_max")
        return Config(type="cosine", eta_min=float(s.get("eta_min", 0.0) or 0.0),
                      eta_min_ratio=s.get("eta_min_ratio"), T_max=t_max, **common)
    if kind == "MultiStepLR":
        return Config(type="step", milestones=[int(m) for m in s.get("milestones", [])],
                      gamma=float(s.get("gamma", 0.1)), every=False, **common)
    if kind == "StepLR":
        return Config(type="step", milestones=[int(s.get("step_size"))], gamma=float(s.get("gamma", 0.1)),
                      every=True, **common)
    if kind == "LinearLR":
        return Config(type="linear", start_factor=float(s.get("start_factor", 1 / 3)),
                      end_factor=float(s.get("end_factor", 1.0)), **{**common, "end": s.get("end", 5)})
    if kind == "ConstantLR":
        return Config(type="constant", factor=float(s.get("factor", 1 / 3)), **{**common, "end": s.get("end", 5)})
    raise ConfigError(f"{where}: param_scheduler type {kind!r} is not supported "
                      "(CosineAnnealingLR, MultiStepLR, StepLR, LinearLR, ConstantLR)")


def checkpoint_cfg(cfg: Config) -> Config:
    """``dict(interval, max_keep_ckpts, save_best)`` from either layout."""
    if "default_hooks" in cfg:
        ck = (cfg.default_hooks or {}).get("checkpoint") or {}
    else:
        ck = cfg.get("checkpoint_config") or {}
    evaluation = cfg.get("evaluation") or {}
    save_best = ck.get("save_best", evaluation.get("save_best", "auto"))
    return Config(interval=int(ck.get("interval", 1)), max_keep_ckpts=int(ck.get("max_keep_ckpts", 3)),
                  save_best=save_best)


def log_interval(cfg: Config) -> int:
    if "default_hooks" in cfg:
        return int(((cfg.default_hooks or {}).get("logger") or {}).get("interval", 20))
    return int((cfg.get("log_config") or {}).get("interval", 20))


def seed(cfg: Config) -> int | None:
    rnd = cfg.get("randomness") or {}
    value = rnd.get("seed", cfg.get("seed"))
    return None if value is None else int(value)


def outliers(cfg: Config) -> Config | None:
    """``outliers = dict(ann_file=..., split=None, weight=0.5)``: outlier exposure in training.

    The annotation file's samples (``split``'s, or all of them) join the training set with label -1,
    through the training pipeline; the head learns a uniform output on them, weighted by ``weight``.
    """
    value = cfg.get("outliers")
    if value is None:
        return None
    where = _where(cfg)
    if not isinstance(value, Mapping) or not isinstance(value.get("ann_file"), str) or not value["ann_file"]:
        raise ConfigError(f"{where}: outliers must be dict(ann_file='...', split=None, weight=0.5), got {value!r}")
    unknown = set(value) - {"ann_file", "split", "weight"}
    if unknown:
        raise ConfigError(f"{where}: outliers: unknown keys {sorted(unknown)} (known: ann_file, split, weight)")
    split = value.get("split")
    if split is not None and not isinstance(split, str):
        raise ConfigError(f"{where}: outliers.split must be a split name or None, got {split!r}")
    weight = value.get("weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
        raise ConfigError(f"{where}: outliers.weight must be a number > 0, got {weight!r}")
    return Config(ann_file=value["ann_file"], split=split, weight=float(weight))


def load_from(cfg: Config) -> str | None:
    return cfg.get("load_from") or None


def resume_from(cfg: Config) -> str | bool | None:
    """pyskl ``resume_from=path`` or mmaction2 ``resume=True`` (latest in the work dir)."""
    if cfg.get("resume_from"):
        return cfg.resume_from
    return True if cfg.get("resume") is True else None


def class_names(cfg: Config) -> list[str] | None:
    """Class names from the config's ``label_map`` file (ours; ``train --label-map`` sets it), or None.

    Checked against ``cls_head.num_classes`` so a wrong file fails before training, not in the
    confusion matrix at its end.
    """
    path = cfg.get("label_map")
    if not path:
        return None
    from posec3d.data.label_map import read_label_map

    names = read_label_map(path)
    head = (cfg.get("model") or {}).get("cls_head") or {}
    if head.get("num_classes") is not None and len(names) != int(head["num_classes"]):
        raise ConfigError(f"{path}: {len(names)} class names for the {int(head['num_classes'])} classes of "
                          f"{_where(cfg)}")
    return names


def heatmap_on(cfg: Config) -> str:
    """Where heatmaps are drawn: 'loader' (numpy, per sample) or 'batch' (torch, per batch)."""
    value = cfg.get("heatmap_on", "loader")
    if value not in ("loader", "batch"):
        raise ConfigError(f"{_where(cfg)}: heatmap_on must be 'loader' or 'batch', got {value!r}")
    return value


def find_transform(pipeline: list, *names: str) -> Config | None:
    """The first transform dict in ``pipeline`` whose type is one of ``names``."""
    for t in pipeline:
        if isinstance(t, Mapping) and t.get("type") in names:
            return t
    return None


def config_to_text(cfg: Mapping) -> str:
    """Python source that ``load_config`` reads back to the same (resolved) config."""
    lines = [f"{k} = {_unwrap(v)!r}" for k, v in cfg.items() if not k.startswith("_")]
    return "\n".join(lines) + "\n"


def dump_config(cfg: Mapping, path: str | os.PathLike) -> None:
    """Save the resolved config (after _base_ merging and overrides), atomically."""
    from posec3d.files import atomic_write_text

    atomic_write_text(path, config_to_text(cfg))
