"""Lexical report metrics: ROUGE-1/2/L (rouge-score) and BLEU-n (pycocoevalcap's BleuScorer arithmetic).

BLEU's input convention is an option, because it moves the number a lot:
- `tokenization: raw` (default): the strings as written, split on whitespace, case-sensitive, punctuation attached
  to words. This is what vilmedic's and RadEval's `Bleu` do (they hand the raw reports to the BleuScorer), hence
  what RadVLM-GRPO's `calcAllMetrics_whole` reports.
- `tokenization: lower_punct`: lower-cased, punctuation split off as its own token (`bleu_tokenize`), the input
  pycocoevalcap's PTB tokenizer would produce for captioning; evalkit's earlier default.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from functools import cached_property, lru_cache
from typing import Any, Literal

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.cider_resample import CiderCorpus
from evalkit.sample import Parsed, Sample

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")


def bleu_tokenize(text: str) -> str:
    """Lower-case, punctuation split off as its own token: what pycocoevalcap's scorer expects as input."""
    return " ".join(_TOKEN_RE.findall(text.lower()))


BLEU_TOKENIZATIONS = ("raw", "lower_punct")


def _reference(sample: Sample) -> str:
    return sample.reference_text or ""


# --- Work shared by sibling metrics ---------------------------------------------------------------------------------
# The runner scores metric after metric over the same samples: rouge_1/rouge_2/rouge_l tokenise and Porter-stem the
# same texts, and bleu_1..bleu_4 count the same n-grams. Both are memoised by value (the inputs are strings and the
# records are immutable), so each distinct text is tokenised once and each distinct (prediction, reference,
# tokenization) pair is counted once per process; the libraries' own code computes every entry. The bounds match the
# grounding caches: one run of up to ~30,000 samples stays cached from its first metric to its last.
_TEXT_CACHE = 1 << 16
_STEM_CACHE = 1 << 18  # distinct tokens: a report vocabulary is far smaller


@lru_cache(maxsize=1)
def _porter():
    from nltk.stem import porter

    return porter.PorterStemmer()  # what rouge-score's DefaultTokenizer(use_stemmer=True) builds


@lru_cache(maxsize=_STEM_CACHE)
def _porter_stem(token: str) -> str:
    # Porter stemming was 20% of a report run; a stem depends on the token alone, so each is computed once.
    return _porter().stem(token)


class _MemoStemmer:
    """The `stemmer` argument of rouge-score's `tokenize`: nltk's PorterStemmer, one call per distinct token."""

    @staticmethod
    def stem(token: str) -> str:
        return _porter_stem(token)


_MEMO_STEMMER = _MemoStemmer()


@lru_cache(maxsize=_TEXT_CACHE)
def _rouge_tokens(text: str, use_stemmer: bool) -> tuple[str, ...]:
    """rouge-score's DefaultTokenizer tokens of `text`: the library's own `tokenize`, with the memoised stemmer."""
    from rouge_score import tokenize

    # Interned so that the cached tuples share the short (unstemmed) tokens instead of holding a copy each.
    return tuple(sys.intern(t) for t in tokenize.tokenize(text, _MEMO_STEMMER if use_stemmer else None))


class _CachedTokenizer:
    """A rouge-score `Tokenizer` (the scorer's documented `tokenizer=` hook) over `rouge_tokens`."""

    def __init__(self, use_stemmer: bool) -> None:
        self.use_stemmer = use_stemmer

    def tokenize(self, text: str) -> tuple[str, ...]:
        return _rouge_tokens(text, self.use_stemmer)


def clear_caches() -> None:
    """Forget the memoised tokens, stems and BLEU counts (benchmarks time the cold path; tests count calls)."""
    for cached in (_porter_stem, _rouge_tokens, _bleu_counts):
        cached.cache_clear()


class _Rouge(Metric):
    """A rouge-score F-measure per sample, mean over samples (Porter stemmer on, as vilmedic/RadEval/RadVLM)."""

    version = "1"
    rouge_type: str = "rougeL"

    class Options(MetricOptions):
        use_stemmer: bool = True

    @cached_property
    def _scorer(self) -> Any:
        # Built on first use: importing rouge-score (nltk, scipy.stats) takes a second, and a rerun whose scores
        # are all stored builds the metric only for its identity.
        from rouge_score import rouge_scorer

        # The library's scorer and arithmetic; only tokenisation (shared by rouge_1/2/l) goes through the cache.
        tokenizer = _CachedTokenizer(self.typed_options.use_stemmer)
        return rouge_scorer.RougeScorer([self.rouge_type], tokenizer=tokenizer)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            result = self._scorer.score(_reference(sample), pred.answer or "")[self.rouge_type]
            out.append(SampleScore(float(result.fmeasure), {}))
        return out


