"""Corpus CIDEr-D under many resamples at once, from the per-sample n-gram counts `CiderD.score` stores.

The generic path (`lexical.cider_d` on the drawn records, a drawn-twice sample twice) stays the definition; this
computes the same numbers (to float64 rounding: sums run in another order) without a record list per resample.

Why it is a function of the resample counts: under counts c (how often each sample is drawn) the scorer's
document frequency of an n-gram is df = sum of c_i over the samples whose reference holds it, the corpus size is
N = sum c_i, and with w = log N - log max(1, df) >= 0 (df <= N) every quantity of a sample's score is a sum over
its own n-grams of a per-sample constant times w^2:
    |hyp|^2 = sum tf_hyp^2 w^2,  |ref|^2 = sum tf_ref^2 w^2,  hyp.ref clipped = sum min(tf_hyp, tf_ref) tf_ref w^2.
w depends on the n-gram only through the set of samples whose reference holds it, so n-grams with the same set
share one column (each sample's own 3- and 4-grams collapse into a handful). Per block of resamples that is two
sparse-times-dense products; the Gaussian length penalty is per sample and fixed, and the corpus value is
sum c_i s_i / N, s_i the sample's score, exactly as the mean over the drawn records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

_CHUNK_CELLS = 2_000_000  # dense (rows x columns) arrays per chunk of resamples: about 16 MB each


class CiderCurves:
    """The per-sample constants of corpus CIDEr-D (n=4, sigma=6) for the records that hold n-gram counts."""

    def __init__(self, records: Sequence[dict[str, Any]], n: int = 4, sigma: float = 6.0) -> None:
        self.n, self.size = n, len(records)
        holders: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            for key in record["cider_ref"]:
                holders.setdefault(key, []).append(i)
        classes: dict[tuple[int, ...], int] = {(): 0}  # class 0: n-grams no reference holds (df is always 0)
        key_class = {key: classes.setdefault(tuple(rows), len(classes)) for key, rows in holders.items()}
        self.has_reference = np.array([bool(r["cider_ref"]) for r in records], dtype=float)
        incidence_rows, incidence_cols = [], []
        for pattern, column in classes.items():
            incidence_rows.extend(pattern)
            incidence_cols.extend([column] * len(pattern))
        # (samples x classes): df of every class under a row of counts is one product.
        self.incidence = sparse.csr_matrix(
            (np.ones(len(incidence_rows)), (incidence_rows, incidence_cols)), shape=(self.size, len(classes))
        )
        coefficients: list[dict[tuple[int, int], float]] = [{}, {}, {}]  # hyp^2, ref^2, clipped product
        penalty = np.empty(self.size)
        for i, record in enumerate(records):
            hyp, ref = record["cider_hyp"], record["cider_ref"]
            for key, tf in hyp.items():
                cell = (key_class.get(key, 0), i * n + key.count(" "))
                coefficients[0][cell] = coefficients[0].get(cell, 0.0) + float(tf) ** 2
                if key in ref:
                    clipped = float(min(tf, ref[key]) * ref[key])
                    coefficients[2][cell] = coefficients[2].get(cell, 0.0) + clipped
            for key, tf in ref.items():
                cell = (key_class[key], i * n + key.count(" "))
                coefficients[1][cell] = coefficients[1].get(cell, 0.0) + float(tf) ** 2
            # The scorer's length is the number of bigrams (its `order == 1`), and its penalty expression.
            delta = float(_bigrams(hyp) - _bigrams(ref))
            penalty[i] = np.e ** (-(delta**2) / (2 * sigma**2))
        self.penalty = penalty
        # (samples*n x classes) each: per-sample sums over its n-grams are products with w^2 per class.
        self.hyp2, self.ref2, self.clipped = (
            sparse.csr_matrix(
                (list(c.values()), ([k[1] for k in c], [k[0] for k in c])), shape=(self.size * n, len(classes))
            )
            for c in coefficients
        )

    def corpus_values(self, counts: np.ndarray) -> np.ndarray:
        """Corpus CIDEr-D under each row of `counts` (rows x records); NaN where the scorer has no reference
        n-gram (or no record) to work with, as `lexical.cider_d` returns."""
        counts = np.asarray(counts, dtype=float).reshape(-1, self.size)
        out = np.empty(counts.shape[0])
        width = max(self.incidence.shape[1], self.size * self.n, 1)
        step = max(1, _CHUNK_CELLS // width)
        for start in range(0, counts.shape[0], step):
            out[start : start + step] = self._chunk(counts[start : start + step])
        return out

    def _chunk(self, counts: np.ndarray) -> np.ndarray:
        rows = counts.shape[0]
        total = counts.sum(axis=1)
        usable = (total > 0) & (counts @ self.has_reference > 0)
        with np.errstate(divide="ignore"):
            log_total = np.log(np.where(total > 0, total, 1.0))
        df = np.asarray(self.incidence.T @ counts.T).T  # (rows x classes)
        weight2 = (log_total[:, None] - np.log(np.maximum(1.0, df))) ** 2
        hyp2, ref2, clipped = (np.asarray(m @ weight2.T).T for m in (self.hyp2, self.ref2, self.clipped))
        both = (hyp2 != 0) & (ref2 != 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            cosine = np.where(both, clipped / (np.sqrt(hyp2) * np.sqrt(ref2)), clipped)
        per_order = cosine.reshape(rows, self.size, self.n) * self.penalty[None, :, None]
        scores = per_order.mean(axis=2) * 10.0
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (counts * scores).sum(axis=1) / total
        return np.where(usable, values, np.nan)


def _bigrams(counts: dict[str, int]) -> int:
    return sum(tf for key, tf in counts.items() if key.count(" ") == 1)
