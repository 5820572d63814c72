"""Corpus CIDEr-D under many resamples at once, as sparse matrix products.

A resample is a row of per-sample counts (how often each sample is drawn; 0/1 for one side of a permutation).
The generic path (`lexical.cider_d` on the drawn records) stays the definition: the document frequencies come
from the drawn references with their multiplicity, the idf is log(#drawn) - log(max(1, df)), and the corpus value
is the count-weighted mean of the per-sample scores. tests/metrics/test_cider_resample.py holds the two side by side.

Why it is a product of matrices: every weight is w = log(N) - log(max(1, df)) >= 0 (a key in a drawn reference
has 1 <= df <= N), so each term of the scorer's sums is w^2 times a count fixed per sample:

- squared norms: sum over a sample's keys of tf^2 w^2;
- the clipped dot product: min(tf_hyp w, tf_ref w) * tf_ref w = w^2 * min(tf_hyp, tf_ref) * tf_ref.

So per resample row, df = counts @ presence, and the three per-(sample, order) sums are w^2 @ a fixed sparse
matrix. A hypothesis key that no reference holds has df = 0 in every resample (w = log N), so those keys are
folded into one per-(sample, order) constant and the dense blocks only span the references' vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Cells of a dense (resamples x reference vocabulary) block: about 32 MB of float64.
_BLOCK_CELLS = 4_000_000


class CiderCorpus:
    """The per-sample n-gram counts of a scored corpus, laid out for `values` (n: n-gram orders, sigma: the
    Gaussian length penalty's width, as `lexical.cider_d`)."""

    def __init__(self, records: Sequence[dict[str, Any]], n: int = 4, sigma: float = 6.0) -> None:
        self.n, self.m = n, len(records)
        vocab: dict[str, int] = {}
        for record in records:
            for key in record["cider_ref"]:
                vocab.setdefault(key, len(vocab))
        self.vocab_size = len(vocab)
        presence: tuple[list[int], list[int]] = ([], [])
        # Three (sample*n + order) x vocab matrices: tf_hyp^2, tf_ref^2, min(tf_hyp, tf_ref) * tf_ref.
        hyp_sq: tuple[list[int], list[int], list[float]] = ([], [], [])
        ref_sq: tuple[list[int], list[int], list[float]] = ([], [], [])
        overlap: tuple[list[int], list[int], list[float]] = ([], [], [])
        self.hyp_only = np.zeros(self.m * n)  # sum of tf^2 over hypothesis keys no reference holds
        penalty = np.empty(self.m)
        self.has_ref = np.zeros(self.m)
        for i, record in enumerate(records):
            hyp, ref = record["cider_hyp"], record["cider_ref"]
            self.has_ref[i] = 1.0 if ref else 0.0
            for key, tf in ref.items():
                column, row = vocab[key], i * n + key.count(" ")
                presence[0].append(i)
                presence[1].append(column)
                _add(ref_sq, row, column, float(tf) ** 2)
                if key in hyp:
                    _add(overlap, row, column, float(min(hyp[key], tf)) * tf)
            for key, tf in hyp.items():
                row = i * n + key.count(" ")
                if key in vocab:
                    _add(hyp_sq, row, vocab[key], float(tf) ** 2)
                else:
                    self.hyp_only[row] += float(tf) ** 2
            delta = float(_bigrams(hyp) - _bigrams(ref))
            penalty[i] = np.e ** (-(delta**2) / (2 * sigma**2))
        from scipy import sparse  # imported where resampled, not to list the metrics

        shape = (self.m * n, self.vocab_size)
        self.presence = sparse.csr_matrix(
            (np.ones(len(presence[0])), presence), shape=(self.m, self.vocab_size)
        ).T.tocsr()  # vocab x samples: df = presence @ counts.T
        self.hyp_sq, self.ref_sq, self.overlap = (
            sparse.csr_matrix((np.asarray(v), (r, c)), shape=shape) for r, c, v in (hyp_sq, ref_sq, overlap)
        )
        self.penalty = np.repeat(penalty, n)

    def values(self, counts: np.ndarray) -> np.ndarray:
        """Corpus CIDEr-D under each row of `counts` (resamples x samples), shape (resamples,); NaN where the
        drawn references hold no n-gram (the scorer raises there)."""
        counts = np.asarray(counts, dtype=float)
        out = np.empty(counts.shape[0])
        # Dense blocks are resamples x vocabulary (weights) and resamples x samples x orders (the sums).
        block = max(1, _BLOCK_CELLS // max(1, self.vocab_size, self.m * self.n))
        for start in range(0, counts.shape[0], block):
            rows = counts[start : start + block]
            value = (self._sample_scores(rows) * rows).sum(axis=1) / rows.sum(axis=1)
            out[start : start + block] = np.where(rows @ self.has_ref > 0, value, np.nan)
        return out

    def sample_scores(self) -> np.ndarray:
        """Each sample's CIDEr-D in the whole corpus (every sample drawn once), shape (samples,)."""
        return self._sample_scores(np.ones((1, self.m)))[0]

    def _sample_scores(self, counts: np.ndarray) -> np.ndarray:
        drawn = counts.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_n = np.log(drawn)
            df = (self.presence @ counts.T).T  # resamples x vocab
            weight_sq = (log_n[:, None] - np.log(np.maximum(1.0, df))) ** 2
            norm_hyp = (self.hyp_sq @ weight_sq.T).T + np.outer(log_n**2, self.hyp_only)
            norm_ref = (self.ref_sq @ weight_sq.T).T
            dot = (self.overlap @ weight_sq.T).T
            both = (norm_hyp != 0) & (norm_ref != 0)
            cosine = np.where(both, dot / (np.sqrt(norm_hyp) * np.sqrt(norm_ref)), dot) * self.penalty
            return cosine.reshape(counts.shape[0], self.m, self.n).mean(axis=2) * 10.0


def _add(triplets: tuple[list[int], list[int], list[float]], row: int, column: int, value: float) -> None:
    triplets[0].append(row)
    triplets[1].append(column)
    triplets[2].append(value)


def _bigrams(counts: dict[str, int]) -> int:
    """The scorer's length: the number of bigrams (n-gram keys hold n-1 spaces)."""
    return sum(tf for key, tf in counts.items() if key.count(" ") == 1)
