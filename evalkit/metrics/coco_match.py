"""COCOeval's per-image matching of one sample, compiled: the IoU and greedy matching `evaluateImg` does.

`grounding._coco_matches` defines the result (bit masks, one per kept prediction); this computes it with the same
floating-point operations in one compiled call instead of a dozen small numpy calls and a Python loop per sample
(tests/metrics/test_grounding_coco.py holds the result against pycocotools, tests/metrics/test_coco_resample.py
against the loop).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fmin(a: float, b: float) -> float:  # pragma: no cover - compiled
    """np.fmin: the number when one side is NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a < b else b


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fmax(a: float, b: float) -> float:  # pragma: no cover - compiled
    if a != a:
        return b
    if b != b:
        return a
    return a if a > b else b


@numba.njit(cache=True, nogil=True, error_model="numpy")
def coco_match_bits(
    predicted: np.ndarray, reference: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:  # pragma: no cover
    """Bit masks (one per row of `predicted`, x1 y1 x2 y2): bit t set where it matches a reference at threshold t.

    IoU as pycocotools' `bbIou` on `[x, y, w, h]` (w = x2 - x1), a non-finite prediction matching nothing; at each
    threshold each prediction in order takes, among the unmatched references with IoU >= min(t, 1 - 1e-10), the one
    with the highest IoU, the last one on ties."""
    n_d, n_g = predicted.shape[0], reference.shape[0]
    ious = np.zeros((n_d, n_g))
    for i in range(n_d):
        dx, dy = predicted[i, 0], predicted[i, 1]
        dw, dh = predicted[i, 2] - dx, predicted[i, 3] - dy
        finite = np.isfinite(dx) and np.isfinite(dy) and np.isfinite(dw) and np.isfinite(dh)
        for j in range(n_g):
            gx, gy = reference[j, 0], reference[j, 1]
            gw, gh = reference[j, 2] - gx, reference[j, 3] - gy
            w = _fmin(dw + dx, gw + gx) - _fmax(dx, gx)
            h = _fmin(dh + dy, gh + gy) - _fmax(dy, gy)
            inter = w * h
            union = dw * dh + gw * gh - inter
            if w > 0 and h > 0 and finite:
                ious[i, j] = inter / union
    bits = np.zeros(n_d, dtype=np.int64)
    taken = np.zeros(n_g, dtype=np.bool_)
    for t in range(thresholds.shape[0]):
        start = min(thresholds[t], 1 - 1e-10)
        taken[:] = False
        for i in range(n_d):
            best = start
            match = -1
            for j in range(n_g):
                value = ious[i, j]
                if taken[j] or value < best:
                    continue
                best = value
                match = j
            if match >= 0:
                taken[match] = True
                bits[i] |= 1 << t
    return bits