@register_metric
class RougeL(_Rouge):
    name = "rouge_l"
    description = "ROUGE-L F1 (rouge-score, stemmer on), mean over samples"


@register_metric
class Rouge1(_Rouge):
    name = "rouge_1"
    rouge_type = "rouge1"
    description = "ROUGE-1 F1 (rouge-score, stemmer on), mean over samples"


@register_metric
class Rouge2(_Rouge):
    name = "rouge_2"
    rouge_type = "rouge2"
    description = "ROUGE-2 F1 (rouge-score, stemmer on), mean over samples"


@register_metric
class ResponseLength(Metric):
    """Length of the scored answer in characters, mean over samples (RadVLM-GRPO's Table 3 reports it beside
    each reward; the answer is what the metrics see, i.e. after the profile's answer rule and cut)."""

    name = "response_chars"
    higher_is_better = False  # shorter is not better: the direction only orders the leaderboard
    gated_by_default = False  # a description of the outputs, not a quality to hold a checkpoint to
    description = "mean answer length in characters (after the answer rule)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [SampleScore(float(len(pred.answer or "")), {}) for pred in predictions]


def bleu_stats(prediction: str, reference: str, n: int = 4, tokenization: str = "raw") -> dict[str, Any]:
    """pycocoevalcap's cooked statistics for one (prediction, reference) pair (whitespace split of the inputs).

    Memoised per (prediction, reference, n, tokenization): bleu_1..bleu_4 (and RadCliQ's BLEU-4 feature) read one
    record per pair. A fresh dict each call, so a caller may keep or change it.
    """
    testlen, reflen, guess, correct = _bleu_counts(prediction, reference, n, tokenization)
    return {"testlen": testlen, "reflen": reflen, "guess": list(guess), "correct": list(correct)}


@lru_cache(maxsize=_TEXT_CACHE)
def _bleu_counts(prediction: str, reference: str, n: int, tokenization: str) -> tuple[Any, Any, tuple, tuple]:
    return _cook_bleu(prediction, reference, n, tokenization)


def _cook_bleu(prediction: str, reference: str, n: int, tokenization: str) -> tuple[Any, Any, tuple, tuple]:
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    if tokenization == "lower_punct":
        prediction, reference = bleu_tokenize(prediction), bleu_tokenize(reference)
    cooked = cook_test(prediction, cook_refs([reference], n=n), eff="closest", n=n)
    return cooked["testlen"], cooked["reflen"], tuple(cooked["guess"]), tuple(cooked["correct"])


def _bleu_from_counts(correct: Sequence[float], guess: Sequence[float], testlen: float, reflen: float, n: int):
    # Same smoothing constants as pycocoevalcap's BleuScorer.compute_score, so values agree to the last digit.
    small, tiny = 1e-9, 1e-15
    bleu = 1.0
    for k in range(n):
        bleu *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
    value = bleu ** (1.0 / n)
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        value *= math.exp(1 - 1 / ratio)
    return value


class _Bleu(Metric):
    """BLEU-n with pycocoevalcap's 'closest' reference length.

    The per-sample value is pycocoevalcap's per-sentence BLEU; the corpus value (what papers report) is
    re-computed from summed n-gram counts, so it is not the mean of per-sample values.
    """

    n: int = 4
    corpus = True
    version = "2"  # 2: raw-string input by default (vilmedic/RadEval); `tokenization: lower_punct` is version 1's

    class Options(MetricOptions):
        tokenization: Literal["raw", "lower_punct"] = "raw"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tokenization = options.get("tokenization", "raw")
        if self.tokenization not in BLEU_TOKENIZATIONS:
            raise EvalkitError(
                f"metric '{self.name}': tokenization must be one of {BLEU_TOKENIZATIONS}, not '{self.tokenization}'"
            )

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            stats = bleu_stats(pred.answer or "", _reference(sample), n=4, tokenization=self.tokenization)
            value = _bleu_from_counts(stats["correct"], stats["guess"], stats["testlen"], stats["reflen"], self.n)
            out.append(SampleScore(value, stats))
        return out

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        if not stats:
            return float("nan")
        correct = [sum(s["correct"][k] for s in stats) for k in range(self.n)]
        guess = [sum(s["guess"][k] for s in stats) for k in range(self.n)]
        testlen = sum(s["testlen"] for s in stats)
        reflen = sum(s["reflen"] for s in stats)
        return _bleu_from_counts(correct, guess, testlen, reflen, self.n)

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray:
        # Columns: correct[0..n), guess[0..n), testlen, reflen: corpus BLEU is a function of their sums.
        return np.array(
            [[*s["correct"][: self.n], *s["guess"][: self.n], s["testlen"], s["reflen"]] for s in stats], dtype=float
        ).reshape(len(stats), 2 * self.n + 2)

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        """`_bleu_from_counts` on (..., 2n+2) sums, vectorised; same constants, so values agree to rounding."""
        small, tiny = 1e-9, 1e-15
        n = self.n
        ratios = (sums[..., :n] + tiny) / (sums[..., n : 2 * n] + small)
        value = np.prod(ratios, axis=-1) ** (1.0 / n)
        ratio = (sums[..., 2 * n] + tiny) / (sums[..., 2 * n + 1] + small)
        with np.errstate(divide="ignore", over="ignore"):
            penalty = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
        return value * penalty


