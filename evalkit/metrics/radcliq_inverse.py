"""1/RadCliQ-v1: ReXrank's primary score, one over the corpus mean of the per-report RadCliQ-v1; higher is better.

ReXrank ranks by 1 / mean(RadCliQ-v1) (RadEval 2.x returns the same number). It is its own metric beside the raw
`radcliq_v1` (lower is better, what RadVLM-GRPO reports), never a replacement for it: the two names say which
convention a stored number follows.

Each sample stores its report's raw RadCliQ-v1 (`stats["radcliq_v1"]`, from the same features and annotation
caches as `radcliq_v1`); the corpus value is a function of the column sums (RadCliQ-v1, present) of those stats,
so bootstrap and permutation resamples re-aggregate stored numbers like every corpus metric. 1/x is only a score
while the mean is positive (RadCliQ-v1 is a standardised linear model and can be negative for good reports): a
corpus or resample whose mean is <= 0 has no value (NaN), and when any resample's mean is <= 0, i.e. the mean's
CI reaches 0, the CI is not stored (NaN) rather than inverted into a meaningless interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, SampleScore
from evalkit.metrics.radcliq import RadCliQV1
from evalkit.sample import Parsed, Sample

STAT = "radcliq_v1"


def inverse_of_mean(total: np.ndarray | float, count: np.ndarray | float) -> np.ndarray:
    """1 / (total / count) where that mean is positive, else NaN (no value). Vectorised."""
    total, count = np.asarray(total, dtype=float), np.asarray(count, dtype=float)
    defined = (count > 0) & (total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, count / np.where(defined, total, 1.0), np.nan)


@register_metric
class InverseRadCliQV1(Metric):
    """1 over the corpus mean of RadCliQ-v1 (ReXrank's primary score); higher is better."""

    name = "1/RadCliQ-v1"
    version = "1"
    higher_is_better = True
    corpus = True
    ci_needs_every_resample = True  # a resample with mean <= 0 has no 1/x: the CI is not stored (module docstring)
    requires = RadCliQV1.requires
    description = "1 / corpus mean of RadCliQ-v1 (ReXrank's primary score); higher is better; NaN if mean <= 0"
    Options = RadCliQV1.Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.inner = RadCliQV1(**options)

    def available(self) -> str | None:
        return self.inner.available()

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        """Per sample: the report's RadCliQ-v1 in the stats; the value is 1/that report alone (None if <= 0)."""
        self.inner.cache = self.cache
        out = []
        for raw in self.inner.score(predictions, samples):
            if raw.value is None:
                out.append(SampleScore(None, dict(raw.stats)))
                continue
            stats = {STAT: raw.value}
            value = float(inverse_of_mean(raw.value, 1.0))
            out.append(SampleScore(value if np.isfinite(value) else None, stats))
        return out

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray:
        # Columns: RadCliQ-v1 and 1 for a scored report, (0, 0) for one without a RadCliQ-v1 (a failed feature).
        rows = [[float(s[STAT]), 1.0] if s.get(STAT) is not None else [0.0, 0.0] for s in stats]
        return np.array(rows, dtype=float).reshape(len(rows), 2)

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        return inverse_of_mean(sums[..., 0], sums[..., 1])

    def aggregate(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> float:
        return float(self.from_sums(self.sufficient_matrix(values, stats).sum(axis=0)))
