"""The finding diagnostics (omission, invention, negation flips) on CheXbert's labels instead of the weight-free
rule labeller: the labels CheXbert F1 itself uses, from evalkit's CheXbert machinery and its cached annotations.

Distinct names (`*_chexbert`), because the two labellers are two definitions: CheXbert reads uncertain mentions as
positive (its "rrg" mapping) and knows 13 observations plus No Finding; the rules know 12 and no uncertainty.
Without weights these record `unavailable: <how to get them>`, like every CheXbert metric; the bundled tasks list
the rule-based ones, which run everywhere (docs/rl-health.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.chexpert import CHEXPERT_LABELS
from evalkit.metrics import register_metric
from evalkit.metrics._finding_labels import FindingLabels
from evalkit.metrics.base import ModelBackedMetric, SampleScore
from evalkit.metrics.chexbert import CHEXBERT_REQUIRES, CheXbertClient, CheXbertOptions
from evalkit.metrics.health_text import CountRatio, flip_counts, invention_counts, labels_record, omission_counts
from evalkit.sample import Parsed, Sample

# CheXbert head classes: 0 blank, 1 positive, 2 negative, 3 uncertain (read as positive, as its "rrg" mode does).
_POSITIVE, _NEGATIVE, _UNCERTAIN = 1, 2, 3
OBSERVATIONS = tuple(label for label in CHEXPERT_LABELS if label != "No Finding")


def chexbert_labels(classes: Sequence[int]) -> FindingLabels:
    """FindingLabels from CheXbert's 14 head classes (CHEXPERT_LABELS order; No Finding's head is left out)."""
    positive = {label for label, c in zip(CHEXPERT_LABELS, classes, strict=True) if c in (_POSITIVE, _UNCERTAIN)}
    negative = {label for label, c in zip(CHEXPERT_LABELS, classes, strict=True) if c == _NEGATIVE}
    return FindingLabels(frozenset(positive - {"No Finding"}), frozenset(negative - {"No Finding"}))


class _CheXbertFindingRatio(CountRatio, ModelBackedMetric):
    higher_is_better = False
    gated_by_default = False
    diagnostic = True
    requires = CHEXBERT_REQUIRES
    Options = CheXbertOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client = CheXbertClient(options)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        annotations = self.client.annotate(refs + [p.answer or "" for p in predictions], self.cache)
        return self.ratio_scores(
            labels_record(chexbert_labels(ans["classes"]), chexbert_labels(ref["classes"]))
            for ref, ans in zip(annotations[: len(refs)], annotations[len(refs) :], strict=True)
        )


@register_metric
class OmissionRateCheXbert(_CheXbertFindingRatio):
    name = "omission_rate_chexbert"
    description = "omission_rate on CheXbert labels (uncertain = positive)"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return omission_counts(record)


@register_metric
class InventionRateCheXbert(_CheXbertFindingRatio):
    name = "invention_rate_chexbert"
    description = "invention_rate on CheXbert labels, over its 13 observations"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return invention_counts(record, OBSERVATIONS)


@register_metric
class NegationFlipRateCheXbert(_CheXbertFindingRatio):
    name = "negation_flip_rate_chexbert"
    description = "negation_flip_rate on CheXbert labels (positive or uncertain vs negative)"

    def counts(self, record: dict[str, Any]) -> tuple[int, int]:
        return flip_counts(record)
