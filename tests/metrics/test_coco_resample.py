"""Vectorised COCO AP resampling equals the generic path (`aggregate` on the drawn records) on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.metrics import _random_case
from helpers.oracle import assert_close, assert_swaps_match, generic

from evalkit.metrics import get_metric
from evalkit.metrics.grounding import CocoAP, CocoAP50
from evalkit.sample import Parsed, Sample
from evalkit.stats import Resampler, bootstrap_distribution, permutation_distribution


def _corpus(seed: int, grid: int | None, n: int = 40):
    rng = np.random.default_rng(seed)
    predicted, reference = [], []
    while len(reference) < n:
        p, r = _random_case(rng, grid)
        predicted += p
        reference += r
    return predicted[:n], reference[:n]


def _stats(name: str, predicted, reference, ids=None):
    metric = get_metric(name)
    ids = ids or [f"s{i:03d}" for i in range(len(reference))]
    samples = [Sample(sid, "t", [], reference_boxes=r) for sid, r in zip(ids, reference, strict=True)]
    scores = metric.score([Parsed(answer="", boxes=p) for p in predicted], samples)
    return metric, [s.value for s in scores], [s.stats for s in scores]


@pytest.mark.parametrize("name", ["coco_ap", "coco_ap50"])
@pytest.mark.parametrize("grid", [None, 4, 8])
def test_bootstrap_counts_match_generic(name, grid):
    predicted, reference = _corpus(grid or 3, grid)
    metric, values, stats = _stats(name, predicted, reference)
    rng = np.random.default_rng(7)
    n = len(stats)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(60)]).astype(float)
    # Cluster-style rows too: whole groups drawn several times, others not at all, an all-zero row.
    counts = np.vstack([counts, rng.integers(0, 5, (20, n)) * (rng.random((20, n)) < 0.5), np.zeros((1, n))])
    shuffled = rng.permutation(n)  # rows from the store come in any order: image order is by sample id
    values_s, stats_s = [values[i] for i in shuffled], [stats[i] for i in shuffled]
    fast = metric.aggregate_resamples(values_s, stats_s, counts[:, shuffled])
    assert_close(fast, generic(metric, values_s, stats_s, counts[:, shuffled]))


def test_ap_edge_cases_match_generic():
    box, far = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]
    cases = [
        ([[], []], [[box], [box]]),  # no detection at all
        ([[box], [box]], [[], []]),  # no reference at all: NaN
        ([[box] * 130, [far]], [[box] * 3, [far]]),  # more than 100 predictions, duplicates
        ([[far, box], [box, box], []], [[box], [box], [box, far]]),
    ]
    rng = np.random.default_rng(0)
    for predicted, reference in cases:
        for name in ("coco_ap", "coco_ap50"):
            metric, values, stats = _stats(name, predicted, reference)
            counts = rng.integers(0, 4, (30, len(stats))).astype(float)
            assert_close(metric.aggregate_resamples(values, stats, counts), generic(metric, values, stats, counts))


@pytest.mark.parametrize("cls", [CocoAP, CocoAP50])
def test_swaps_match_generic(cls):
    predicted_a, reference = _corpus(5, 8)
    predicted_b, _ = _corpus(6, 8)
    metric = cls()
    _, va, sa = _stats(cls.name, predicted_a, reference)
    _, vb, sb = _stats(cls.name, predicted_b, reference)
    swap = (np.random.default_rng(1).random((50, len(sa))) < 0.5).astype(float)
    assert_swaps_match(metric, va, sa, vb, sb, swap)


class _GenericCocoAP(CocoAP):
    """The parity oracle: COCO AP with the batch hooks switched off (one `aggregate` per resample)."""

    def aggregate_resamples(self, values, stats, counts):
        return None

    def aggregate_swaps(self, values_a, stats_a, values_b, stats_b, swap):
        return None


def test_stats_wiring_uses_the_hooks_and_agrees_with_the_generic_path():
    predicted_a, reference = _corpus(9, None, 60)
    predicted_b, _ = _corpus(10, None, 60)
    _, va, sa = _stats("coco_ap", predicted_a, reference)
    _, vb, sb = _stats("coco_ap", predicted_b, reference)
    fast = [Resampler(CocoAP(), va, sa), Resampler(CocoAP(), vb, sb)]
    slow = [Resampler(_GenericCocoAP(), va, sa), Resampler(_GenericCocoAP(), vb, sb)]
    for a, b in zip(bootstrap_distribution(fast, 200, 3), bootstrap_distribution(slow, 200, 3), strict=True):
        assert_close(a, b)
    quick = permutation_distribution([tuple(fast)], 100, 4)[0]
    oracle = permutation_distribution([tuple(slow)], 100, 4)[0]
    assert_close(quick, oracle)


def test_pycocotools_backend_keeps_the_generic_path():
    assert get_metric("coco_ap", backend="pycocotools").aggregate_resamples([], [], np.ones((1, 0))) is None


@pytest.mark.parametrize("grid", [None, 4])
def test_per_sample_values_equal_each_records_own_accumulation(grid):
    from evalkit.metrics.grounding import coco_ap_from_records

    predicted, reference = _corpus(grid or 12, grid, 80)
    for index, name in enumerate(("coco_ap", "coco_ap50")):
        _, values, stats = _stats(name, predicted, reference)
        for value, record in zip(values, stats, strict=True):
            expected = coco_ap_from_records([record])[index]
            assert (value is None and not record["n_ref"]) or value == expected


def test_sibling_grounding_metrics_share_one_iou_and_match_computation(monkeypatch):
    import evalkit.metrics.grounding as grounding

    predicted, reference = _corpus(21, None, 30)
    grounding._iou_matrix.cache_clear()
    grounding._coco_matches.cache_clear()
    calls = {"iou": 0}
    real = grounding._compute_iou

    def counting(p, r):
        calls["iou"] += 1
        return real(p, r)

    monkeypatch.setattr(grounding, "_compute_iou", counting)
    for name in ("radvlm_map50", "coco_ap", "coco_ap50", "miou", "acc50", "soft_f1_iou"):
        _stats(name, predicted, reference)
    distinct = len({(repr(p), repr(r)) for p, r in zip(predicted, reference, strict=True)})
    assert calls["iou"] == distinct
    assert grounding._coco_matches.cache_info().misses == distinct


def test_ap50_after_ap_on_the_same_resamples_reads_aps_table_and_equals_its_own_walk():
    import evalkit.metrics.coco_resample as coco_resample

    predicted_a, reference = _corpus(31, 8, 50)
    predicted_b, _ = _corpus(32, 8, 50)
    runs = [[_stats(name, p, reference) for name in ("coco_ap", "coco_ap50")] for p in (predicted_a, predicted_b)]
    together = [Resampler(m, v, s) for run in runs for m, v, s in run]  # A's AP, A's AP50, B's AP, B's AP50
    walks = {"n": 0}
    real = coco_resample._walk_rows

    def counting(*args):
        walks["n"] += 1
        return real(*args)

    coco_resample._walk_rows = counting
    try:
        shared = bootstrap_distribution(together, 120, 5)
        shared_walks = walks["n"]
        alone = [bootstrap_distribution([Resampler(type(r.metric)(), r.values, r.stats)], 120, 5)[0] for r in together]
        before_swaps = walks["n"]
        swaps = permutation_distribution([tuple(together[0::2]), tuple(together[1::2])], 60, 6)
        swap_walks = walks["n"] - before_swaps
        swaps_alone = [permutation_distribution([pair], 60, 6)[0] for pair in (together[0::2], together[1::2])]
    finally:
        coco_resample._walk_rows = real
    assert shared_walks == 2  # one walk per run: AP50 is a slice of AP's table
    assert swap_walks == 2  # one walk per side of the permutation, for AP and AP50 together
    for a, b in zip(shared, alone, strict=True):
        assert np.array_equal(a, b, equal_nan=True)
    for a, b in zip(swaps, swaps_alone, strict=True):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", ["coco_ap", "coco_ap50"])
def test_one_hit_copies_and_the_first_perfect_hit_match_generic_bit_for_bit(name):
    """The walk's shortcuts: a one-hit sample drawn many times (its first or last copy is the segment's best,
    misses or not, also across recall segments), and the first true positive with no false positive ahead, whose
    COCO float 1 / (1 + eps) is below the 1.0 of later perfect hits."""
    rng = np.random.default_rng(11)
    box, far = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]
    predicted, reference = [], []
    for i in range(24):
        kind = i % 4
        reference.append([box] if kind != 3 else [box, far])
        predicted.append([[box], [box, far], [far], [box, far]][kind])
    metric, values, stats = _stats(name, predicted, reference)
    counts = np.vstack(
        [
            rng.integers(0, 9, (40, len(stats))),  # many copies: segments crossed inside a sample's run
            np.eye(len(stats), dtype=np.int64)[:3] * 7,  # one sample alone, seven times
            np.tile([1, 0, 0, 0], (2, len(stats) // 4)),  # perfect hits only: the 1 / (1 + eps) tie
        ]
    ).astype(float)
    fast = metric.aggregate_resamples(values, stats, counts)
    assert np.array_equal(fast, generic(metric, values, stats, counts), equal_nan=True)
    assert fast[-1] == 1.0


def test_a_later_perfect_hit_in_the_first_recall_segment_lifts_it_to_one():
    """COCO's first true positive with no false positive ahead is 1 / (1 + eps), a later one is 1.0: when both
    fall in the first recall segment and everything after has false positives, AP's precision at recall 0 is 1.0.
    """
    box, far = [0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9]
    predicted, reference = [[box], [box], [far, box]], [[box], [box], [box]]
    metric, values, stats = _stats("coco_ap50", predicted, reference)
    # Two perfect hits, then 250 samples with a false positive first: 252 references, so recall 0.01 needs k = 3
    # and both perfect hits fall in recall 0's segment.
    counts = np.array([[2, 0, 250], [1, 1, 250], [0, 2, 250]], dtype=float)
    fast = metric.aggregate_resamples(values, stats, counts)
    assert np.array_equal(fast, generic(metric, values, stats, counts))
    curves = metric._curves(stats)
    table = curves._recent[-1][4]
    assert (table[:, 0, 0] == 1.0).all()


def test_values_do_not_depend_on_the_number_of_threads():
    import numba

    predicted, reference = _corpus(41, 8, 60)
    metric, values, stats = _stats("coco_ap", predicted, reference)
    counts = np.random.default_rng(3).integers(0, 4, (64, len(stats))).astype(float)
    most = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = metric.aggregate_resamples(values, stats, counts)
    finally:
        numba.set_num_threads(most)
    assert np.array_equal(one, metric.aggregate_resamples(values, stats, counts.copy()), equal_nan=True)


def _matches_by_loop(predicted, reference):
    """COCOeval's per-image matching written out in Python (the oracle of the compiled `coco_match_bits`)."""
    from evalkit.metrics.grounding import COCO_IOU_THRESHOLDS, _xywh, coco_iou

    kept = list(predicted[:100])
    if not kept or not reference:
        return [0] * len(kept)
    ious = coco_iou(_xywh(kept), _xywh(reference)).tolist()
    bits = [0] * len(kept)
    for t_index, t in enumerate(COCO_IOU_THRESHOLDS.tolist()):
        start, taken = min(t, 1 - 1e-10), [False] * len(reference)
        for d_index, row in enumerate(ious):
            best, match = start, -1
            for g_index, value in enumerate(row):
                if not taken[g_index] and value >= best:
                    best, match = value, g_index
            if match >= 0:
                taken[match] = True
                bits[d_index] |= 1 << t_index
    return bits


@pytest.mark.parametrize("grid", [None, 4, 8])
def test_compiled_matching_equals_the_python_loop(grid):
    from evalkit.metrics.grounding import _coco_matches

    rng = np.random.default_rng(grid or 5)
    cases = [_random_case(rng, grid) for _ in range(60)]
    pairs = [(p, r) for predicted, reference in cases for p, r in zip(predicted, reference, strict=True)]
    box = [0.1, 0.1, 0.5, 0.5]
    pairs += [
        ([[0.1, 0.1, float("inf"), 0.5], box], [box]),  # a non-finite prediction matches nothing
        ([[float("nan"), 0.1, 0.5, 0.5], box, box], [box, box]),  # NaN; equal IoUs: the last reference wins
        ([box] * 120, [box] * 3),  # past 100 predictions
    ]
    for predicted, reference in pairs:
        key_p = tuple(tuple(map(float, b)) for b in predicted)
        key_r = tuple(tuple(map(float, b)) for b in reference)
        assert list(_coco_matches.__wrapped__(key_p, key_r)) == _matches_by_loop(predicted, reference)
