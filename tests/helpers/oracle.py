"""The generic resampling path as a test oracle for metrics with batch hooks (COCO AP, CIDEr-D)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.metrics.base import Metric
from evalkit.stats import _indices_from_counts

# Same counts, same float operations up to the order of the final sums: a few ulps of values of order 1-10.
ATOL = 1e-12


def generic(metric: Metric, values: Sequence[Any], stats: Sequence[dict[str, Any]], counts: np.ndarray) -> np.ndarray:
    """`aggregate` on the drawn records of each row of counts (copies of a sample next to each other)."""
    out = []
    for row in counts:
        index = _indices_from_counts(row)
        out.append(metric.aggregate([values[i] for i in index], [stats[i] for i in index]))
    return np.asarray(out, dtype=float)


def assert_close(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(np.isnan(a), np.isnan(b))
    assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=0, atol=ATOL)


def assert_swaps_match(metric: Metric, values_a, stats_a, values_b, stats_b, swap: np.ndarray) -> None:
    """`aggregate_swaps` equals `aggregate` on each row's mixed records, both sides."""
    side_a, side_b = metric.aggregate_swaps(values_a, stats_a, values_b, stats_b, swap)
    for row in range(swap.shape[0]):
        flip = swap[row] > 0
        mixed_a = [b if f else a for a, b, f in zip(stats_a, stats_b, flip, strict=True)]
        mixed_b = [a if f else b for a, b, f in zip(stats_a, stats_b, flip, strict=True)]
        assert abs(side_a[row] - metric.aggregate([], mixed_a)) <= ATOL
        assert abs(side_b[row] - metric.aggregate([], mixed_b)) <= ATOL
