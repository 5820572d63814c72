"""radvlm_map50, soft_f1_iou, miou and acc50 on hand-worked cases, and soft-F1 against a brute-force assignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalkit.metrics import get_metric
from evalkit.metrics.grounding import greedy_matches, iou_matrix, radvlm_ap50, soft_f1_iou
from evalkit.sample import Parsed, Sample

A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]
C = [0.0, 0.6, 0.3, 0.9]
A_NEAR = [0.0, 0.0, 0.5, 0.45]  # IoU 0.9 with A
A_LOW = [0.0, 0.0, 0.5, 0.4]  # IoU 0.8 with A, 0.889 with A_NEAR


def _values(name, predictions, references, **options):
    metric = get_metric(name, **options)
    samples = [Sample(f"s{i}", "t", [], reference_boxes=r) for i, r in enumerate(references)]
    scores = metric.score([Parsed(answer="", boxes=p) for p in predictions], samples)
    return [s.value for s in scores], metric.aggregate([s.value for s in scores], [s.stats for s in scores])


# --- radvlm_map50 -------------------------------------------------------------------------------------------------


def test_radvlm_match_looks_only_at_the_best_reference():
    # RadVLM's evaluate_boxes: the second prediction's best reference (A, IoU 0.9) is taken, so it is a false
    # positive although A_LOW (IoU 0.889) is free. Precision [1, .5], recall [.5, .5] -> AP 0.5 (a "best
    # unmatched reference" rule would give 1.0).
    assert greedy_matches([A, A_NEAR], [A, A_LOW]) == [0, -1]
    value, matches = radvlm_ap50([A, A_NEAR], [A, A_LOW])
    assert matches == [0, -1] and value == pytest.approx(0.5)


@pytest.mark.parametrize(
    "predicted,reference,expected,matches",
    [
        ([A, A, A], [A], 1.0, [0, -1, -1]),  # duplicates after a hit: precision envelope keeps 1 at recall 1
        ([B, A, A], [A], 0.5, [-1, 0, -1]),  # FP first: precision .5 at recall 1
        ([B], [A], 0.0, [-1]),  # miss
        ([], [A], 0.0, []),  # empty output (a parse failure gives this too)
        ([A], [], 0.0, [-1]),  # empty reference
        ([A, B], [A, B, C], 2 / 3, [0, 1]),  # multi-box reference, one missed
        ([C, B, A], [A, B, C], 1.0, [2, 1, 0]),  # all found, any order
        ([[0.6, 0.0, 0.9, 0.3], B], [A, B], 0.25, [-1, 1]),  # miss then hit: precision .5 at recall .5
        ([[0.0, 0.0, 1.0, 0.5]], [[0.0, 0.0, 1.0, 1.0]], 1.0, [0]),  # IoU exactly 0.5 is a hit (>=)
        ([[0.0, 0.0, 1.0, 0.499]], [[0.0, 0.0, 1.0, 1.0]], 0.0, [-1]),  # just below
    ],
)
def test_radvlm_ap_hand_worked(predicted, reference, expected, matches):
    value, got = radvlm_ap50(predicted, reference)
    assert got == matches
    assert value == pytest.approx(expected)


def test_radvlm_map50_is_the_mean_over_samples_and_records_matches():
    values, corpus = _values("radvlm_map50", [[A, A_NEAR], [B], []], [[A, A_LOW], [A], [A]])
    assert values == pytest.approx([0.5, 0.0, 0.0]) and corpus == pytest.approx(0.5 / 3)
    metric = get_metric("radvlm_map50")
    stats = metric.score([Parsed(answer="", boxes=[A, A_NEAR])], [Sample("s", "t", [], reference_boxes=[A, A_LOW])])
    assert stats[0].stats["matches"] == [0, -1] and stats[0].stats["match_iou"] == [1.0, None]
    assert metric.version == "2"


# --- soft_f1_iou --------------------------------------------------------------------------------------------------


def _grpo_formula(mass: float, valid: int, n_pred: int, n_ref: int) -> float:
    recall = mass / (n_ref + 1e-8)
    precision = mass / (mass + (n_pred - valid) + 1e-8)
    return 2.0 * precision * recall / (precision + recall + 1e-8)


def _brute_force_soft_f1(predicted, reference) -> float:
    if not predicted or not reference:
        return 0.0
    ious = iou_matrix(predicted, reference)
    k = min(len(predicted), len(reference))
    best = None
    for rows in itertools.permutations(range(len(predicted)), k):
        for cols in itertools.permutations(range(len(reference)), k):
            values = [ious[r, c] for r, c in zip(rows, cols, strict=True)]
            total = sum(values)
            if best is None or total > best[0] + 1e-12:
                best = (total, sum(v for v in values if v > 0), sum(1 for v in values if v > 0))
    _, mass, valid = best
    return _grpo_formula(mass, valid, len(predicted), len(reference))


def test_soft_f1_hand_worked():
    # One box at IoU 0.8: mass .8, nothing unmatched -> precision 1, recall .8, F1 = 1.6 / 1.8.
    assert soft_f1_iou([A_LOW], [A])[0] == pytest.approx(1.6 / 1.8, abs=1e-7)
    # A hit plus a far box: precision 1 / (1 + 1), recall 1 -> F1 2/3.
    value, pairs = soft_f1_iou([A, B], [A])
    assert value == pytest.approx(2 / 3, abs=1e-7) and pairs == [(0, 0, 1.0)]
    # A perfect answer scores 1 minus the reward's 1e-8 guards.
    assert 1 - 1e-7 < soft_f1_iou([A, B], [A, B])[0] < 1.0
    assert soft_f1_iou([], [A])[0] == 0.0 and soft_f1_iou([A], [])[0] == 0.0
    # A non-overlapping assigned pair does not count as a match: precision 0 -> F1 0.
    assert soft_f1_iou([B], [A]) == (0.0, [])


def test_soft_f1_equals_brute_force_best_assignment():
    rng = np.random.default_rng(3)

    def box():
        x = np.sort(rng.random(2))
        y = np.sort(rng.random(2))
        return [x[0], y[0], x[1], y[1]]

    for _ in range(300):
        predicted = [box() for _ in range(rng.integers(0, 5))]
        reference = [box() for _ in range(rng.integers(0, 4))]
        if reference and rng.random() < 0.5:  # near-copies, so that real matches happen
            predicted += [list(np.clip(np.asarray(r) + rng.normal(0, 0.03, 4), 0, 1)) for r in reference]
            predicted = [p for p in predicted if p[2] > p[0] and p[3] > p[1]]
        assert soft_f1_iou(predicted, reference)[0] == pytest.approx(
            _brute_force_soft_f1(predicted, reference), abs=1e-12
        )


# --- miou / acc50 -------------------------------------------------------------------------------------------------


def test_miou_acc50_per_reference_best_iou():
    predictions = [[A_LOW], [], [A, B], [B, B]]
    references = [[A], [A], [A, [0.5, 0.5, 1.0, 0.8]], [A, B]]
    values, corpus = _values("miou", predictions, references)
    assert values == pytest.approx([0.8, 0.0, (1.0 + 0.6) / 2, 0.5])
    assert corpus == pytest.approx(np.mean([0.8, 0.0, 0.8, 0.5]))
    values, _ = _values("acc50", predictions, references)
    assert values == pytest.approx([1.0, 0.0, 1.0, 0.5])
