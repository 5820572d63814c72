"""Vectorised CIDEr-D resampling equals the generic path (`aggregate` on the drawn records) on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.oracle import assert_close, assert_swaps_match, generic

from evalkit.metrics import get_metric
from evalkit.metrics.lexical import CiderD
from evalkit.sample import Parsed, Sample
from evalkit.stats import Resampler, bootstrap_distribution, permutation_distribution

WORDS = "the left right lung pleural effusion small no acute opacity heart size normal is of and a".split()


def _reports(rng: np.random.Generator, n: int) -> list[str]:
    out = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.05:
            out.append("")  # no n-gram at all
        elif kind < 0.1:
            out.append("effusion")  # a single unigram: no bigram, so the length penalty sees 0
        elif kind < 0.2:
            # Newlines and tabs split tokens like spaces; numbers and punctuation stay glued to their words.
            size = rng.choice(["2.5 cm", "3 x 4 mm", "12mm", "1,5"])
            out.append(f"Nodule {size}\nin the R.U.L.,\tno  effusion; (stable) since 2019-01-02.")
        else:
            words = rng.choice(WORDS, int(rng.integers(2, 30)))
            out.append(" ".join(words) + (" ." if rng.random() < 0.5 else ""))
    return out


def _stats(hyps: list[str], refs: list[str]):
    metric = get_metric("cider_d")
    samples = [Sample(f"s{i:03d}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    scores = metric.score([Parsed(answer=h) for h in hyps], samples)
    return metric, [s.value for s in scores], [s.stats for s in scores]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bootstrap_and_cluster_counts_match_generic(seed):
    rng = np.random.default_rng(seed)
    n = 60
    refs, hyps = _reports(rng, n), _reports(rng, n)
    hyps[:10] = refs[:10]  # exact matches
    metric, values, stats = _stats(hyps, refs)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(40)]).astype(float)
    # Cluster-style rows: some samples drawn several times, others not at all; one drawn sample; nothing drawn.
    single = np.zeros((1, n))
    single[0, 3] = 1
    counts = np.vstack([counts, rng.integers(0, 5, (15, n)) * (rng.random((15, n)) < 0.5), single, np.zeros((1, n))])
    assert_close(metric.aggregate_resamples(values, stats, counts), generic(metric, values, stats, counts))


def test_unit_counts_equal_the_point_value_and_edge_corpora():
    rng = np.random.default_rng(5)
    refs, hyps = _reports(rng, 30), _reports(rng, 30)
    metric, values, stats = _stats(hyps, refs)
    assert metric.aggregate_resamples(values, stats, np.ones((1, 30)))[0] == pytest.approx(
        metric.aggregate(values, stats), abs=1e-12
    )
    # References without any n-gram: the scorer raises, evalkit (generic and batch) gives NaN.
    metric, values, stats = _stats(["a b c", "d"], ["", ""])
    assert np.isnan(metric.aggregate_resamples(values, stats, np.ones((2, 2)))).all()
    # A sample without CIDEr statistics (failed generation, excluded) is skipped by both paths.
    metric, values, stats = _stats(hyps[:5], refs[:5])
    stats = [*stats[:2], {}, *stats[2:]]
    counts = rng.integers(0, 3, (10, 6)).astype(float)
    assert_close(metric.aggregate_resamples([], stats, counts), generic(metric, [None] * 6, stats, counts))


@pytest.mark.parametrize("case", ["same references", "other references", "a failed sample on one side"])
def test_swaps_match_generic(case):
    # Same references (two runs on one task): the per-sample shortcut; otherwise the 2n-record count path.
    rng = np.random.default_rng(8)
    refs = _reports(rng, 40)
    _, va, sa = _stats(_reports(rng, 40), refs)
    _, vb, sb = _stats(_reports(rng, 40), _reports(rng, 40) if case == "other references" else refs)
    if case == "a failed sample on one side":
        sb[7] = {}
    metric = CiderD()
    swap = (rng.random((30, 40)) < 0.5).astype(float)
    assert_swaps_match(metric, va, sa, vb, sb, swap)


class _GenericCiderD(CiderD):
    """The parity oracle: CIDEr-D with the batch hooks switched off (one `aggregate` per resample)."""

    def aggregate_resamples(self, values, stats, counts):
        return None

    def aggregate_swaps(self, values_a, stats_a, values_b, stats_b, swap):
        return None


def test_stats_wiring_uses_the_hooks_and_agrees_with_the_generic_path():
    rng = np.random.default_rng(11)
    refs = _reports(rng, 50)
    _, va, sa = _stats(_reports(rng, 50), refs)
    _, vb, sb = _stats(_reports(rng, 50), refs)
    shared = CiderD()  # one metric object for both runs: the layout cache must not mix them up
    fast = [Resampler(shared, va, sa), Resampler(shared, vb, sb)]
    slow = [Resampler(_GenericCiderD(), va, sa), Resampler(_GenericCiderD(), vb, sb)]
    groups = np.repeat(np.arange(10), 5)
    for cluster in (None, groups):
        for a, b in zip(
            bootstrap_distribution(fast, 60, 3, groups=cluster),
            bootstrap_distribution(slow, 60, 3, groups=cluster),
            strict=True,
        ):
            assert_close(a, b)
        assert_close(
            permutation_distribution([tuple(fast)], 40, 4, groups=cluster)[0],
            permutation_distribution([tuple(slow)], 40, 4, groups=cluster)[0],
        )
