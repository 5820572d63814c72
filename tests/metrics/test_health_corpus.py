"""Corpus-level RL-health diagnostics: hand-computed values, and batch resampling / permutation paths equal to
recomputation (`aggregate`) on the drawn records, as tests/metrics/test_cider_resample.py holds CIDEr-D."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.oracle import assert_close, assert_swaps_match, generic

from evalkit.metrics import get_metric
from evalkit.sample import Parsed, Sample
from evalkit.stats import Resampler, bootstrap_distribution, permutation_distribution

CORPUS = ["no effusion .", "no effusion .", "small left effusion", "no  effusion .", ""]
NAMES = ["distinct_answers", "largest_cluster_share", "distinct_2", "self_bleu_presence"]
WORDS = "the left right lung pleural effusion small no acute opacity heart size normal is".split()


def _stats(name: str, answers: list[str], **options):
    metric = get_metric(name, **options)
    samples = [Sample(f"s{i:03d}", "t", [], reference_text="x") for i in range(len(answers))]
    scores = metric.score([Parsed(answer=a) for a in answers], samples)
    return metric, [s.value for s in scores], [s.stats for s in scores]


def _answers(rng: np.random.Generator, n: int) -> list[str]:
    templates = ["no acute process .", "the heart size is normal .", ""]
    out = []
    for _ in range(n):
        if rng.random() < 0.4:
            out.append(templates[int(rng.integers(len(templates)))])
        else:
            out.append(" ".join(rng.choice(WORDS, int(rng.integers(1, 12)))))
    return out


def test_hand_computed_values():
    # Answers after whitespace normalisation: {"no effusion ." x3, "small left effusion", ""}.
    metric, values, stats = _stats("distinct_answers", CORPUS)
    assert metric.aggregate(values, stats) == pytest.approx(3 / 5)
    metric, values, stats = _stats("largest_cluster_share", CORPUS)
    assert metric.aggregate(values, stats) == pytest.approx(3 / 5)
    # Bigrams: "no effusion", "effusion ." three times each; "small left", "left effusion": 4 distinct of 8.
    metric, values, stats = _stats("distinct_2", CORPUS)
    assert metric.aggregate(values, stats) == pytest.approx(4 / 8)
    metric, values, stats = _stats("distinct_2", CORPUS, n=1)
    assert metric.aggregate(values, stats) == pytest.approx(5 / 12)  # no effusion . small left: 5 of 3*3 + 3
    metric, values, stats = _stats("self_bleu_presence", ["a b c d", "a b c d", "e f g h"])
    # Orders 1..4: 8 of 12 unigrams, 6 of 9 bigrams, 4 of 6 trigrams, 2 of 3 four-grams are shared.
    assert metric.aggregate(values, stats) == pytest.approx(2 / 3)
    metric, values, stats = _stats("self_bleu_presence", ["a b c d", "a x y z"])
    assert metric.aggregate(values, stats) == pytest.approx(0.0)
    # Too short for a 4-gram anywhere: undefined.
    metric, values, stats = _stats("self_bleu_presence", ["a b", "a b"])
    assert np.isnan(metric.aggregate(values, stats))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_resampling_equals_recomputation(name, seed):
    rng = np.random.default_rng(seed)
    n = 40
    metric, values, stats = _stats(name, _answers(rng, n))
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(30)]).astype(float)
    single = np.zeros((1, n))
    single[0, 5] = 1
    clustered = rng.integers(0, 4, (10, n)) * (rng.random((10, n)) < 0.5)
    counts = np.vstack([counts, clustered, single, np.zeros((1, n)), np.ones((1, n))])
    assert_close(metric.aggregate_resamples(values, stats, counts), generic(metric, values, stats, counts))
    assert metric.aggregate_resamples(values, stats, np.ones((1, n)))[0] == pytest.approx(
        metric.aggregate(values, stats), nan_ok=True
    )


@pytest.mark.parametrize("name", NAMES)
def test_swaps_equal_recomputation_and_stats_paths(name):
    rng = np.random.default_rng(3)
    _, va, sa = _stats(name, _answers(rng, 30))
    metric, vb, sb = _stats(name, _answers(rng, 30))
    swap = (rng.random((12, 30)) < 0.5).astype(float)
    assert_swaps_match(metric, va, sa, vb, sb, swap)
    # Through evalkit.stats: the bootstrap and permutation distributions take the batch hooks.
    ra, rb = Resampler(metric, va, sa), Resampler(metric, vb, sb)
    (boot,) = bootstrap_distribution([ra], 50, 0)
    assert np.isfinite(boot).mean() > 0.9
    (perm,) = permutation_distribution([(ra, rb)], 50, 0)
    assert perm.shape == (50,)


def test_a_failed_sample_without_stats_is_skipped():
    metric, _, stats = _stats("largest_cluster_share", ["a", "a", "b"])
    stats = [*stats, {}]
    counts = np.array([[1, 1, 1, 1], [0, 0, 1, 3], [2, 0, 0, 1]], dtype=float)
    assert_close(metric.aggregate_resamples([None] * 4, stats, counts), generic(metric, [None] * 4, stats, counts))


@pytest.mark.parametrize("name", ["distinct_answers", "distinct_2", "self_bleu_presence"])
def test_bootstrap_copies_of_a_sample_are_one_answer(name):
    # Drawing an image twice must not look like template collapse: copies count once for the diversity numbers.
    metric, values, stats = _stats(name, ["a b c d e", "f g h i j", "a b c x y"])
    once = metric.aggregate(values, stats)
    assert metric.aggregate([None] * 5, [stats[0], stats[0], stats[1], stats[2], stats[2]]) == pytest.approx(once)
    counts = np.array([[3.0, 1.0, 2.0]])
    assert metric.aggregate_resamples(values, stats, counts)[0] == pytest.approx(once)


def test_largest_cluster_share_weighs_copies():
    metric, values, stats = _stats("largest_cluster_share", ["a", "a", "b"])
    assert metric.aggregate(values, stats) == pytest.approx(2 / 3)
    assert metric.aggregate_resamples(values, stats, np.array([[0.0, 1.0, 3.0]]))[0] == pytest.approx(3 / 4)
