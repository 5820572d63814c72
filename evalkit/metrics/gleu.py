"""GLEU (Wu et al., 2016, Google's NMT paper), as nltk's `sentence_gleu` / `corpus_gleu` compute it.

Per sample: all 1..4-grams of prediction and reference (multisets); GLEU = matched n-grams / max(#prediction
n-grams, #reference n-grams), 0 when both are empty. The corpus value sums the matches and the maxima over
samples (nltk's `corpus_gleu`, which is not the mean of sentence values). Used as a GRPO reward ablation in
RadVLM-GRPO. Texts are tokenised as BLEU's are here (lower-cased words, punctuation split off).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.lexical import bleu_tokenize
from evalkit.sample import Parsed, Sample


def ngram_counts(tokens: Sequence[str], min_len: int = 1, max_len: int = 4) -> Counter[tuple[str, ...]]:
    """Every n-gram of the given orders (nltk's `everygrams`), counted."""
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(min_len, max_len + 1):
        for start in range(len(tokens) - n + 1):
            counts[tuple(tokens[start : start + n])] += 1
    return counts


def gleu_stats(prediction: Sequence[str], reference: Sequence[str], min_len: int = 1, max_len: int = 4) -> dict:
    """Sufficient statistics of one (prediction, reference) pair: matched n-grams and the larger n-gram total."""
    predicted = ngram_counts(prediction, min_len, max_len)
    referenced = ngram_counts(reference, min_len, max_len)
    match = sum((predicted & referenced).values())
    total = max(sum(predicted.values()), sum(referenced.values()))
    return {"match": match, "all": total}


def tokenize(text: str, tokenizer: str) -> list[str]:
    if tokenizer == "whitespace":
        return text.split()
    return bleu_tokenize(text).split()


@register_metric
class Gleu(Metric):
    """Sentence GLEU per sample; corpus GLEU (summed statistics) as the aggregate.

    Options:
        tokenizer: `words` (default; lower-cased, punctuation split off, as BLEU here) or `whitespace`
            (the text split on spaces, case kept).
        min_len, max_len: n-gram orders (default 1 and 4, as nltk).
    """

    name = "gleu"
    version = "1"
    corpus = True
    description = "GLEU (nltk sentence_gleu per sample, corpus_gleu aggregate), 1-4-grams"

    class Options(MetricOptions):
        tokenizer: str = "words"
        min_len: int = 1
        max_len: int = 4

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.tokenizer = options.get("tokenizer", "words")
        if self.tokenizer not in ("words", "whitespace"):
            raise ValueError(f"gleu: option tokenizer must be 'words' or 'whitespace', not {self.tokenizer!r}")
        self.min_len = int(options.get("min_len", 1))
        self.max_len = int(options.get("max_len", 4))

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            stats = gleu_stats(
                tokenize(pred.answer or "", self.tokenizer),
                tokenize(sample.reference_text or "", self.tokenizer),
                self.min_len,
                self.max_len,
            )
            value = stats["match"] / stats["all"] if stats["all"] else 0.0
            out.append(SampleScore(value, stats))
        return out

    def aggregate(self, values: Sequence[float], stats: Sequence[dict[str, Any]]) -> float:
        if not stats:
            return float("nan")
        total = sum(s["all"] for s in stats)
        return sum(s["match"] for s in stats) / total if total else 0.0
