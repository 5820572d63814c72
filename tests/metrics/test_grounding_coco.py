"""coco_ap / coco_ap50: evalkit's per-sample records + accumulation equal pycocotools COCOeval, exactly."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.metrics import _box, _random_case
from pycocotools import mask as mask_utils
from pycocotools.cocoeval import Params

from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics.grounding import (
    COCO_IOU_THRESHOLDS,
    COCO_MAX_DETECTIONS,
    COCO_RECALL_THRESHOLDS,
    _xywh,
    coco_ap_from_records,
    coco_ap_pycocotools,
    coco_iou,
    coco_matches,
)
from evalkit.sample import Parsed, Sample


def _records(predicted, reference):
    return [{"coco_tp": coco_matches(p, r), "n_ref": len(r)} for p, r in zip(predicted, reference, strict=True)]


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def test_constants_are_pycocotools_own():
    params = Params(iouType="bbox")
    assert np.array_equal(params.iouThrs, COCO_IOU_THRESHOLDS)
    assert np.array_equal(params.recThrs, COCO_RECALL_THRESHOLDS)
    assert params.maxDets[-1] == COCO_MAX_DETECTIONS


def test_iou_is_bit_identical_to_pycocotools():
    rng = np.random.default_rng(0)
    for grid in (None, 7):
        d = _xywh([_box(rng, grid) for _ in range(30)])
        g = _xywh([_box(rng, grid) for _ in range(20)])
        assert np.array_equal(coco_iou(d, g), mask_utils.iou(d.tolist(), g.tolist(), [0] * len(g)))


@pytest.mark.parametrize("grid", [None, 4, 8])
def test_randomised_parity_with_pycocotools(grid):
    rng = np.random.default_rng(grid or 1)
    for _ in range(60):
        predicted, reference = _random_case(rng, grid)
        ours = coco_ap_from_records(_records(predicted, reference))
        theirs = coco_ap_pycocotools(predicted, reference)
        assert all(_same(a, b) for a, b in zip(ours, theirs, strict=True)), (predicted, reference, ours, theirs)


def test_more_than_100_boxes_keeps_the_first_100_in_output_order():
    rng = np.random.default_rng(5)
    reference = [[_box(rng, None) for _ in range(30)], [[0.1, 0.1, 0.4, 0.4]]]
    # 120 misses first, then the hits: COCO keeps the first 100 (all scored 1.0), so the hits are never seen.
    predicted = [[[0.9, 0.9, 0.95, 0.95]] * 120 + reference[0], [[0.1, 0.1, 0.4, 0.4]]]
    assert len(coco_matches(predicted[0], reference[0])) == 100
    assert coco_ap_from_records(_records(predicted, reference)) == coco_ap_pycocotools(predicted, reference)


def test_edge_cases():
    box = [0.1, 0.1, 0.5, 0.5]
    assert coco_ap_from_records(_records([[], []], [[box], [box]])) == (0.0, 0.0)  # no detection at all
    assert coco_ap_pycocotools([[], []], [[box], [box]]) == (0.0, 0.0)
    assert all(np.isnan(v) for v in coco_ap_from_records(_records([[box]], [[]])))  # no reference: COCO says -1
    assert all(np.isnan(v) for v in coco_ap_pycocotools([[box]], [[]]))
    # A perfect answer: COCO's precision tp / (tp + eps) makes it 1 - 2e-16, and so does evalkit.
    perfect = coco_ap_from_records(_records([[box]], [[box]]))
    assert perfect == coco_ap_pycocotools([[box]], [[box]]) and perfect == pytest.approx((1.0, 1.0))


def _score(name: str, predicted, reference, **options):
    metric = get_metric(name, **options)
    samples = [Sample(f"s{i:03d}", "t", [], reference_boxes=r) for i, r in enumerate(reference)]
    return metric, metric.score([Parsed(answer="", boxes=p) for p in predicted], samples)


@pytest.mark.parametrize("name,index", [("coco_ap", 0), ("coco_ap50", 1)])
def test_metric_reaggregates_from_stats_only(name, index):
    rng = np.random.default_rng(11)
    predicted, reference = _random_case(rng, None)
    while len(reference) < 6 or sum(map(len, reference)) == 0:
        more_p, more_r = _random_case(rng, None)
        predicted, reference = predicted + more_p, reference + more_r
    metric, scores = _score(name, predicted, reference)
    stats = [s.stats for s in scores]
    assert metric.corpus
    expected = coco_ap_pycocotools(predicted, reference)[index]
    assert metric.aggregate([], stats) == expected
    # Row order from the store is arbitrary: image ids follow sorted sample ids.
    assert metric.aggregate([], list(reversed(stats))) == expected
    # A bootstrap resample (with repeats) is re-aggregated from the same stats and equals COCOeval on it.
    picks = sorted(np.random.default_rng(2).integers(0, len(stats), len(stats)).tolist())
    resampled = coco_ap_pycocotools([predicted[i] for i in picks], [reference[i] for i in picks])[index]
    assert _same(metric.aggregate([], [stats[i] for i in picks]), resampled)
    # The pycocotools backend rebuilds the COCO objects from the stored boxes and gives the same number.
    reference_backend = get_metric(name, backend="pycocotools")
    assert reference_backend.aggregate([], stats) == expected
    # Per-sample values: the sample's own COCO AP; undefined (None) without reference boxes.
    for score, refs in zip(scores, reference, strict=True):
        assert (score.value is None) == (not refs)


def test_equal_scores_make_coco_ap_order_dependent():
    # Why evalkit fixes the image order: the same two samples in the other order give another AP.
    hit, miss = [[0.1, 0.1, 0.4, 0.4]], [[0.6, 0.6, 0.9, 0.9]]
    predicted = [hit, miss]
    reference = [hit, [[0.1, 0.6, 0.3, 0.9]]]
    forward = coco_ap_pycocotools(predicted, reference)
    backward = coco_ap_pycocotools(predicted[::-1], reference[::-1])
    assert forward != backward
    assert coco_ap_from_records(_records(predicted[::-1], reference[::-1])) == backward


def test_bad_options_are_errors():
    with pytest.raises(EvalkitError, match="backend"):
        get_metric("coco_ap", backend="torchmetrics")
    with pytest.raises(EvalkitError, match="unknown option"):
        get_metric("coco_ap50", max_dets=10)
