"""Data-set loaders: each turns a user's download (or the phantom set) into Samples with 0-1 boxes.

A loader is registered by name with `@register_loader("name")` and has the signature
`(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]`, where `root` is the folder of that data
set (already resolved from --data-root and `dataset.root`) and `split` overrides `spec.split` (baselines ask for
the train split of the same task).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.errors import EvalkitError
from evalkit.sample import Sample

Loader = Callable[[DatasetSpec, Path, str, str], list[Sample]]
_LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn

    return wrap


def _import_loaders() -> None:
    """Import every module of this package so their loaders register; lazily, to keep `--help` fast."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def get_loader(name: str) -> Loader:
    _import_loaders()
    if name not in _LOADERS:
        raise EvalkitError(f"unknown dataset loader '{name}'; known: {', '.join(sorted(_LOADERS))}")
    return _LOADERS[name]
