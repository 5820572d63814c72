"""Grounding metrics on 0-1 boxes: per-sample match records first, aggregation second (as COCOeval splits them).

Definitions (each named for what it is, because papers use the same words for different things; docs/grounding.md
gives the sources and worked examples):
- `radvlm_map50`: RadVLM's per-sample "mAP@0.5" (`evaluate_boxes` in RadVLM's
  `radvlm/evaluation/compute_metrics_tasks.py`): predictions in output order; each takes the reference with the
  highest IoU over *all* references (first on ties) and is a true positive only if that IoU is >= 0.5 and that
  reference is not yet matched (it does not fall back to the next-best reference); VOC all-point AP per sample; an
  empty prediction or an empty reference gives 0; mean over samples. It is not COCO mAP.
- `coco_ap`, `coco_ap50`: pycocotools COCOeval, class-agnostic (one category), area range `all`, 100 detections,
  every predicted box scored 1.0. With equal scores COCO ranks detections by their order: within a sample the
  model's output order, across samples the image-id order, which evalkit assigns by sorted `sample_id`.
- `miou`: per sample, the mean over reference boxes of the best IoU any predicted box reaches; mean over samples.
- `acc50`: per sample, the fraction of reference boxes whose best IoU is >= 0.5; mean over samples.
- `soft_f1_iou`: RadVLM-GRPO's grounding reward (`soft_f1_hungarian` in `verl/custom_rewards/grounding_reward.py`):
  a Hungarian assignment maximising total IoU; matched pairs with IoU > 0 give the "TP mass" (sum of their IoUs);
  precision = mass / (mass + unmatched predictions), recall = mass / #references, F1 their harmonic mean, with the
  reward's 1e-8 guards; 0 when either side is empty.
"""

from __future__ import annotations

import contextlib
import gc
import io
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.coco_params import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS
from evalkit.sample import Box, Parsed, Sample

# One set of IoU matrices and COCO match records per (predicted, reference) pair, shared by every grounding metric
# of a run (the runner scores metric after metric over the same samples) and by repeated reward calls. Keyed by
# the box values; the cached arrays are read-only.
_PAIR_CACHE = 1 << 16


def _boxes_key(boxes: Sequence[Box]) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(map(float, b)) for b in boxes)


def iou_matrix(predicted: Sequence[Box], reference: Sequence[Box]) -> np.ndarray:
    """IoU of every predicted box (rows) with every reference box (columns); continuous coordinates (read-only)."""
    return _iou_matrix(_boxes_key(predicted), _boxes_key(reference))


@lru_cache(maxsize=_PAIR_CACHE)
def _iou_matrix(predicted: tuple[Box, ...], reference: tuple[Box, ...]) -> np.ndarray:
    ious = _compute_iou(predicted, reference)
    ious.setflags(write=False)
    return ious


def _compute_iou(predicted: Sequence[Box], reference: Sequence[Box]) -> np.ndarray:
    if len(predicted) == 0 or len(reference) == 0:
        return np.zeros((len(predicted), len(reference)))
    p = np.asarray(predicted, dtype=float)[:, None, :]
    r = np.asarray(reference, dtype=float)[None, :, :]
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: NaN, then IoU 0 below
        ix = np.clip(np.minimum(p[..., 2], r[..., 2]) - np.maximum(p[..., 0], r[..., 0]), 0, None)
        iy = np.clip(np.minimum(p[..., 3], r[..., 3]) - np.maximum(p[..., 1], r[..., 1]), 0, None)
        inter = ix * iy
        area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
        area_r = (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])
        union = area_p + area_r - inter
        ious = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.where(np.isfinite(p).all(axis=-1) & np.isfinite(r).all(axis=-1), ious, 0.0)


def nonfinite_boxes(boxes: Sequence[Box]) -> int:
    """How many boxes hold a non-finite coordinate (the seed reads a 309+-digit number as inf)."""
    return sum(1 for b in boxes if not all(np.isfinite(b)))


