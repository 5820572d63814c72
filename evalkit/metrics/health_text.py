"""RL-health diagnostics of report answers, per sample: length, emptiness, degeneration, thinking hygiene and
finding omission / invention / negation flips (docs/rl-health.md).

Why they are metrics: reward hacking shows in the outputs (RadVLM-GRPO's Table 3: rewarding RadGraph-F1 shrinks
answers from 207 to 93 characters while other columns fall), so each symptom is a stored per-sample number that
the store resamples, CIs and pairs against a parent run like any metric. They describe outputs rather than grade
quality, so none is gated by default; `evalkit health` and the gate's Goodhart check read them.

Finding labels come from the weight-free labeller in `_finding_labels` (a proxy for CheXbert that the phantom
reports label exactly); the rates over findings are ratios of summed counts (missed / referenced), so they are
corpus values from sufficient statistics, resampled as one matrix product.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from evalkit.metrics import register_metric
from evalkit.metrics._finding_labels import LABELS, FindingLabels, label_text
from evalkit.metrics.base import Metric, SampleScore
from evalkit.sample import Parsed, Sample

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\S+")


def sentences(text: str) -> list[str]:
    """Sentences of a report, normalised (lower case, single spaces) so that repeats compare equal."""
    return [" ".join(s.lower().split()) for s in _SENTENCE.split(text) if s.strip()]


class _Diagnostic(Metric):
    """A per-sample diagnostic: described, not graded; never gated unless a gate names it."""

    gated_by_default: ClassVar[bool] = False
    diagnostic: ClassVar[bool] = True
    higher_is_better = False


@register_metric
class AnswerWords(_Diagnostic):
    name = "answer_words"
    description = "mean answer length in whitespace-separated words"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [SampleScore(float(len(_WORD.findall(p.answer or ""))), {}) for p in predictions]


@register_metric
class LengthRatio(_Diagnostic):
    """Answer characters over the reference's characters (a sample without a reference is left out)."""

    name = "length_ratio"
    description = "mean ratio of answer to reference length in characters"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            ref = len(sample.reference_text or "")
            out.append(SampleScore(len(pred.answer or "") / ref if ref else None, {}))
        return out


@register_metric
class EmptyAnswer(_Diagnostic):
    name = "empty_answer"
    description = "share of answers that are empty after the answer rule"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [SampleScore(0.0 if (p.answer or "").strip() else 1.0, {}) for p in predictions]


@register_metric
class UnclosedThink(_Diagnostic):
    """A `<think>` opened and never closed: the model ran into the token limit while thinking."""

    name = "unclosed_think"
    description = "share of answers cut inside an unclosed <think>"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [
            SampleScore(1.0 if (p.parse_error or "").startswith("thinking not closed") else 0.0, {})
            for p in predictions
        ]


@register_metric
class ThinkingChars(_Diagnostic):
    name = "thinking_chars"
    description = "mean length of the thinking trace in characters (0 without one)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [SampleScore(float(len(p.thinking or "")), {}) for p in predictions]


@register_metric
class RepeatedSentences(_Diagnostic):
    """Share of an answer's sentences that repeat an earlier sentence of the same answer (degeneration)."""

    name = "repeated_sentences"
    description = "mean share of sentences repeating an earlier one in the same answer"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred in predictions:
            parts = sentences(pred.answer or "")
            out.append(SampleScore((len(parts) - len(set(parts))) / len(parts) if parts else 0.0, {}))
        return out


@register_metric
class RepeatedTrigrams(_Diagnostic):
    """Share of an answer's word 3-grams that occurred earlier in the same answer (0 under three words)."""

    name = "repeated_trigrams"
    description = "mean share of word 3-grams repeating an earlier one in the same answer"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred in predictions:
            words = (pred.answer or "").lower().split()
            grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
            out.append(SampleScore((len(grams) - len(set(grams))) / len(grams) if grams else 0.0, {}))
        return out


def finding_record(answer: str, reference: str) -> dict[str, Any]:
    """What the finding diagnostics store per sample: the labels of answer and reference (sorted lists)."""
    return labels_record(label_text(answer), label_text(reference))


def labels_record(a: FindingLabels, r: FindingLabels) -> dict[str, Any]:
    """The stored record of one (answer, reference) pair of labels, whichever labeller made them."""
    return {
        "answer_pos": sorted(a.positive),
        "answer_neg": sorted(a.negative),
        "ref_pos": sorted(r.positive),
        "ref_neg": sorted(r.negative),
        "answer_normal": not a.abnormal,
        "ref_normal": not r.abnormal,
    }


def omission_counts(record: dict[str, Any]) -> tuple[int, int]:
    ref, ans = set(record["ref_pos"]), set(record["answer_pos"])
    return len(ref - ans), len(ref)


def invention_counts(record: dict[str, Any], observations: Sequence[str]) -> tuple[int, int]:
    ref, ans = set(record["ref_pos"]), set(record["answer_pos"])
    return len(ans - ref), len(set(observations) - ref)


