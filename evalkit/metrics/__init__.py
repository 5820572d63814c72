"""Metric registry: names used in task YAML files map to Metric classes in the family modules."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.metrics.base import Metric, SampleScore

_METRICS: dict[str, type[Metric]] = {}
# Modules that define no metric: `base`, and the compiled COCO kernels (numba), imported where a metric computes,
# so listing the metrics (`is_diagnostic` in every leaderboard) does not start numba (half a second).
_INFRASTRUCTURE = {"base", "coco_match", "coco_resample", "coco_params"}


def register_metric(cls: type[Metric]) -> type[Metric]:
    _METRICS[cls.name] = cls
    return cls


_LOADED: list[bool] = []


def _load_families() -> None:
    """Import every family module of this package (one module per metric family) so they register. Once per
    process: listing the package folder cost a millisecond per call, and `is_diagnostic` is asked per table row."""
    if _LOADED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _LOADED.append(True)


def metric_class(name: str) -> type[Metric]:
    _load_families()
    if name not in _METRICS:
        raise EvalkitError(f"unknown metric '{name}'; known: {', '.join(sorted(_METRICS))}")
    return _METRICS[name]


def is_diagnostic(name: str) -> bool:
    """An RL-health diagnostic (Metric.diagnostic): hidden where quality metrics are listed. A name no longer
    registered (an old database) is shown, as any metric."""
    _load_families()
    cls = _METRICS.get(name)
    return bool(cls is not None and cls.diagnostic)


def get_metric(name: str, **options: Any) -> Metric:
    return metric_class(name)(**options)


def all_metrics() -> dict[str, type[Metric]]:
    _load_families()
    return dict(sorted(_METRICS.items()))


__all__ = ["Metric", "SampleScore", "all_metrics", "get_metric", "is_diagnostic", "metric_class", "register_metric"]
