"""Grounding metrics on hand-worked cases."""

import pytest

from evalkit.metrics import get_metric
from evalkit.metrics.grounding import greedy_matches, iou_matrix, radvlm_ap50
from evalkit.sample import Parsed, Sample

A = [0.0, 0.0, 0.5, 0.5]
B = [0.5, 0.5, 1.0, 1.0]
A_SHIFT = [0.0, 0.0, 0.5, 0.4]  # IoU with A = 0.8


def test_iou_matrix_values():
    ious = iou_matrix([A, A_SHIFT, B], [A, B])
    assert ious[0].tolist() == [1.0, 0.0]
    assert ious[1, 0] == pytest.approx(0.8)
    assert ious[2, 1] == 1.0


def test_radvlm_ap_perfect_and_empty():
    assert radvlm_ap50([A], [A])[0] == 1.0
    assert radvlm_ap50([], [A])[0] == 0.0
    assert radvlm_ap50([A], [])[0] == 0.0


def test_radvlm_ap_duplicate_prediction_is_a_false_positive():
    # TP then FP: precision [1, .5], recall [1, 1] -> AP 1.0 (the envelope keeps precision 1 at recall 1).
    value, matches = radvlm_ap50([A, A_SHIFT], [A])
    assert matches == [0, -1] and value == pytest.approx(1.0)
    # FP first, then TP: precision [0, .5], recall [0, 1] -> AP 0.5.
    value, matches = radvlm_ap50([B, A], [A])
    assert matches == [-1, 0] and value == pytest.approx(0.5)


def test_radvlm_ap_multi_box_reference_and_miss():
    # Two references, one found: recall 0.5 at precision 1 -> AP 0.5.
    assert radvlm_ap50([A], [A, B])[0] == pytest.approx(0.5)
    # Both found in order: AP 1.
    assert radvlm_ap50([B, A], [A, B])[0] == pytest.approx(1.0)
    # Miss (IoU below 0.5) then hit: precision [0, .5], recall [0, .5] -> AP 0.25.
    assert radvlm_ap50([[0.6, 0.0, 0.9, 0.3], B], [A, B])[0] == pytest.approx(0.25)


def test_greedy_match_pairs_each_prediction_with_its_best_reference():
    # The first prediction overlaps both references; it takes the better one, the second takes the other.
    refs = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.45]]
    assert greedy_matches([[0.0, 0.0, 0.5, 0.45], [0.0, 0.0, 0.5, 0.5]], refs) == [1, 0]


def _scores(name, preds, refs):
    metric = get_metric(name)
    samples = [Sample(f"s{i}", "t", [], reference_boxes=r) for i, r in enumerate(refs)]
    return [s.value for s in metric.score([Parsed(answer="", boxes=p) for p in preds], samples)]


def test_miou_and_acc50_definitions():
    preds = [[A_SHIFT], [], [A, B]]
    refs = [[A], [A], [A, [0.5, 0.5, 1.0, 0.8]]]
    assert _scores("miou", preds, refs) == pytest.approx([0.8, 0.0, (1.0 + 0.6) / 2])
    assert _scores("acc50", preds, refs) == pytest.approx([1.0, 0.0, 1.0])
