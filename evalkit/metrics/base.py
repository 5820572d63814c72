"""The metric contract: per-sample values + sufficient statistics, aggregation from stored statistics only.

Corpus-level metrics (corpus BLEU, CheXbert micro/macro F1, COCO AP) keep per-sample sufficient statistics so
that a bootstrap resample re-aggregates stored numbers and never re-runs a model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from evalkit.sample import Parsed, Sample


@dataclass
class SampleScore:
    value: float | None
    stats: dict[str, Any] = field(default_factory=dict)


class Metric(ABC):
    """Base class; subclasses set the class attributes and implement `score`.

    Attributes:
        name: Registry name used in task YAML files and the store.
        version: Bumped whenever a change can move a number; stored with every score.
        higher_is_better: Direction, shown on leaderboards and used by the gate. Never inverted for display.
        kind: `report` or `grounding`: which parser output the metric reads.
        corpus: True when `aggregate` needs the stats (not a plain mean of values).
        requires: What must be installed or downloaded for `available()` to pass (documentation).
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    higher_is_better: ClassVar[bool] = True
    kind: ClassVar[str] = "report"
    corpus: ClassVar[bool] = False
    requires: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.cache: Any = None  # an annotation cache (evalkit.store) bound by the runner, if any

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


class MetricUnavailable(Exception):
    """Raised by `get_metric(..., require=True)` when the metric cannot run here."""