@register_metric
class Bleu4(_Bleu):
    name = "bleu_4"
    n = 4
    description = "corpus BLEU-4 (pycocoevalcap arithmetic, closest reference length, raw strings)"


@register_metric
class Bleu1(_Bleu):
    name = "bleu_1"
    n = 1
    description = "corpus BLEU-1 (pycocoevalcap arithmetic, closest reference length, raw strings)"


@register_metric
class Bleu2(_Bleu):
    name = "bleu_2"
    n = 2
    description = "corpus BLEU-2 (pycocoevalcap arithmetic, closest reference length, raw strings)"


@register_metric
class Bleu3(_Bleu):
    name = "bleu_3"
    n = 3
    description = "corpus BLEU-3 (pycocoevalcap arithmetic, closest reference length, raw strings)"


# --- CIDEr-D (vilmedic's / pycocoevalcap's CiderD scorer arithmetic) ----------------------------------------------


def _ngram_counts(text: str, n: int = 4) -> dict[str, int]:
    """Whitespace-split n-grams (1..n) of the raw string in the scorer's insertion order, keyed "w1 w2"."""
    words = text.split()
    counts: dict[str, int] = {}
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            key = " ".join(words[i : i + k])
            counts[key] = counts.get(key, 0) + 1
    return counts


def cider_d(records: Sequence[dict[str, Any]], n: int = 4, sigma: float = 6.0) -> tuple[float, list[float]]:
    """Corpus CIDEr-D and per-sample scores from per-sample n-gram counts (`cider_hyp`, `cider_ref`).

    The scorer's own quirks are kept, because they are what RadVLM-GRPO reports: document frequencies come from
    the references of the scored corpus (so the value depends on the corpus, and a bootstrap resample counts a
    drawn-twice reference twice), the idf is log(#samples) - log(max(1, df)), the Gaussian length penalty uses the
    number of *bigrams* as the length, and the per-sample score is 10 x the mean over n of the clipped cosine. With
    no reference n-gram at all the scorer raises; evalkit returns NaN.
    """
    document_frequency: dict[str, int] = {}
    for record in records:
        for key in record["cider_ref"]:
            document_frequency[key] = document_frequency.get(key, 0) + 1
    if not document_frequency:
        return float("nan"), [float("nan")] * len(records)
    ref_len = np.log(float(len(records)))

    def vector(counts: dict[str, int]) -> tuple[list[dict[str, float]], list[float], int]:
        vec: list[dict[str, float]] = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for key, term_freq in counts.items():
            order = key.count(" ")
            df = np.log(max(1.0, document_frequency.get(key, 0.0)))
            vec[order][key] = float(term_freq) * (ref_len - df)
            norm[order] += pow(vec[order][key], 2)
            if order == 1:
                length += term_freq
        return vec, [float(np.sqrt(v)) for v in norm], length

    scores = []
    for record in records:
        vec_hyp, norm_hyp, length_hyp = vector(record["cider_hyp"])
        vec_ref, norm_ref, length_ref = vector(record["cider_ref"])
        delta = float(length_hyp - length_ref)
        val = np.array([0.0] * n)
        for order in range(n):
            for key in vec_hyp[order]:
                ref_weight = vec_ref[order].get(key, 0.0)
                val[order] += min(vec_hyp[order][key], ref_weight) * ref_weight
            if norm_hyp[order] != 0 and norm_ref[order] != 0:
                val[order] /= norm_hyp[order] * norm_ref[order]
            val[order] *= np.e ** (-(delta**2) / (2 * sigma**2))
        scores.append(float(np.mean(val)) * 10.0)
    return float(np.mean(np.array(scores))), scores