def best_iou_per_reference(predicted: Sequence[Box], reference: Sequence[Box]) -> list[float]:
    if not reference:
        return []
    if not predicted:
        return [0.0] * len(reference)
    return iou_matrix(predicted, reference).max(axis=0).tolist()


# --- RadVLM per-sample AP@0.5 -------------------------------------------------------------------------------------


def greedy_matches(predicted: Sequence[Box], reference: Sequence[Box], threshold: float = 0.5) -> list[int]:
    """RadVLM's matching: for each prediction in output order, the reference it matched, or -1 (a false positive).

    Each prediction looks only at its best reference over all references (`np.argmax`, so the first on ties); it
    is a match when that IoU is >= `threshold` and that reference is still unmatched. A prediction whose best
    reference is taken is a false positive even if another free reference overlaps it enough.
    """
    ious = iou_matrix(predicted, reference)
    taken: set[int] = set()
    matches: list[int] = []
    for row in ious:
        best = int(np.argmax(row))
        if row[best] >= threshold and best not in taken:
            taken.add(best)
            matches.append(best)
        else:
            matches.append(-1)
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
    """RadVLM's per-sample AP at IoU 0.5 and the match of each prediction (see `greedy_matches`)."""
    if not predicted or not reference:
        return 0.0, [-1] * len(predicted)
    matches = greedy_matches(predicted, reference, 0.5)
    tp = np.cumsum([m >= 0 for m in matches])
    fp = np.cumsum([m < 0 for m in matches])
    recall = tp / len(reference)
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return voc_ap(recall, precision), matches


# --- IoU-weighted soft F1 (RadVLM-GRPO reward) --------------------------------------------------------------------


def soft_f1_iou(predicted: Sequence[Box], reference: Sequence[Box]) -> tuple[float, list[tuple[int, int, float]]]:
    """RadVLM-GRPO's IoU-weighted soft F1 with a Hungarian (maximum total IoU) one-to-one assignment.

    TP mass = sum of the IoUs of assigned pairs with IoU > 0; unmatched predictions = #predictions - #such pairs;
    precision = mass / (mass + unmatched + 1e-8), recall = mass / (#references + 1e-8),
    F1 = 2PR / (P + R + 1e-8); 0 when either side is empty. The 1e-8 guards are the reward's own, kept so that this
    function and the published reward agree to the last bit (a perfect answer scores 1 - ~1e-8, not 1).
    evalkit/training/rewards.py uses this very function.
    Returns (value, [(pred index, ref index, iou), ...]) for the pairs
    that count (IoU > 0).
    """
    if not predicted or not reference:
        return 0.0, []
    from scipy.optimize import linear_sum_assignment

    ious = iou_matrix(predicted, reference)
    # `1 - IoU` minimised, exactly as the reward calls it, so that ties are broken the same way.
    rows, cols = linear_sum_assignment(1.0 - ious)
    assigned = ious[rows, cols]
    valid = assigned > 0.0
    mass = float(assigned[valid].sum())  # numpy's summation, as the reward: bit-identical values
    unmatched = len(predicted) - int(valid.sum())
    pairs = [(int(r), int(c), float(v)) for r, c, v in zip(rows[valid], cols[valid], assigned[valid], strict=True)]
    recall = mass / (len(reference) + 1e-8)
    precision = mass / (mass + unmatched + 1e-8)
    return float(2.0 * precision * recall / (precision + recall + 1e-8)), pairs


# --- COCO AP (pycocotools COCOeval, class-agnostic, every score 1.0) ----------------------------------------------

COCO_MAX_DETECTIONS = 100