def flip_counts(record: dict[str, Any]) -> tuple[int, int]:
    ref_pos, ref_neg = set(record["ref_pos"]), set(record["ref_neg"])
    ans_pos, ans_neg = set(record["answer_pos"]), set(record["answer_neg"])
    return len(ref_pos & ans_neg) + len(ref_neg & ans_pos), len(ref_pos | ref_neg)


class CountRatio:
    """A rate stored per sample as (hits, total) and aggregated as sum of hits over sum of totals, so resamples
    weigh samples by their findings (mixed in before the Metric base, whichever labeller gives the records)."""

    corpus = True

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        raise NotImplementedError

    def ratio_scores(self, records: Iterable[dict[str, Any]]) -> list[SampleScore]:
        """Each sample's rate, its labels record and its (hits, total)."""
        out = []
        for record in records:
            hits, total = self.counts(record)
            out.append(SampleScore(hits / total if total else None, {**record, "hits": hits, "total": total}))
        return out

    def aggregate(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> float:
        hits = sum(s.get("hits", 0) for s in stats)
        total = sum(s.get("total", 0) for s in stats)
        return hits / total if total else float("nan")

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray:
        return np.array([[s.get("hits", 0), s.get("total", 0)] for s in stats], dtype=float).reshape(len(stats), 2)


class _FindingRatio(CountRatio, _Diagnostic):
    """A rate over findings of the weight-free labeller (evalkit/metrics/_finding_labels.py)."""

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return self.ratio_scores(
            finding_record(pred.answer or "", sample.reference_text or "")
            for pred, sample in zip(predictions, samples, strict=True)
        )


@register_metric
class OmissionRate(_FindingRatio):
    """Findings the reference asserts that the answer does not assert, over the findings the reference asserts."""

    name = "omission_rate"
    description = "findings of the reference missing from the answer / findings of the reference (label proxy)"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return omission_counts(record)


@register_metric
class InventionRate(_FindingRatio):
    """Findings the answer asserts that the reference does not, over the findings the reference does not assert
    (the labeller's observations minus the reference's positives): a false-positive rate, defined even for an
    answer that asserts nothing (a constant normal report invents nothing: 0, not undefined)."""

    name = "invention_rate"
    description = "findings asserted by the answer but not the reference / observations the reference leaves out"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return invention_counts(record, LABELS)


@register_metric
class NegationFlipRate(_FindingRatio):
    """Findings whose polarity the answer reverses (asserted in the reference and negated in the answer, or the
    other way round), over the findings the reference mentions either way. A negation flip keeps almost every
    word, so lexical and embedding metrics barely move (BERTScore 0.893 for "No pleural effusion." ->
    "Pleural effusion."); this rate moves fully."""

    name = "negation_flip_rate"
    description = "findings whose polarity the answer reverses / findings the reference mentions (label proxy)"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return flip_counts(record)


@register_metric
class AllNormalRate(_Diagnostic):
    """Share of answers asserting no abnormal finding (devices alone are normal, as CheXpert's No Finding). The
    stats keep the reference's own verdict, so the references' rate is one mean away."""

    name = "all_normal_rate"
    description = "share of answers asserting no abnormal finding (label proxy)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            record = finding_record(pred.answer or "", sample.reference_text or "")
            out.append(SampleScore(float(record["answer_normal"]), {"ref_normal": record["ref_normal"]}))
        return out


@register_metric
class AllNormalExcess(_Diagnostic):
    """Answer "all normal" minus reference "all normal", per sample: its mean is the answers' all-normal rate
    minus the references' own rate (0 for a model that calls normal exactly as often as the radiologists)."""

    name = "all_normal_excess"
    description = "all-normal rate of the answers minus that of the references (label proxy)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred, sample in zip(predictions, samples, strict=True):
            record = finding_record(pred.answer or "", sample.reference_text or "")
            out.append(SampleScore(float(record["answer_normal"]) - float(record["ref_normal"]), {}))
        return out


@register_metric
class ThinkingOnlyFindings(_Diagnostic):
    """Share of answers whose thinking asserts a finding that the answer itself does not (the reasoning saw it,
    the report dropped it)."""

    name = "thinking_only_findings"
    description = "share of answers with a finding asserted only inside the thinking (label proxy)"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        out = []
        for pred in predictions:
            thought = label_text(pred.thinking or "").positive
            out.append(SampleScore(1.0 if thought - label_text(pred.answer or "").positive else 0.0, {}))
        return out


def label_rates(stats: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per label, the share of answers and of references asserting it (from finding-metric stats)."""
    n = len(stats)
    answer = Counter(label for s in stats for label in s.get("answer_pos", []))
    ref = Counter(label for s in stats for label in s.get("ref_pos", []))
    return {
        label: {"answer": answer[label] / n, "reference": ref[label] / n}
        for label in sorted(set(answer) | set(ref))
        if n
    }
