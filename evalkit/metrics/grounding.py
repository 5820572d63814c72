"""Grounding metrics on 0-1 boxes: per-sample match records first, aggregation second (as COCOeval splits them).

Definitions (each named for what it is, because papers use the same words for different things):
- `miou`: per sample, the mean over reference boxes of the best IoU any predicted box reaches; mean over samples.
- `acc50`: per sample, the fraction of reference boxes whose best IoU is >= 0.5; mean over samples.
- `radvlm_map50`: RadVLM's per-sample "mAP@0.5": predictions in output order, each greedily matched to the
  best still-unmatched reference at IoU >= 0.5, VOC all-point AP per sample; an empty prediction or an empty
  reference gives 0; mean over samples. It is not COCO mAP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, SampleScore
from evalkit.sample import Box, Parsed, Sample


def iou_matrix(predicted: Sequence[Box], reference: Sequence[Box]) -> np.ndarray:
    """IoU of every predicted box (rows) with every reference box (columns); continuous coordinates."""
    if len(predicted) == 0 or len(reference) == 0:
        return np.zeros((len(predicted), len(reference)))
    p = np.asarray(predicted, dtype=float)[:, None, :]
    r = np.asarray(reference, dtype=float)[None, :, :]
    ix = np.clip(np.minimum(p[..., 2], r[..., 2]) - np.maximum(p[..., 0], r[..., 0]), 0, None)
    iy = np.clip(np.minimum(p[..., 3], r[..., 3]) - np.maximum(p[..., 1], r[..., 1]), 0, None)
    inter = ix * iy
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_r = (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
    union = area_p + area_r - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def best_iou_per_reference(predicted: Sequence[Box], reference: Sequence[Box]) -> list[float]:
    if not reference:
        return []
    if not predicted:
        return [0.0] * len(reference)
    return iou_matrix(predicted, reference).max(axis=0).tolist()


def greedy_matches(predicted: Sequence[Box], reference: Sequence[Box], threshold: float = 0.5) -> list[int]:
    """For each prediction in output order, the index of the reference it matched, or -1 (a false positive)."""
    ious = iou_matrix(predicted, reference)
    taken: set[int] = set()
    matches: list[int] = []
    for row in ious:
        best = -1  # the first best reference wins ties
        for j, value in enumerate(row):
            if j not in taken and value >= threshold and (best < 0 or value > row[best]):
                best = j
        if best >= 0:
            taken.add(best)
        matches.append(best)
    return matches


def voc_ap(recall: Sequence[float], precision: Sequence[float]) -> float:
    """VOC all-point interpolated AP (area under the monotone precision envelope)."""
    mrec = np.concatenate(([0.0], np.asarray(recall, dtype=float), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, dtype=float), [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def radvlm_ap50(predicted: Sequence[Box], reference: Sequence[Box]) -> tuple[float, list[int]]:
    if not predicted or not reference:
        return 0.0, [-1] * len(predicted)
    matches = greedy_matches(predicted, reference, 0.5)
    tp = np.cumsum([m >= 0 for m in matches])
    fp = np.cumsum([m < 0 for m in matches])
    recall = tp / len(reference)
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return voc_ap(recall, precision), matches


def _record(pred: Parsed, sample: Sample) -> dict[str, Any]:
    return {"n_pred": len(pred.boxes), "n_ref": len(sample.reference_boxes), "parse_error": pred.parse_error}


class _GroundingMetric(Metric):
    kind = "grounding"


@register_metric
class MeanIoU(_GroundingMetric):
    name = "miou"
    description = "per sample: mean over reference boxes of the best IoU of any predicted box"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            best = best_iou_per_reference(pred.boxes, sample.reference_boxes)
            value = float(np.mean(best)) if best else 0.0
            out.append(SampleScore(value, {**_record(pred, sample), "best_iou": [round(v, 6) for v in best]}))
        return out


@register_metric
class AccuracyAt50(_GroundingMetric):
    name = "acc50"
    description = "per sample: fraction of reference boxes with best IoU >= 0.5"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            best = best_iou_per_reference(pred.boxes, sample.reference_boxes)
            value = float(np.mean([v >= 0.5 for v in best])) if best else 0.0
            out.append(SampleScore(value, _record(pred, sample)))
        return out


@register_metric
class RadVLMMap50(_GroundingMetric):
    name = "radvlm_map50"
    description = "RadVLM per-sample greedy AP@0.5 (VOC all-point), mean over samples; not COCO mAP"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            value, matches = radvlm_ap50(pred.boxes, sample.reference_boxes)
            out.append(SampleScore(value, {**_record(pred, sample), "matches": matches}))
        return out


def soft_f1_iou(predicted: Sequence[Box], reference: Sequence[Box]) -> tuple[float, list[tuple[int, int, float]]]:
    """IoU-weighted soft F1 with a Hungarian (maximum total IoU) one-to-one assignment.

    soft precision = sum of matched IoUs / #predictions, soft recall = sum / #references, F1 their harmonic
    mean; 0 when either side is empty. This is the RadVLM-GRPO grounding reward; training/rewards.py uses this
    very function. Returns (value, [(pred index, ref index, iou), ...]).
    """
    if not predicted or not reference:
        return 0.0, []
    from scipy.optimize import linear_sum_assignment

    ious = iou_matrix(predicted, reference)
    rows, cols = linear_sum_assignment(ious, maximize=True)
    pairs = [(int(r), int(c), float(ious[r, c])) for r, c in zip(rows, cols, strict=True)]
    total = sum(p[2] for p in pairs)
    precision, recall = total / len(predicted), total / len(reference)
    value = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return value, pairs


@register_metric
class SoftF1IoU(_GroundingMetric):
    name = "soft_f1_iou"
    description = "IoU-weighted soft F1 with Hungarian matching (the RadVLM-GRPO grounding reward)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            value, pairs = soft_f1_iou(pred.boxes, sample.reference_boxes)
            out.append(
                SampleScore(value, {**_record(pred, sample), "pairs": [[p, r, round(i, 6)] for p, r, i in pairs]})
            )
        return out
