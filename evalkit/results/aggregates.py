"""The one rebuild of a metric from what a run stored, and the one aggregate over a run's current scores.

A run's aggregate is re-computed when its scores change without a model call: a fully scored run (the runner),
a merge of shards (evalkit/results/merge.py), a CI or a comparison read back (evalkit/results/scores.py). All of
them rebuild the metric here, from the `run_metrics` row (name, options, direction), never from today's task
YAML, and aggregate the same current scores in sample order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.metrics import metric_class
from evalkit.metrics.base import Metric, SampleScore
from evalkit.results.queries import current_score_rows
from evalkit.results.store import loads


class StoredMean(Metric):
    """Stand-in for a metric no longer registered: the mean of its stored per-sample values."""

    name = "stored_mean"

    def __init__(self, name: str, higher_is_better: bool = True, description: str = "") -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]
        self.higher_is_better = higher_is_better  # type: ignore[misc]
        self.description = description  # type: ignore[misc]

    def score(self, predictions: Sequence[Any], samples: Sequence[Any]) -> list[SampleScore]:
        raise NotImplementedError("a stored-mean stand-in cannot score")


def stored_metric(row: dict[str, Any]) -> Metric:
    """The metric a run's aggregate was computed with, rebuilt from what the run stored (a `run_metrics` row:
    name, options, direction), to re-aggregate stored scores. Today's task YAML plays no part."""
    name, options = row["metric"], row.get("options") or {}
    good = True if row.get("higher_is_better") is None else bool(row["higher_is_better"])
    try:
        cls = metric_class(name)
    except EvalkitError:
        return StoredMean(name, good)
    if not cls.corpus and cls.aggregate is Metric.aggregate and cls.sufficient_matrix is Metric.sufficient_matrix:
        # A plain mean: re-aggregating needs no scorer, so skip the metric's (possibly heavy) constructor.
        return StoredMean(name, good, cls.description)
    try:
        metric = cls(**options)
    except Exception as exc:
        if not cls.corpus:
            return StoredMean(name, good, cls.description)
        raise EvalkitError(f"metric '{name}' cannot be constructed to re-aggregate its stored scores: {exc}") from exc
    metric.higher_is_better = good  # type: ignore[misc]  # the stored direction, even if the class changed since
    return metric


def aggregate_current(con: duckdb.DuckDBPyConnection, run_id: str, metric: Metric) -> tuple[float | None, int, int]:
    """(value, samples scored, samples whose score recorded an error) of `metric` over the run's current scores,
    in sample order: the stored aggregate every reader's CI resamples around."""
    scored = current_score_rows(con, run_id, metric.name)
    stats = [loads(r[1], {}) for r in scored]
    value = metric.aggregate([r[0] for r in scored], stats) if scored else None
    return value, len(scored), sum("error" in s for s in stats)
