"""Corpus-level RL-health diagnostics of template collapse: distinct answers, the largest cluster of identical
answers, distinct-n and self-BLEU (docs/rl-health.md).

GRPO narrows the spread of what a model writes; these numbers are properties of the whole set of answers, so each
sample stores its sufficient statistics (a hash of its answer, its n-gram counts) and the corpus value is
recomputed from the drawn records. The definition is the generic path (`aggregate` on the drawn records); the batch
path (`aggregate_resamples`) computes the same numbers for a whole
block of resamples with sparse matrix products, and `aggregate_swaps` reuses it on the 2n records of a paired
permutation. tests/metrics/test_health_corpus.py holds the two side by side, as tests/metrics/test_cider_resample.py
does for
CIDEr-D.

Copies of one sample (a bootstrap draws an image twice) are one answer to the diversity diagnostics (distinct
answers, distinct-n, self-BLEU): otherwise every resample would look collapsed, and the CI would sit below the value.
Each record keeps its sample id for that; the largest-cluster share weighs copies (a weighted proportion, which the
bootstrap handles). What remains is the bias of a statistic of a subset (a resample holds about 63% of the samples,
so distinct shares run a little higher): paired contrasts against a parent share it.

Self-BLEU here is the "presence-clipped" variant: for each answer, the share of its n-grams (n = 1..4) that occur
in at least one *other* drawn answer, pooled over the corpus per order and combined by a geometric mean, without
a brevity penalty. Texygen's self-BLEU (Zhu et al. 2018) clips by the largest count among the other answers and
averages sentence BLEU with NLTK's smoothing; that definition is not a function of per-sample statistics under
resampling, so it is not offered under this name's namesake, and this one is named `self_bleu_presence`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.sample import Parsed, Sample

if TYPE_CHECKING:
    from scipy import sparse

_BLOCK_CELLS = 4_000_000  # a dense (resamples x vocabulary) block: about 32 MB of float64


def answer_key(text: str) -> str:
    """Identity of an answer for clustering: whitespace-normalised text, hashed (stats stay small)."""
    return hashlib.sha1(" ".join(text.split()).encode("utf-8")).hexdigest()[:16]


def ngrams(text: str, n: int) -> dict[str, int]:
    """Counts of lower-cased word n-grams of order exactly n (keys are space-joined)."""
    words = text.lower().split()
    return dict(Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1)))


def distinct_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each drawn sample once (bootstrap copies share their sample id)."""
    seen: dict[Any, dict[str, Any]] = {}
    for r in records:
        seen.setdefault(r.get("sample", id(r)), r)
    return list(seen.values())