@register_metric
class CiderD(Metric):
    """CIDEr-D over the corpus (vilmedic's `CiderD`, as RadVLM-GRPO's `calcAllMetrics_whole` calls it: raw strings,
    one reference per sample). Per-sample values are left empty: a sample's CIDEr-D depends on the corpus."""

    name = "cider_d"
    corpus = True
    description = "corpus CIDEr-D (n=4, sigma=6, idf from the scored references; raw whitespace tokens)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [
            SampleScore(
                None, {"cider_hyp": _ngram_counts(pred.answer or ""), "cider_ref": _ngram_counts(_reference(s))}
            )
            for pred, s in zip(predictions, samples, strict=True)
        ]

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        records = [s for s in stats if "cider_hyp" in s]
        return cider_d(records)[0] if records else float("nan")

    def aggregate_resamples(
        self, values: Sequence[float | None], stats: Sequence[dict[str, Any]], counts: np.ndarray
    ) -> np.ndarray:
        """`aggregate` under each row of `counts`, all rows at once (see cider_resample)."""
        scored = np.array(["cider_hyp" in s for s in stats], dtype=bool)
        return self._corpus(stats).values(np.asarray(counts, dtype=float)[:, scored])

    def aggregate_swaps(
        self,
        values_a: Sequence[float | None],
        stats_a: Sequence[dict[str, Any]],
        values_b: Sequence[float | None],
        stats_b: Sequence[dict[str, Any]],
        swap: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Both sides of the permutation test: A's and B's records side by side with 0/1 counts (the idf comes
        from each side's own references, as `aggregate` on the mixed records computes it).

        Runs scored on the same samples hold the same references, so a swap leaves the document frequencies and
        the corpus size as they are: each sample keeps its own score in either run, and a side is the mean of
        A's or B's score per sample, one matrix product per block.
        """
        swap = np.asarray(swap, dtype=float)
        fixed = self._fixed_idf_scores(stats_a, stats_b)
        if fixed is not None:
            score_a, score_b, size = fixed
            if size == 0:
                nan = np.full(swap.shape[0], np.nan)
                return nan, nan.copy()
            moved = swap @ (score_b - score_a)  # what the swapped samples move from A's side to B's
            return (score_a.sum() + moved) / size, (score_b.sum() - moved) / size
        both = [*stats_a, *stats_b]
        side_a = np.hstack([1.0 - swap, swap])
        return (
            self.aggregate_resamples([], both, side_a),
            self.aggregate_resamples([], both, 1.0 - side_a),
        )

    def _fixed_idf_scores(
        self, stats_a: Sequence[dict[str, Any]], stats_b: Sequence[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Per-sample scores of A and B (0 where unscored) and the number scored, when both runs hold the same
        references on the same scored samples (a swap then keeps the idf); None otherwise. Worked out once per
        pair of runs: the permutation test asks again for every block."""
        cache = self.__dict__.setdefault("_fixed_idf", {})
        key = (tuple(id(s) for s in stats_a), tuple(id(s) for s in stats_b))
        if key not in cache:
            same = len(stats_a) == len(stats_b) and all(
                ("cider_hyp" in a) == ("cider_hyp" in b) and a.get("cider_ref") == b.get("cider_ref")
                for a, b in zip(stats_a, stats_b, strict=True)
            )
            value = None
            if same:
                scored = np.array(["cider_hyp" in a for a in stats_a], dtype=bool)
                score_a, score_b = np.zeros(len(stats_a)), np.zeros(len(stats_a))
                corpus_a = self._corpus(stats_a)
                size = float(scored.sum()) if corpus_a.has_ref.any() else 0.0
                if size:
                    score_a[scored], score_b[scored] = corpus_a.sample_scores(), self._corpus(stats_b).sample_scores()
                value = (score_a, score_b, size)
            cache.clear()  # one pair at a time; the stats are held with the key so their ids stay theirs
            cache[key] = (value, stats_a, stats_b)
        return cache[key][0]

    def _corpus(self, stats: Sequence[dict[str, Any]]) -> CiderCorpus:
        # A bootstrap hands the same stats to every block (a paired one alternates two runs): lay them out once.
        # The stats are held with their key, so the ids cannot be reused by other objects while cached.
        key = tuple(id(s) for s in stats)
        cache: dict[tuple[int, ...], tuple[Sequence[dict[str, Any]], CiderCorpus]] = self.__dict__.setdefault(
            "_corpora", {}
        )
        if key not in cache:
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = (stats, CiderCorpus([s for s in stats if "cider_hyp" in s]))
        return cache[key][1]
