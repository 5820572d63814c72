"""The metric contract: per-sample values + sufficient statistics, aggregation from stored statistics only.

Corpus-level metrics (corpus BLEU, CheXbert micro/macro F1, COCO AP) keep per-sample sufficient statistics so
that a bootstrap resample re-aggregates stored numbers and never re-runs a model.

Resampling (evalkit/stats.py) is vectorised when the aggregate is a function of column sums of a per-sample
matrix: `sufficient_matrix` gives that matrix and `from_sums` maps sums (one row per resample) to values. Mean
metrics get this for free; a count-based corpus metric (BLEU, CheXbert micro F1) overrides both methods; any
other corpus metric returns None and is re-aggregated with `aggregate` once per resample (slow), unless it
implements the batch hooks `aggregate_resamples` / `aggregate_swaps` (COCO AP, CIDEr-D).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalkit.errors import EvalkitError
from evalkit.sample import Parsed, Sample


@dataclass
class SampleScore:
    value: float | None
    stats: dict[str, Any] = field(default_factory=dict)


class MetricOptions(BaseModel):
    """A metric's typed options (subclass per metric). Unknown keys are errors: a misspelt option must not be
    silently ignored. A field with `json_schema_extra={"identity": False}` (device, batch size) cannot move a
    number, so it is left out of the score identity and changing it re-scores nothing."""

    model_config = ConfigDict(extra="forbid")


def setting(default: Any = None) -> Any:
    """An option that changes how a metric runs (device, batch size, timeout), never its numbers."""
    return Field(default=default, json_schema_extra={"identity": False})


@dataclass(frozen=True)
class ScoreIdentity:
    """What a stored score depends on: metric name, code version, canonical options, weights fingerprint."""

    metric: str
    version: str
    options: dict[str, Any]
    fingerprint: str

    @property
    def key(self) -> str:
        payload = json.dumps([self.metric, self.version, self.options, self.fingerprint], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def option_error(metric: str, error: ValidationError) -> EvalkitError:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(options)"
        message = "unknown option (typo?)" if item["type"] == "extra_forbidden" else item["msg"]
        parts.append(f"option '{field}': {message}")
    return EvalkitError(f"metric '{metric}': " + "; ".join(parts))


class Metric(ABC):
    """Base class; subclasses set the class attributes and implement `score`.

    Attributes:
        name: Registry name used in task YAML files and the store.
        version: Bumped whenever a change can move a number; stored with every score.
        higher_is_better: Direction, shown on leaderboards and used by the gate. Never inverted for display.
        kind: `report` or `grounding`: which parser output the metric reads.
        corpus: True when `aggregate` needs the stats (not a plain mean of values).
        ci_needs_every_resample: True when a resample without a value (NaN) means the CI does not exist (1/mean
            where a resampled mean reaches 0), so no CI is stored instead of one from the other resamples.
        requires: What must be installed or downloaded for `available()` to pass (documentation).
        Options: The typed options a task YAML may give (`metrics: [{name, options}]`).
        diagnostic: True for RL-health diagnostics (evalkit/views/health.py): stored and resampled like any metric, but
            left out of leaderboard tables, run summaries and default comparisons, which they would swamp
            (`evalkit health` and the site's RL-health panel show them).
    """

    Options: ClassVar[type[MetricOptions]] = MetricOptions

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "report"
    corpus: ClassVar[bool] = False
    ci_needs_every_resample: ClassVar[bool] = False
    requires: ClassVar[str] = ""
    description: ClassVar[str] = ""
    diagnostic: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        try:
            self.typed_options = self.Options.model_validate(options)
        except ValidationError as exc:
            raise option_error(self.name, exc) from None
        self.options = options
        self.cache: Any = None  # an annotation cache (evalkit.store) bound by the runner, if any

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """EvalkitError naming the metric and option when `options` are not this metric's (no construction)."""
        try:
            cls.Options.model_validate(options)
        except ValidationError as exc:
            raise option_error(cls.name, exc) from None

    def fingerprint(self) -> str:
        """What, beyond `version` and options, a score depends on (the weights of a model-backed metric)."""
        return ""

    def canonical_options(self) -> dict[str, Any]:
        """Options with defaults filled in, without those that cannot move a number: `{}` and the explicit
        defaults are the same identity."""
        fields = type(self.typed_options).model_fields
        dumped = self.typed_options.model_dump(mode="json")
        return {k: v for k, v in sorted(dumped.items()) if (fields[k].json_schema_extra or {}).get("identity", True)}

    def identity(self) -> ScoreIdentity:
        """The score identity; call only when `available()` (the fingerprint may read weight files)."""
        return ScoreIdentity(self.name, str(self.version), self.canonical_options(), self.fingerprint())

    def available(self) -> str | None:
        """None when the metric can run; otherwise why not and how to fix it."""
        return None

    @abstractmethod
    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        """One SampleScore per (prediction, sample) pair, in order."""

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        """Corpus value from per-sample values/stats. Default: the mean of the per-sample values."""
        clean = [v for v in values if v is not None]
        return float(sum(clean) / len(clean)) if clean else float("nan")

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray | None:
        """Per-sample (n, k) matrix whose column sums determine the aggregate through `from_sums`, or None.

        None means the aggregate is not a function of sums; resampling then calls `aggregate` per resample.
        Default: for a mean metric, columns (value, 1) with (0, 0) for a missing value, so that
        `from_sums` is sum / count, exactly what `aggregate` computes. A subclass that overrides `aggregate`
        gets None unless it also overrides this method (and `from_sums`).
        """
        if self.corpus or type(self).aggregate is not Metric.aggregate:
            return None
        present = np.array([v is not None for v in values], dtype=bool)
        value = np.array([0.0 if v is None else float(v) for v in values], dtype=float)
        return np.column_stack([value, present.astype(float)])

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        """Aggregate values from column sums of `sufficient_matrix`: shape (..., k) -> (...). Vectorised."""
        total, count = sums[..., 0], sums[..., 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray | None:
        """Optional batch path for corpus metrics that are not functions of sums (COCO AP): the aggregate under
        each row of `counts` (resamples x samples; how often each sample is drawn), shape (resamples,).

        None (the default) makes resampling call `aggregate` once per resample. Only consulted when
        `sufficient_matrix` returns None.
        """
        return None

    def aggregate_swaps(
        self,
        values_a: Sequence[float | None],
        stats_a: Sequence[dict[str, Any]],
        values_b: Sequence[float | None],
        stats_b: Sequence[dict[str, Any]],
        swap: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Optional batch path of the paired permutation test for corpus metrics that are not functions of sums.

        `swap` is (permutations x samples), 1 where sample i's outputs change sides. Returns the aggregate of
        side A (A's records, B's where swapped) and of side B (the opposite), each shape (permutations,). None
        (the default) makes the test call `aggregate` twice per permutation.
        """
        return None


class ModelBackedMetric(Metric):
    """A metric whose model lives in a client object (weights lookup, lazy loading, annotation cache).

    Availability and the weights fingerprint (which keys cached per-pair results) come from the client.
    """

    client: Any

    def available(self) -> str | None:
        return self.client.unavailable()

    def fingerprint(self) -> str:
        """What, beyond `version`, a cached score depends on: the weights."""
        return self.client.version()


class MetricUnavailable(Exception):
    """Raised by `get_metric(..., require=True)` when the metric cannot run here."""


def safe_score(metric: Metric, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
    """Score a chunk; if the metric raises, score one by one so one bad text cannot sink the others.

    A score whose stats record an error never has a value (the failure is not a number, and readers find failures
    among the value-less scores only: evalkit.results.queries.failure_counts)."""
    try:
        scores = metric.score(predictions, samples)
        return [SampleScore(None, s.stats) if s.value is not None and "error" in (s.stats or {}) else s for s in scores]
    except Exception:
        if len(predictions) == 1:
            import traceback

            message = traceback.format_exc(limit=1).strip().splitlines()[-1]
            return [SampleScore(None, {"error": f"{metric.name} failed: {message}"})]
        return [s for p, x in zip(predictions, samples, strict=True) for s in safe_score(metric, [p], [x])]