def _xywh(boxes: Sequence[Box]) -> np.ndarray:
    b = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def coco_iou(predicted_xywh: np.ndarray, reference_xywh: np.ndarray) -> np.ndarray:
    """IoU on COCO `[x, y, w, h]` boxes with the same floating-point operations as pycocotools' `bbIou`."""
    d, g = predicted_xywh[:, None, :], reference_xywh[None, :, :]
    w = np.fmin(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.fmax(d[..., 0], g[..., 0])
    h = np.fmin(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.fmax(d[..., 1], g[..., 1])
    inter = w * h
    union = d[..., 2] * d[..., 3] + g[..., 2] * g[..., 3] - inter
    overlap = (w > 0) & (h > 0) & np.isfinite(d).all(axis=-1)  # a non-finite prediction matches nothing
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(overlap, inter / np.where(overlap, union, 1.0), 0.0)


def coco_matches(predicted: Sequence[Box], reference: Sequence[Box]) -> list[int]:
    """COCOeval's per-image matching as bit masks (see `_coco_matches`), computed once per box pair."""
    return list(_coco_matches(_boxes_key(predicted), _boxes_key(reference)))


@lru_cache(maxsize=_PAIR_CACHE)
def _coco_matches(predicted: tuple[Box, ...], reference: tuple[Box, ...]) -> tuple[int, ...]:
    """COCOeval's per-image matching, one bit mask per kept prediction: bit t set = true positive at IoU thr t.

    Mirrors `COCOeval.evaluateImg` for one category, area `all`, no crowd boxes: predictions (all scored 1.0, so in
    output order) beyond the first 100 are dropped; at each threshold each prediction takes, among the unmatched
    references with IoU >= min(t, 1 - 1e-10), the one with the highest IoU, the last one on ties.
    """
    kept = list(predicted[:COCO_MAX_DETECTIONS])
    if not kept or not reference:
        return (0,) * len(kept)
    from evalkit.metrics.coco_match import coco_match_bits

    bits = coco_match_bits(np.array(kept, dtype=float), np.array(reference, dtype=float), COCO_IOU_THRESHOLDS)
    return tuple(bits.tolist())


def coco_precision(records: Sequence[dict[str, Any]]) -> np.ndarray | None:
    """COCOeval's `accumulate` for area `all`, 100 detections: the (T, R) interpolated precision table.

    `records` are per-sample `{"coco_tp": [bit masks], "n_ref": int}` in image order. None when there is no
    reference box at all (COCO leaves the table at -1).
    """
    n_ref = sum(int(r["n_ref"]) for r in records)
    if n_ref == 0:
        return None
    masks = [m for r in records for m in r["coco_tp"]]
    n_thr, n_rec = len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS)
    if not masks:
        return np.zeros((n_thr, n_rec))
    bits = np.asarray(masks, dtype=np.int64)
    tps = ((bits[None, :] >> np.arange(n_thr, dtype=np.int64)[:, None]) & 1).astype(bool)
    tp_sum = np.cumsum(tps, axis=1).astype(float)
    fp_sum = np.cumsum(~tps, axis=1).astype(float)
    recall = tp_sum / n_ref
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]  # the right-to-left envelope
    n_det = bits.shape[0]
    table = np.zeros((n_thr, n_rec))
    for t in range(n_thr):
        index = np.searchsorted(recall[t], COCO_RECALL_THRESHOLDS, side="left")
        valid = index < n_det
        table[t, valid] = precision[t, index[valid]]
    return table


