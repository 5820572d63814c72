"""CXR-Report-Metric's four per-report features as metrics of their own: ReXrank's leaderboard columns.

ReXrank (rajpurkarlab/ReXrank) reports BLEU, BertScore, SembScore and RadGraph next to RadCliQ-v1; they are the
four features CXR-Report-Metric's `run_eval.py` computes per report and feeds to RadCliQ. evalkit computes them
already inside `radcliq_v1` (evalkit/metrics/radcliq.py, parity-tested against fast_bleu and CXR-Report-Metric's
definitions); each metric here is one of those features, averaged over reports, from the same code and the same
annotation caches (a task scoring RadCliQ and these runs each model once):

- `bleu2_cxr`: BLEU-2 of fast_bleu on lower-cased, "." -> " ." tokens, per report;
- `bertscore_cxr`: BERTScore F1, distilroberta-base, layer 5, baseline-rescaled, runs of spaces squeezed;
- `semb_score`: cosine of the CheXbert [CLS] embeddings of reference and prediction (SembScore);
- `radgraph_combined`: (entity F1 + relation F1) / 2 on RadGraph annotations (original RadGraph model).

Each equals CXR-Report-Metric's own `run_eval.py: calc_metric` (commit 9c9ecad) on tiny models of the real
architectures: tests/parity/test_cxr_report_metric_parity.py. As there, every column stands alone: a report
RadGraph refuses (over its `max_words`) has no RadGraph value and no RadCliQ, but its BertScore and SembScore.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.radcliq import FEATURES, RadCliQV1, bleu2, bleu_tokens
from evalkit.sample import Parsed, Sample


class _CxrFeature(Metric):
    """One RadCliQ feature (FEATURES[`feature`]) per report; the corpus value is the mean."""

    feature: str
    requires = "RadGraph (original model), CheXbert and distilroberta-base weights, available locally"

    class Options(MetricOptions):
        # The three models behind the features, as radcliq_v1 takes them.
        radgraph: dict[str, Any] = Field(default_factory=dict)
        chexbert: dict[str, Any] = Field(default_factory=dict)
        bertscore: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.inner = RadCliQV1(convention="cxr_report_metric", **options)

    def available(self) -> str | None:
        return self.inner.available()

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        self.inner.cache = self.cache
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        column = self.inner.features(refs, preds)[:, FEATURES.index(self.feature)]
        return [
            SampleScore(None, {"error": "RadGraph refused the report (input too long)"})
            if np.isnan(v)
            else SampleScore(float(v))
            for v in column
        ]


@register_metric
class Bleu2Cxr(Metric):
    """The BLEU feature needs no model: computed directly (the same function radcliq_v1 uses)."""

    name = "bleu2_cxr"
    description = "BLEU-2 per report as CXR-Report-Metric (fast_bleu, lower-cased tokens), mean; ReXrank's BLEU"

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        return [
            SampleScore(bleu2(bleu_tokens(s.reference_text or ""), bleu_tokens(p.answer or "")))
            for p, s in zip(predictions, samples, strict=True)
        ]


@register_metric
class BertScoreCxr(_CxrFeature):
    name = "bertscore_cxr"
    version = "2"  # 2: a report RadGraph refuses keeps its BertScore (was an error)
    feature = "bertscore"
    description = "BERTScore F1, distilroberta-base, rescaled, as RadCliQ's feature; ReXrank's BertScore"


@register_metric
class SembScore(_CxrFeature):
    name = "semb_score"
    version = "2"  # 2: a report RadGraph refuses keeps its SembScore (was an error)
    feature = "semb_score"
    description = "SembScore: cosine of CheXbert [CLS] embeddings, mean; ReXrank's SembScore"


@register_metric
class RadGraphCombined(_CxrFeature):
    name = "radgraph_combined"
    feature = "radgraph_combined"
    description = "RadGraph (entity F1 + relation F1) / 2 as CXR-Report-Metric, mean; ReXrank's RadGraph"
