"""COCO AP under many resamples at once: COCOeval's `accumulate` for a whole block of bootstrap/permutation rows.

A resample is a row of per-sample counts (how often each sample is drawn; 0/1 for one side of a permutation).
The generic path (`coco_ap_from_records` on the drawn records, copies of a sample next to each other in image
order) stays the definition; this module computes the same numbers, to the last bit of every precision value,
without building a record list per resample (tests/metrics/test_coco_resample.py holds the two side by side).

Why it can skip most of COCO's arrays: with every score 1.0 COCO ranks detections by image, then output order,
so the cumulative TP count rises by one at each true positive and the k-th true positive is the only place with
`tp == k`. Precision only rises at a true positive, so the right-to-left precision envelope at any position is
the maximum over the true positives at or after it, and the first position whose recall reaches a recall
threshold is the k-th true positive for the smallest k with `k / n_ref >= threshold`. Per resample and IoU
threshold it is enough to walk the true positives, knowing how many false positives precede each:
`k / ((fp + k) + eps)` is then the very float COCO computes. The walk is a compiled loop (numba): the per-row
work is a few operations per drawn true positive, where numpy would need a dozen passes over padded arrays.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from evalkit.metrics.coco_params import COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS


class CocoCurves:
    """Per-sample COCO match records in image order, split per IoU threshold into what the walk needs."""

    def __init__(self, records: Sequence[dict[str, Any]]) -> None:
        self.n = len(records)
        self.n_ref = np.array([float(r["n_ref"]) for r in records])
        masks = [np.asarray(r["coco_tp"], dtype=np.int64).reshape(-1) for r in records]
        self.n_det = np.array([m.size for m in masks], dtype=np.int64)
        flat = np.concatenate(masks) if masks else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(self.n), self.n_det)
        start = np.cumsum(self.n_det) - self.n_det
        # Per threshold: true positives per sample (T, n); for every true positive (thresholds end to end, samples
        # in order) the false positives ahead of it in its own sample; where each (threshold, sample) starts.
        tp, before = [], []
        for t in range(len(COCO_IOU_THRESHOLDS)):
            hit = ((flat >> t) & 1).astype(bool)
            tp.append(np.bincount(owner[hit], minlength=self.n))
            misses = np.concatenate(([0], np.cumsum(~hit)))  # false positives before each detection, corpus-wide
            before.append(misses[:-1][hit] - misses[start[owner[hit]]])
        self.tp = np.stack(tp).astype(np.int64)
        self.before = np.concatenate(before).astype(np.int64)
        offsets = np.cumsum([0, *(b.size for b in before)])[:-1]
        self.before_start = (offsets[:, None] + np.cumsum(self.tp, axis=1) - self.tp).astype(np.int64)
        # The last two calls' (counts ref, thresholds, columns, complement, table, n_ref): see precision_means.
        self._recent: list[tuple] = []

    def precision_means(
        self,
        counts: np.ndarray,
        thresholds: Sequence[int],
        columns: np.ndarray | None = None,
        complement: np.ndarray | None = None,
    ) -> np.ndarray:
        """Mean of COCO's interpolated precision table over `thresholds` x recall points, per row of `counts`.

        Record i is drawn `counts[:, columns[i]]` times (whole numbers, float or int), or `1 - counts[:, columns[i]]`
        times where `complement[i]` (the other side of a permutation test): the counts are read in place, never
        copied. Rows whose drawn samples hold no reference box are NaN (COCO reports -1 there).
        """
        counts = np.asarray(counts, dtype=float)
        columns = np.arange(self.n, dtype=np.int64) if columns is None else np.asarray(columns, dtype=np.int64)
        complement = np.zeros(self.n, dtype=bool) if complement is None else np.asarray(complement, dtype=bool)
        # AP50 right after AP on the same resamples (both sides of a permutation block): its threshold is a slice
        # of AP's table. The counts are matched by a weak reference, so a freed block's id cannot match a new one,
        # and an entry is dropped once read: nothing outlives the block.
        for i, (ref, held, cols, comp, table, n_ref) in enumerate(self._recent):
            if (
                ref() is counts
                and set(thresholds) <= set(held)
                and np.array_equal(cols, columns)
                and np.array_equal(comp, complement)
            ):
                del self._recent[i]
                out = table[:, [held.index(t) for t in thresholds]].reshape(counts.shape[0], -1).mean(axis=1)
                out[n_ref == 0] = np.nan
                return out
        # Reference boxes per row: sum of draws x n_ref, complements as n_ref - draws x n_ref.
        weights = np.zeros(counts.shape[1])
        np.add.at(weights, columns, np.where(complement, -self.n_ref, self.n_ref))
        n_ref = counts @ weights + self.n_ref[complement].sum()
        chosen = np.asarray(thresholds, dtype=np.int64)
        table = np.zeros((counts.shape[0], chosen.size, len(COCO_RECALL_THRESHOLDS)))
        # Per threshold, the samples with a true positive there (in image order) and where their false-positive
        # offsets start in `before`.
        tp = self.tp[chosen]
        threshold, sample = np.nonzero(tp)
        _walk_rows(
            counts,
            columns,
            complement,
            self.n_det,
            np.searchsorted(threshold, np.arange(chosen.size + 1)).astype(np.int64),
            sample.astype(np.int64),
            tp[threshold, sample].astype(np.int64),
            self.before_start[chosen][threshold, sample].astype(np.int64),
            self.before,
            _first_tp_reaching(n_ref),
            table,
        )
        self._recent = [*self._recent[-1:], (weakref.ref(counts), list(thresholds), columns, complement, table, n_ref)]
        out = table.reshape(counts.shape[0], -1).mean(axis=1)
        out[n_ref == 0] = np.nan
        return out

    def per_sample_means(self, thresholds: Sequence[int]) -> np.ndarray:
        """Each sample's own COCO AP (the mean of its precision table over `thresholds`), NaN without references.

        The same as `coco_ap_from_records([record])` for every record, in one compiled pass."""
        chosen = np.asarray(thresholds, dtype=np.int64)
        table = np.zeros((self.n, chosen.size, len(COCO_RECALL_THRESHOLDS)))
        _walk_each(
            np.ascontiguousarray(self.tp[chosen]),
            self.n_det,
            self.before,
            np.ascontiguousarray(self.before_start[chosen]),
            _first_tp_reaching(self.n_ref),
            table,
        )
        out = table.reshape(self.n, -1).mean(axis=1)
        out[self.n_ref == 0] = np.nan
        return out


_NEVER = np.iinfo(np.int64).max


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _walk_rows(
    counts, columns, complement, n_det, entry_start, entry_sample, entry_hits, entry_before, before, first_k, table
):  # pragma: no cover - compiled
    """Per row of `counts` and threshold: the maximum of COCO's precision over each recall segment's true positives,
    then their right-to-left envelope, into `table`.

    Recall lookup r reads the envelope at the `first_k[r]`-th true positive: the maximum precision over true
    positives k >= first_k[r]. Segment r holds the true positives whose last lookup at or below them is r, so the
    envelope at r is the maximum over segments r and after; no per-row precision buffer, no second walk.

    A sample with one true positive drawn c times adds true positives k0+1..k0+c whose false positives ahead grow
    by its misses m per copy: precision (k0+i)/(k0+i+f0+(i-1)m) is monotone in i (a ratio of two linear functions),
    and so is its correctly rounded float, so within one segment only the first and last copy can be the maximum.
    That walk has no data-dependent branch (a row's 0/1 and Poisson draws would mispredict one per sample); the
    other samples, and copies that cross a segment, take the general loop.

    Precisions are compared as fractions k / (k + fp) in integers (k * fp' >= k' * fp), and only a segment's best
    is divided, once, as COCO divides: correctly rounded division is monotone, so the largest fraction gives the
    largest float. The one float that is not its fraction rounded, 1 / (1 + eps) at k = 1, fp = 0, ties with any
    later fp = 0 (which gives 1.0): a tie keeps the later true positive.

    Rows are independent resamples, so they run on all cores (numba's prange); each row has its own buffers and
    writes only its own slice of `table`, so the values do not depend on the number of threads."""
    n_rows = counts.shape[0]
    n = columns.shape[0]
    n_thresholds = table.shape[1]
    n_recall = table.shape[2]
    eps = np.spacing(1.0)
    for b in numba.prange(n_rows):
        need = first_k[b]
        drawn = np.empty(n, dtype=np.int64)
        det_prior = np.empty(n, dtype=np.int64)
        running = 0
        for s in range(n):
            value = counts[b, columns[s]]
            value = 1.0 - value if complement[s] else value
            copies = int(np.rint(value))
            drawn[s] = copies
            det_prior[s] = running
            running += copies * n_det[s]
        best = np.zeros(n_recall)
        for t in range(n_thresholds):
            best[:] = 0.0
            kt = 0
            seg = -1
            # The segment's best true positive so far as (k, false positives): 0 / 1 to start.
            top_k, top_f = 0, 1
            next_need = need[0]
            for e in range(entry_start[t], entry_start[t + 1]):
                s = entry_sample[e]
                copies = drawn[s]
                hits = entry_hits[e]
                misses = n_det[s] - hits
                fp_prior = det_prior[s] - kt  # detections ahead minus true positives ahead
                start = entry_before[e]
                if hits == 1 and kt + copies < next_need:
                    head_k, head_f = kt + 1, fp_prior + before[start]
                    tail_k, tail_f = kt + copies, head_f + (copies - 1) * misses
                    use_tail = tail_k * head_f >= head_k * tail_f
                    edge_k = tail_k if use_tail else head_k
                    edge_f = tail_f if use_tail else head_f
                    better = (copies > 0) & (edge_k * top_f >= top_k * edge_f)
                    top_k = edge_k if better else top_k
                    top_f = edge_f if better else top_f
                    kt = tail_k
                    continue
                for _ in range(copies):
                    for r in range(hits):
                        kt += 1
                        if kt >= next_need:
                            if seg >= 0:
                                best[seg] = _precision(top_k, top_f, eps)
                            while seg + 1 < n_recall and need[seg + 1] <= kt:
                                seg += 1
                            top_k, top_f = 0, 1
                            next_need = need[seg + 1] if seg + 1 < n_recall else _NEVER
                        f = fp_prior + before[start + r]
                        if kt * top_f >= top_k * f:
                            top_k, top_f = kt, f
                    fp_prior += misses
            if seg >= 0:
                best[seg] = _precision(top_k, top_f, eps)
            envelope = 0.0
            for r in range(n_recall - 1, -1, -1):
                if best[r] > envelope:
                    envelope = best[r]
                table[b, t, r] = envelope


@numba.njit(cache=True, nogil=True, inline="always")
def _precision(k, fp, eps):  # pragma: no cover - compiled
    """COCO's float for the k-th true positive with fp false positives ahead: k / ((fp + k) + eps)."""
    return k / (float(fp + k) + eps) if k > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def _walk_each(tp, n_det, before, before_start, first_k, table):  # pragma: no cover - compiled
    """Each sample on its own (its per-sample COCO AP): row s of `table` walks sample s once."""
    n = n_det.shape[0]
    drawn = np.zeros(n, dtype=np.int64)
    det_prior = np.zeros(n, dtype=np.int64)
    precision = np.empty(max(1, tp.max()) if tp.size else 1)
    alone = np.empty(1, dtype=np.int64)
    for s in range(n):
        drawn[s] = 1
        alone[0] = s
        for t in range(tp.shape[0]):
            _walk(drawn, tp[t], n_det, before, before_start[t], alone, det_prior, first_k[s], precision, table[s, t])
        drawn[s] = 0


@numba.njit(cache=True, nogil=True, inline="always")
def _walk(drawn, tp, n_det, before, before_start, hitting, det_prior, first_k, precision, out):  # pragma: no cover
    """One resample at one IoU threshold: the true positives of the drawn samples in ranking order."""
    eps = np.spacing(1.0)
    k = 0
    for s in hitting:
        copies = drawn[s]
        if copies == 0:
            continue
        hits = tp[s]
        misses = n_det[s] - hits
        fp_prior = det_prior[s] - k  # detections ahead minus true positives ahead
        start = before_start[s]
        for _ in range(copies):
            for r in range(hits):
                k += 1
                fp = float(fp_prior + before[start + r])
                precision[k - 1] = k / (fp + k + eps)
            fp_prior += misses
    # Right to left: the running maximum is the envelope; lookups are ascending in k, so they are met from the
    # last one down.
    running = 0.0
    q = k
    for r in range(first_k.shape[0] - 1, -1, -1):
        need = first_k[r]
        while q >= need:
            running = max(running, precision[q - 1])
            q -= 1
        out[r] = running if need <= k else 0.0


def _first_tp_reaching(n_ref: np.ndarray) -> np.ndarray:
    """For each row's reference count N, the smallest k >= 1 with float(k / N) >= each recall threshold.

    That is where `np.searchsorted(recall, threshold, side="left")` lands in COCOeval (a threshold of 0 lands on
    the first detection, whose envelope is the maximum over all true positives, as the first true positive's is),
    computed with COCO's own float division so that thresholds falling exactly on a recall value agree. Rows of
    one block hold a few hundred distinct counts: each is computed once.
    """
    n_ref, rows = np.unique(n_ref, return_inverse=True)
    safe = np.where(n_ref > 0, n_ref, 1.0)[:, None]
    thresholds = COCO_RECALL_THRESHOLDS[None, :]
    guess = np.ceil(thresholds * safe)
    below = np.maximum(guess - 1, 0)
    k = np.where(below / safe >= thresholds, below, np.where(guess / safe >= thresholds, guess, guess + 1))
    return np.ascontiguousarray(np.maximum(k, 1).astype(np.int64)[rows.reshape(-1)])