def coco_ap_from_records(records: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) exactly as `COCOeval.summarize` reports them (NaN where COCO reports -1)."""
    table = coco_precision(records)
    if table is None:
        return float("nan"), float("nan")
    return float(np.mean(table[table > -1])), float(np.mean(table[0][table[0] > -1]))


def coco_ap_pycocotools(predicted: Sequence[Sequence[Box]], reference: Sequence[Sequence[Box]]) -> tuple[float, float]:
    """(AP@[.5:.95], AP@.5) from pycocotools itself: image i+1 holds predicted[i] (score 1.0) and reference[i].

    pycocotools' `loadRes` cannot take an empty result list; with no prediction at all COCO's arithmetic gives
    precision 0 everywhere, so the answer is (0, 0) when there are references.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(reference))]
    ground_truth, detections = [], []
    for image_index, (preds, refs) in enumerate(zip(predicted, reference, strict=True)):
        for box in _xywh(refs).tolist():
            ground_truth.append(
                {
                    "id": len(ground_truth) + 1,
                    "image_id": image_index + 1,
                    "category_id": 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        for box in _xywh(preds).tolist():
            detections.append({"image_id": image_index + 1, "category_id": 1, "bbox": box, "score": 1.0})
    if not ground_truth:
        return float("nan"), float("nan")
    if not detections:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": ground_truth, "categories": [{"id": 1, "name": "box"}]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap, ap50 = (float(v) for v in evaluator.stats[:2])
    return (float("nan") if ap < 0 else ap), (float("nan") if ap50 < 0 else ap50)


# --- Metric classes -----------------------------------------------------------------------------------------------


def _record(pred: Parsed, sample: Sample) -> dict[str, Any]:
    record = {"n_pred": len(pred.boxes), "n_ref": len(sample.reference_boxes), "parse_error": pred.parse_error}
    if nonfinite := nonfinite_boxes(pred.boxes):
        record["nonfinite_boxes"] = nonfinite  # counted: the seed's IoU is inf/NaN here, evalkit's is 0
    return record


def _finite_or_empty(box: Box) -> list[float]:
    """A box as stored for COCO: a non-finite one becomes the empty box at the origin, which matches nothing."""
    values = list(map(float, box))
    return values if all(np.isfinite(values)) else [0.0, 0.0, 0.0, 0.0]


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
            out.append(SampleScore(value, {**_record(pred, sample), "best_iou": [round(v, 6) for v in best]}))
        return out


@register_metric
class RadVLMMap50(_GroundingMetric):
    name = "radvlm_map50"
    version = "2"  # 2: RadVLM's own matching rule (best reference over all references), see greedy_matches
    description = "RadVLM per-sample greedy AP@0.5 (VOC all-point), mean over samples; not COCO mAP"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            value, matches = radvlm_ap50(pred.boxes, sample.reference_boxes)
            ious = iou_matrix(pred.boxes, sample.reference_boxes)
            match_iou = [round(float(ious[i, m]), 6) if m >= 0 else None for i, m in enumerate(matches)]
            out.append(SampleScore(value, {**_record(pred, sample), "matches": matches, "match_iou": match_iou}))
        return out


@register_metric
class SoftF1IoU(_GroundingMetric):
    name = "soft_f1_iou"
    version = "2"  # 2: RadVLM-GRPO's precision (mass / (mass + unmatched)) and 1e-8 guards
    description = "RadVLM-GRPO grounding reward: IoU-weighted soft F1 with Hungarian matching"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            value, pairs = soft_f1_iou(pred.boxes, sample.reference_boxes)
            out.append(
                SampleScore(value, {**_record(pred, sample), "pairs": [[p, r, round(i, 6)] for p, r, i in pairs]})
            )
        return out


class _CocoMetric(_GroundingMetric):
    """COCO AP over the whole corpus, re-aggregated from per-sample match records (bootstraps re-run nothing).

    Options:
        backend: `evalkit` (default) accumulates the stored per-sample COCOeval match records, an exact
            reimplementation of `COCOeval.accumulate` (tests/metrics/test_grounding_coco.py proves it equal to
            pycocotools);
            `pycocotools` rebuilds the COCO objects from the stored boxes and runs COCOeval itself (slower).
    """

    corpus = True
    requires = "pycocotools (backend: pycocotools)"
    _index: ClassVar[int]  # 0: AP@[.5:.95], 1: AP@.5
    BACKENDS: ClassVar[tuple[str, ...]] = ("evalkit", "pycocotools")

    class Options(MetricOptions):
        backend: str = "evalkit"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.backend = options.get("backend", "evalkit")
        if self.backend not in self.BACKENDS:
            raise EvalkitError(f"metric '{self.name}': backend must be one of {self.BACKENDS}, not '{self.backend}'")

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        with _gc_paused():
            records = [
                {
                    **_record(pred, sample),
                    "sample_id": sample.sample_id,
                    "pred_boxes": [_finite_or_empty(b) for b in pred.boxes],
                    "ref_boxes": [list(map(float, b)) for b in sample.reference_boxes],
                    "coco_tp": coco_matches(pred.boxes, sample.reference_boxes),
                }
                for pred, sample in zip(predictions, samples, strict=True)
            ]
        values = _per_sample_coco(records)
        return [
            SampleScore(float(v[self._index]) if r["n_ref"] else None, r) for r, v in zip(records, values, strict=True)
        ]

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        # Image ids follow sorted sample ids: with equal scores COCO's ranking depends on image order, and rows come
        # back from the store in no fixed order.
        records = _image_order(stats)[1]
        if not records:
            return float("nan")
        if self.backend == "pycocotools":
            result = coco_ap_pycocotools([r["pred_boxes"] for r in records], [r["ref_boxes"] for r in records])
        else:
            result = coco_ap_from_records(records)
        return result[self._index]

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray | None:
        """`aggregate` under each row of `counts`, all rows at once (evalkit backend; see coco_resample)."""
        if self.backend != "evalkit":
            return None  # the user asked for COCOeval itself: the generic path runs it per resample
        columns, records = _image_order(stats)
        if not records:
            return np.full(np.asarray(counts).shape[0], np.nan)
        return self._curves(records).precision_means(counts, self._thresholds, columns)

    def aggregate_swaps(
        self,
        values_a: Sequence[float | None],
        stats_a: Sequence[dict[str, Any]],
        values_b: Sequence[float | None],
        stats_b: Sequence[dict[str, Any]],
        swap: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The permutation test's two aggregates per row of `swap` (1: sample i takes the other run's record).

        Side A holds A's record where swap is 0 and B's where it is 1, side B the opposite: both runs' records
        side by side with 0/1 counts, so it is the bootstrap's computation on twice the samples.
        """
        if self.backend != "evalkit":
            return None
        swap = np.asarray(swap, dtype=float)
        n = len(stats_a)
        positions, records = _image_order([*stats_a, *stats_b])
        if not records:
            return np.full(swap.shape[0], np.nan), np.full(swap.shape[0], np.nan)
        curves = self._curves(records)
        # Record p is A's sample p (p < n) or B's sample p - n; both read column p mod n of `swap`.
        columns, from_b = positions % n, positions >= n
        return (
            curves.precision_means(swap, self._thresholds, columns, complement=~from_b),
            curves.precision_means(swap, self._thresholds, columns, complement=from_b),
        )

    @property
    def _thresholds(self) -> list[int]:
        return list(range(len(COCO_IOU_THRESHOLDS))) if self._index == 0 else [0]

    def _curves(self, records: list[dict[str, Any]]):
        from evalkit.metrics.coco_resample import CocoCurves

        # One bootstrap hands the same stats to every block: prepare them once. The records are held with the
        # key, so their ids cannot be reused by other objects while cached.
        key = tuple(id(r) for r in records)
        if getattr(self, "_curves_key", None) != key:
            # coco_ap and coco_ap50 of one run hold equal records: they share one CocoCurves, whose last table
            # then serves AP50 (threshold 0.5) from AP's walk on the same resamples.
            content = tuple((tuple(r["coco_tp"]), int(r["n_ref"])) for r in records)
            curves = _SHARED_CURVES.pop(content, None) or CocoCurves(records)
            _SHARED_CURVES[content] = curves
            while len(_SHARED_CURVES) > 4:
                _SHARED_CURVES.pop(next(iter(_SHARED_CURVES)))
            self._curves_key, self._curves_value, self._curves_records = key, curves, records
        return self._curves_value


# Recently used COCO curves by record content (see `_CocoMetric._curves`); a paired test uses two or four.
_SHARED_CURVES: dict[tuple, Any] = {}


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cycle collector paused while the records are built: they hold no cycles (dicts of lists of floats),
    yet their tens of thousands of containers trigger collections that walk every object of the process (about
    half of a warm evaluation's time on 3,314 samples)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _per_sample_coco(records: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """Each record's own (AP@[.5:.95], AP@.5), as `coco_ap_from_records([record])`; coco_ap and coco_ap50 score
    the same samples one after the other, so the second finds the first's values."""
    keys = [(tuple(r["coco_tp"]), int(r["n_ref"])) for r in records]
    missing = [i for i, k in enumerate(keys) if k not in _COCO_VALUES]
    if missing:
        from evalkit.metrics.coco_resample import CocoCurves

        curves = CocoCurves([records[i] for i in missing])
        everything = curves.per_sample_means(range(len(COCO_IOU_THRESHOLDS)))
        at_50 = curves.per_sample_means([0])
        if len(_COCO_VALUES) + len(missing) > _PAIR_CACHE:
            _COCO_VALUES.clear()
        for i, ap, ap50 in zip(missing, everything.tolist(), at_50.tolist(), strict=True):
            _COCO_VALUES[keys[i]] = (ap, ap50)
    return [_COCO_VALUES[k] for k in keys]


_COCO_VALUES: dict[tuple[tuple[int, ...], int], tuple[float, float]] = {}


def _image_order(stats: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Positions and records of the samples with COCO records, in image order (sorted sample id, stable)."""
    columns = sorted((i for i, s in enumerate(stats) if "coco_tp" in s), key=lambda i: str(stats[i]["sample_id"]))
    return np.asarray(columns, dtype=np.int64), [stats[i] for i in columns]


@register_metric
class CocoAP(_CocoMetric):
    name = "coco_ap"
    description = "COCO AP@[.5:.95] (pycocotools COCOeval, class-agnostic, every box scored 1.0, output order)"
    _index = 0


@register_metric
class CocoAP50(_CocoMetric):
    name = "coco_ap50"
    description = "COCO AP@.5 (pycocotools COCOeval, class-agnostic, every box scored 1.0, output order)"
    _index = 1


# --- RadVLM avg_iou (pooled over every prediction x reference pair) -----------------------------------------------


@register_metric
class RadVLMAvgIoU(_GroundingMetric):
    """RadVLM's `avg_iou` (`evaluate_boxes(..., avg_iou=True)` in `radvlm/evaluation/compute_metrics_tasks.py`).

    The sum of the IoUs of *every* prediction x reference pair, over the corpus, divided by the number of such
    pairs; samples with no prediction or no reference add nothing. It rewards answers with few boxes and is not
    `miou` (best IoU per reference, mean over samples). Stats keep the two sums, so resampling is exact.
    """

    name = "avg_iou"
    corpus = True
    description = "RadVLM avg_iou: IoU summed over all prediction x reference pairs / number of pairs, pooled"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            ious = iou_matrix(pred.boxes, sample.reference_boxes)
            pairs = int(ious.size)
            total = float(np.sum(ious)) if pairs else 0.0
            value = total / pairs if pairs else None
            out.append(SampleScore(value, {**_record(pred, sample), "iou_sum": total, "n_pairs": pairs}))
        return out

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        pairs = sum(int(s.get("n_pairs", 0)) for s in stats)
        return sum(float(s.get("iou_sum", 0.0)) for s in stats) / pairs if pairs else float("nan")

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.array([[float(s.get("iou_sum", 0.0)), float(s.get("n_pairs", 0))] for s in stats]).reshape(-1, 2)