class _CorpusDiagnostic(Metric):
    """A corpus diagnostic recomputed from drawn records; the batch and swap paths share one implementation."""

    corpus = True
    gated_by_default: ClassVar[bool] = False
    diagnostic: ClassVar[bool] = True

    def aggregate_swaps(
        self,
        values_a: Sequence[float | None],
        stats_a: Sequence[dict[str, Any]],
        values_b: Sequence[float | None],
        stats_b: Sequence[dict[str, Any]],
        swap: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        # Side A holds A's record where not swapped and B's where swapped: counts over the 2n records [A; B].
        stats = [*stats_a, *stats_b]
        swap = np.asarray(swap, dtype=float)
        side_a = self.aggregate_resamples([], stats, np.hstack([1.0 - swap, swap]))
        side_b = self.aggregate_resamples([], stats, np.hstack([swap, 1.0 - swap]))
        return side_a, side_b

    def aggregate(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> float:
        records = [s for s in stats if s]
        return self._value(records) if records else float("nan")

    def _value(self, records: list[dict[str, Any]]) -> float:
        raise NotImplementedError

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError


class _AnswerClusters(_CorpusDiagnostic):
    """Diagnostics of identical answers; each sample stores its answer's key."""

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        # No per-sample value: a share of the corpus is not a property of one answer (nor of a scoring chunk).
        return [
            SampleScore(None, {"answer_key": answer_key(p.answer or ""), "sample": s.sample_id})
            for p, s in zip(predictions, samples, strict=True)
        ]

    def _cluster_sizes(self, stats: Sequence[dict[str, Any]], counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(resamples x distinct answers) drawn sizes, and which samples hold a record (others weigh 0)."""
        keys = [s.get("answer_key") if s else None for s in stats]
        index: dict[str, int] = {}
        rows, cols = [], []
        for i, key in enumerate(keys):
            if key is not None:
                rows.append(i)
                cols.append(index.setdefault(key, len(index)))
        from scipy import sparse  # imported where resampled, not to list the metrics

        onehot = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(keys), max(1, len(index))))
        present = np.array([k is not None for k in keys], dtype=float)
        return np.asarray(sparse.csr_matrix(np.asarray(counts, dtype=float)) @ onehot.toarray()), present


@register_metric
class DistinctAnswers(_AnswerClusters):
    """Distinct answers over answers (1.0: every answer differs; 1/n: one template for everything)."""

    name = "distinct_answers"
    description = "share of distinct answers in the corpus (identical after whitespace normalisation)"
    higher_is_better = True

    def _value(self, records: list[dict[str, Any]]) -> float:
        records = distinct_records(records)
        return len({r["answer_key"] for r in records}) / len(records)

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        counts = (np.asarray(counts) > 0).astype(float)  # each drawn sample once
        sizes, present = self._cluster_sizes(stats, counts)
        drawn = np.asarray(counts, dtype=float) @ present
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(drawn > 0, (sizes > 0).sum(axis=1) / np.where(drawn > 0, drawn, 1.0), np.nan)


@register_metric
class LargestClusterShare(_AnswerClusters):
    """Share of answers in the largest group of identical answers (template collapse)."""

    name = "largest_cluster_share"
    description = "share of answers identical to the corpus's most frequent answer"
    higher_is_better = False

    def _value(self, records: list[dict[str, Any]]) -> float:
        return max(Counter(r["answer_key"] for r in records).values()) / len(records)

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        sizes, present = self._cluster_sizes(stats, counts)
        drawn = np.asarray(counts, dtype=float) @ present
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(drawn > 0, sizes.max(axis=1) / np.where(drawn > 0, drawn, 1.0), np.nan)


class _NgramDiagnostic(_CorpusDiagnostic):
    """Diagnostics over word n-grams; each sample stores its n-gram counts per order."""

    orders: ClassVar[tuple[int, ...]] = (2,)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            grams = {str(n): ngrams(pred.answer or "", n) for n in self.orders}
            out.append(SampleScore(None, {"ngrams": grams, "sample": sample.sample_id}))
        return out

    def _layout(self, stats: Sequence[dict[str, Any]], n: int) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(samples x vocabulary) counts of order n, and which samples hold a record."""
        vocab: dict[str, int] = {}
        rows, cols, data = [], [], []
        for i, s in enumerate(stats):
            for key, tf in (s.get("ngrams", {}).get(str(n), {}) if s else {}).items():
                rows.append(i)
                cols.append(vocab.setdefault(key, len(vocab)))
                data.append(float(tf))
        from scipy import sparse

        matrix = sparse.csr_matrix((data, (rows, cols)), shape=(len(stats), max(1, len(vocab))))
        return matrix, np.array([bool(s) for s in stats], dtype=float)


@register_metric
class DistinctN(_NgramDiagnostic):
    """Distinct-n (Li et al. 2016): distinct word n-grams over all word n-grams of the corpus."""

    name = "distinct_2"
    description = "distinct word bigrams / all word bigrams across the corpus's answers"
    higher_is_better = True

    class Options(MetricOptions):
        n: int = Field(default=2, ge=1, le=6, description="n-gram order")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.orders = (self.typed_options.n,)

    def _value(self, records: list[dict[str, Any]]) -> float:
        key = str(self.orders[0])
        total: Counter[str] = Counter()
        for r in distinct_records(records):
            total.update(r["ngrams"].get(key, {}))
        count = sum(total.values())
        return len(total) / count if count else float("nan")

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        matrix, _ = self._layout(stats, self.orders[0])
        counts = (np.asarray(counts) > 0).astype(float)  # each drawn sample once
        totals = counts @ np.asarray(matrix.sum(axis=1)).ravel()
        out = np.empty(counts.shape[0])
        block = max(1, _BLOCK_CELLS // matrix.shape[1])
        for start in range(0, counts.shape[0], block):
            drawn = (matrix.T @ counts[start : start + block].T).T  # resamples x vocabulary
            out[start : start + block] = (drawn > 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, out / np.where(totals > 0, totals, 1.0), np.nan)


@register_metric
class SelfBleuPresence(_NgramDiagnostic):
    """Presence-clipped self-BLEU-4 (module docstring): how much of each answer the other answers also say."""

    name = "self_bleu_presence"
    description = "geometric mean over n=1..4 of the share of answer n-grams found in another answer (no BP)"
    higher_is_better = False
    orders = (1, 2, 3, 4)

    def _value(self, records: list[dict[str, Any]]) -> float:
        records = distinct_records(records)
        precisions = []
        for n in self.orders:
            key = str(n)
            df: Counter[str] = Counter()
            for r in records:
                df.update(r["ngrams"].get(key, {}).keys())
            # A gram is shared when another drawn sample's answer holds it.
            matched = sum(tf for r in records for g, tf in r["ngrams"].get(key, {}).items() if df[g] >= 2)
            total = sum(sum(r["ngrams"].get(key, {}).values()) for r in records)
            if not total:
                return float("nan")
            precisions.append(matched / total)
        return float(np.prod(precisions) ** (1.0 / len(precisions)))

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        counts = (np.asarray(counts) > 0).astype(float)  # each drawn sample once
        logs = np.zeros(counts.shape[0])
        valid = np.ones(counts.shape[0], dtype=bool)
        for n in self.orders:
            matrix, _ = self._layout(stats, n)
            presence = matrix.copy()
            presence.data[:] = 1.0
            total = counts @ np.asarray(matrix.sum(axis=1)).ravel()
            matched = np.empty(counts.shape[0])
            block = max(1, _BLOCK_CELLS // matrix.shape[1])
            for start in range(0, counts.shape[0], block):
                rows = counts[start : start + block]
                df = (presence.T @ rows.T).T  # resamples x vocabulary: drawn answers holding each gram
                weighted = (matrix.T @ rows.T).T  # resamples x vocabulary: drawn occurrences of each gram
                matched[start : start + block] = (weighted * (df >= 2)).sum(axis=1)
            valid &= total > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                logs += np.log(np.where(total > 0, matched / np.where(total > 0, total, 1.0), 1.0))
        return np.where(valid, np.exp(logs / len(self.orders)), np.nan)
