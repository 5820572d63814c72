"""CIDEr-D's batch resampling path (evalkit/metrics/cider_resample.py) against the generic path on the same resample
indices: `aggregate` on the drawn records, a drawn-twice sample twice, as evalkit.stats does without the hook.

Tolerance 1e-12: both are float64, the batch path sums the same terms in another order (per n-gram class, then
per sample), and a corpus CIDEr-D is at most 10, so rounding differences stay near 1e-14.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric
from evalkit.metrics.lexical import CiderD
from evalkit.sample import Parsed, Sample
from evalkit.stats import (
    Resampler,
    _indices_from_counts,
    bootstrap_distribution,
    cluster_counts,
    cluster_swaps,
    permutation_distribution,
)

WORDS = "the heart size is normal no pleural effusion or pneumothorax small nodule right upper lobe left".split()
TOLERANCE = 1e-12


def _stats(seed: int, n: int = 40) -> list[dict]:
    """CiderD stats of a corpus with the scorer's corners: empty prediction, empty and one-word references, a
    prediction equal to its reference, repeated pairs, and one sample whose scoring failed (no counts)."""
    rng = random.Random(seed)
    pairs = [("", "No pleural effusion."), ("Heart size is normal.", ""), ("ok", "ok"), ("a b c d", "a b c d")]
    while len(pairs) < n - 3:
        reference = " ".join(rng.choices(WORDS, k=rng.randint(1, 25))) + "."
        prediction = " ".join(rng.choices(WORDS, k=rng.randint(0, 25)))
        pairs.append((prediction, reference))
    pairs += pairs[5:7]
    metric = get_metric("cider_d")
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, (_, r) in enumerate(pairs)]
    stats = [s.stats for s in metric.score([Parsed(answer=p) for p, _ in pairs], samples)]
    return [*stats, {"error": "cider_d failed: boom"}]


def _generic(metric: Metric, stats: list[dict], counts: np.ndarray) -> np.ndarray:
    resampler = Resampler(metric, [None] * len(stats), stats)
    return np.array([resampler.aggregate_at(_indices_from_counts(row)) for row in counts])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_resamples_equal_the_generic_path(seed):
    metric = get_metric("cider_d")
    stats = _stats(seed)
    n = len(stats)
    counts = cluster_counts(np.random.default_rng(seed), n, 60)
    single = np.zeros((1, n))
    single[0, 7] = 1  # one record: log N = 0, every weight 0
    empty_reference_only = np.zeros((1, n))
    empty_reference_only[0, 1] = 2  # no reference n-gram drawn: the scorer has nothing (NaN)
    error_only = np.zeros((1, n))
    error_only[0, -1] = 1  # only the failed sample: no record at all (NaN)
    rows = np.vstack([counts, np.ones((1, n)), single, empty_reference_only, error_only])
    batch = metric.aggregate_resamples([None] * n, stats, rows)
    generic = _generic(metric, stats, rows)
    assert np.isnan(generic[-2:]).all() and not np.isnan(generic[:-2]).any()
    np.testing.assert_allclose(batch, generic, rtol=0, atol=TOLERANCE, equal_nan=True)
    assert batch[60] == pytest.approx(metric.aggregate([None] * n, stats), abs=TOLERANCE)  # all drawn once


@pytest.mark.parametrize("seed", [0, 3])
def test_batch_swaps_equal_the_generic_permutation(seed):
    metric = get_metric("cider_d")
    stats_a, stats_b = _stats(seed), _stats(seed + 10)
    n = len(stats_a)
    swap = cluster_swaps(np.random.default_rng(seed), n, 40)
    side_a, side_b = metric.aggregate_swaps([None] * n, stats_a, [None] * n, stats_b, swap)
    a, b = np.array(stats_a, dtype=object), np.array(stats_b, dtype=object)
    for row, flip in enumerate(swap > 0):
        assert side_a[row] == pytest.approx(metric.aggregate([None] * n, np.where(flip, b, a).tolist()), abs=1e-12)
        assert side_b[row] == pytest.approx(metric.aggregate([None] * n, np.where(flip, a, b).tolist()), abs=1e-12)


def test_bootstrap_and_permutation_take_the_batch_path_with_the_generic_values(monkeypatch):
    stats_a, stats_b = _stats(4), _stats(5)
    n = len(stats_a)
    groups = np.repeat(np.arange(n // 2 + 1), 2)[:n]  # clustered resampling consumes the same count rows

    def distributions():
        metric = get_metric("cider_d")
        pair = (Resampler(metric, [None] * n, stats_a), Resampler(metric, [None] * n, stats_b))
        return (
            bootstrap_distribution([pair[0]], 120, seed=7, groups=groups)[0],
            permutation_distribution([pair], 120, seed=8, groups=groups)[0],
        )

    calls = {"batch": 0}
    batch_path = CiderD.aggregate_resamples

    def counting(self, values, stats, counts):
        calls["batch"] += 1
        return batch_path(self, values, stats, counts)

    monkeypatch.setattr(CiderD, "aggregate_resamples", counting)
    fast_boot, fast_perm = distributions()
    assert calls["batch"] >= 1
    monkeypatch.setattr(CiderD, "aggregate_resamples", Metric.aggregate_resamples)  # the generic path
    monkeypatch.setattr(CiderD, "aggregate_swaps", Metric.aggregate_swaps)
    slow_boot, slow_perm = distributions()
    np.testing.assert_allclose(fast_boot, slow_boot, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(fast_perm, slow_perm, rtol=0, atol=2 * TOLERANCE)  # a difference of two values
