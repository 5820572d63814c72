"""RadCliQ-v1 (Yu et al., Patterns 2023), reported raw: lower is better, never inverted.

RadCliQ-v1 = w . z + b, where z standardises four per-report features with the published scaler and (w, b)
are the published linear-model coefficients (CXR-Report-Metric's `radcliq-v1.pkl`, as transcribed in RadEval's
`RadCliQv1/radcliq.py`; held to the pickle itself in tests/parity/test_cxr_report_metric_parity.py). The
features are computed as CXR-Report-Metric's `run_eval.py` computes them:

- radgraph_combined: (entity F1 + relation F1) / 2, entities {(tokens, label)} and relations
  {((tokens, label), (tokens, label), relation)} from RadGraph annotations (`radgraph_evaluate_model.py`),
  with the original RadGraph model (model_type "radgraph") by default;
- bertscore: BERTScore F1, distilroberta-base, its default layer (5), baseline-rescaled, runs of spaces
  squeezed first;
- semb_score: cosine similarity of the CheXbert [CLS] embeddings of reference and prediction (`encode.py`);
- bleu_score: BLEU-2 of fast_bleu (nltk's algorithm, smoothing method 1, closest reference length) on
  lower-cased, "." -> " ." whitespace-split tokens.

Option `convention: radvlm_grpo_worker` (the radvlm-grpo profile's default) computes RadCliQ-v1 as RadVLM-GRPO's
`scripts/evaluation/compute_radcliq.py` + `verl/custom_rewards/reward_server/worker_radcliq.py` do, through the
seed's vendored RadEval `CompositeMetric`: a text of 5 characters or fewer on either side, or any scoring failure,
scores 3.0 (the worker's reward -3); both texts are cut to 2,048 characters and lower-cased; RadGraph is
radgraph-xl with no word cap; BERTScore gets the texts unsqueezed; the BLEU feature is RadEval's per-sentence
BLEU-4 on raw whitespace tokens (`Bleu()(refs, hyps)[1]`); s_emb's cosine is 0 for a zero vector.

The per-sample value is the RadCliQ-v1 of that report; the corpus value is the mean (as the paper reports).
Every feature comes from the shared compute-once annotation caches of the RadGraph, BERTScore and CheXbert
metrics, so RadCliQ adds no model run when those metrics ran on the same texts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field

from evalkit.errors import EvalkitError
from evalkit.metrics import register_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.bertscore import BertScoreClient
from evalkit.metrics.chexbert import CheXbertClient, embedding
from evalkit.metrics.radgraph import RadGraphClient, preprocess
from evalkit.sample import Parsed, Sample

FEATURES = ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
CONVENTIONS = ("cxr_report_metric", "radvlm_grpo_worker")
WORKER_MAX_CHARS = 2048  # worker_radcliq.py: request.pred_text[:2048].lower()
WORKER_MIN_CHARS = 5  # worker_radcliq.py: len(text) <= 5 -> reward -3
WORKER_FAILURE_VALUE = 3.0  # the worker's reward -3, as a raw (lower-is-better) RadCliQ
SCALER_MEAN = np.array([0.53792312, 0.61757256, 0.76479421, 0.44738335])
SCALER_SCALE = np.array([0.30282584, 0.22430938, 0.25394391, 0.29892717])
COEFFICIENTS = np.array([-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12])
INTERCEPT = 2.46655256e-10


def radcliq_v1(features: np.ndarray) -> np.ndarray:
    """RadCliQ-v1 of (n, 4) features in FEATURES order (StandardScaler.transform, then the linear model)."""
    z = (np.asarray(features, dtype=float) - SCALER_MEAN) / SCALER_SCALE
    return z @ COEFFICIENTS + INTERCEPT


# --- features ---------------------------------------------------------------------------------------------------
def _set_f1(test: set, retrieved: set) -> float:
    """CXR-Report-Metric's `compute_f1` (test = reference, retrieved = prediction)."""
    tp = len(test & retrieved)
    fp, fn = len(retrieved) - tp, len(test) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def entities_and_relations(annotation: dict[str, Any]) -> tuple[set, set]:
    """CXR-Report-Metric's `parse_entity_relation` for one report (RadEval's `extract_relations` skips a relation
    to a missing entity; radgraph's post-processing never leaves one, so the two agree)."""
    entities = annotation.get("entities", {})
    ents = {(e["tokens"], e["label"]) for e in entities.values()}
    rels = set()
    for e in entities.values():
        for relation in e.get("relations", []):
            target = entities.get(relation[1])
            if target is not None:
                rels.add(((e["tokens"], e["label"]), (target["tokens"], target["label"]), relation[0]))
    return ents, rels


def radgraph_combined(reference: dict[str, Any], prediction: dict[str, Any]) -> float:
    ref_ents, ref_rels = entities_and_relations(reference)
    pred_ents, pred_rels = entities_and_relations(prediction)
    return (_set_f1(ref_ents, pred_ents) + _set_f1(ref_rels, pred_rels)) / 2


def bleu_tokens(text: str) -> list[str]:
    """CXR-Report-Metric's `prep_reports`: lower-case, '.' -> ' .', split on ' ', drop empty strings."""
    return [t for t in str(text).lower().replace(".", " .").split(" ") if t != ""]


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def bleu2(reference: list[str], hypothesis: list[str]) -> float:
    """fast_bleu's BLEU (weights (1/2, 1/2), one reference, smoothing function 1: a zero count becomes 0.1)."""
    precisions = []
    for n in (1, 2):
        counts = _ngrams(hypothesis, n)
        ref_counts = _ngrams(reference, n)
        denominator = max(1, sum(counts.values()))
        numerator = sum(min(c, ref_counts[g]) for g, c in counts.items())
        if n == 1 and numerator == 0:
            return 0.0
        precisions.append(numerator / denominator if numerator else 0.1 / denominator)
    hyp_len, ref_len = len(hypothesis), len(reference)
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return penalty * math.exp(sum(0.5 * math.log(p) for p in precisions))


def worker_bleu4(reference: str, prediction: str) -> float:
    """RadEval's BLEU feature: per-sentence BLEU-4 of pycocoevalcap's scorer on the raw strings."""
    from evalkit.metrics.lexical import _bleu_from_counts, bleu_stats

    stats = bleu_stats(prediction, reference, n=4, tokenization="raw")
    return _bleu_from_counts(stats["correct"], stats["guess"], stats["testlen"], stats["reflen"], 4)


def worker_text(text: str) -> str:
    """What the seed's RadCliQ worker scores: the first 2,048 characters, lower-cased."""
    return text[:WORKER_MAX_CHARS].lower()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))


@register_metric
class RadCliQV1(Metric):
    """RadCliQ-v1 per report and its mean; lower is better."""

    name = "radcliq_v1"
    version = "1"  # the worker convention is told apart by its options (and fingerprint), not the version
    higher_is_better = False
    requires = "RadGraph (original model), CheXbert and distilroberta-base weights, available locally"
    description = "RadCliQ-v1 (published scaler + coefficients), mean over samples; lower is better"

    class Options(MetricOptions):
        convention: Literal["cxr_report_metric", "radvlm_grpo_worker"] = "cxr_report_metric"
        # Options of the three models inside RadCliQ (see the CheXbert, RadGraph and BERTScore metrics).
        radgraph: dict[str, Any] = Field(default_factory=dict)
        chexbert: dict[str, Any] = Field(default_factory=dict)
        bertscore: dict[str, Any] = Field(default_factory=dict)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.convention = options.get("convention", "cxr_report_metric")
        if self.convention not in CONVENTIONS:
            raise EvalkitError(f"metric 'radcliq_v1': convention must be one of {CONVENTIONS}, not '{self.convention}'")
        worker = self.convention == "radvlm_grpo_worker"
        radgraph_options = dict(options.get("radgraph", {}))
        if worker:
            radgraph_options.setdefault("max_words", 0)  # the 2,048-character cut bounds the length instead
        self.radgraph = RadGraphClient(radgraph_options, default_model="radgraph-xl" if worker else "radgraph")
        self.chexbert = CheXbertClient(options.get("chexbert", {}))
        self.bertscore = BertScoreClient(
            options.get("bertscore", {}), model_type="distilroberta-base", num_layers=5, collapse_spaces=not worker
        )

    def available(self) -> str | None:
        reasons = [
            f"{part}: {reason}"
            for part, reason in (
                ("RadGraph", self.radgraph.unavailable()),
                ("CheXbert", self.chexbert.unavailable()),
                ("BERTScore", self.bertscore.unavailable()),
            )
            if reason
        ]
        return "; ".join(reasons) or None

    def fingerprint(self) -> str:
        parts = f"{self.radgraph.version()}|{self.chexbert.version()}|{self.bertscore.version()}"
        return parts if self.convention == "cxr_report_metric" else f"{self.convention}|{parts}"

    def features(self, references: Sequence[str], predictions: Sequence[str]) -> np.ndarray:
        n = len(references)
        graphs = self.radgraph.annotate([*references, *predictions], self.cache)
        labels = self.chexbert.annotate([*references, *predictions], self.cache)
        berts = self.bertscore.pair_scores(references, predictions, self.cache)
        worker = self.convention == "radvlm_grpo_worker"
        rows = []
        for i in range(n):
            # A report RadGraph refuses (over max_words) leaves only its RadGraph feature NaN: CXR-Report-Metric
            # computes every column on its own, so BertScore and SembScore of that report still exist.
            refused = "error" in graphs[i] or "error" in graphs[n + i]
            reference_emb, prediction_emb = embedding(labels[i]), embedding(labels[n + i])
            zero = not (np.linalg.norm(reference_emb) > 0 and np.linalg.norm(prediction_emb) > 0)
            rows.append(
                [
                    float("nan") if refused else radgraph_combined(graphs[i], graphs[n + i]),
                    berts[i]["f"],
                    0.0 if worker and zero else cosine(reference_emb, prediction_emb),
                    worker_bleu4(references[i], predictions[i])
                    if worker
                    else bleu2(bleu_tokens(references[i]), bleu_tokens(predictions[i])),
                ]
            )
        return np.array(rows, dtype=float).reshape(n, len(FEATURES))

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        if self.convention == "radvlm_grpo_worker":
            return self._score_as_worker(refs, preds)
        features = self.features(refs, preds)
        values = radcliq_v1(features)
        out = []
        for v, row in zip(values, features, strict=True):
            if np.isnan(row).any():
                out.append(
                    SampleScore(None, {"error": "a RadCliQ feature could not be computed (RadGraph input too long)"})
                )
            else:
                out.append(SampleScore(float(v), dict(zip(FEATURES, map(float, row), strict=True))))
        return out

    def _score_as_worker(self, refs: list[str], preds: list[str]) -> list[SampleScore]:
        """The seed worker's rules around the same features (see the module docstring)."""
        out: list[SampleScore | None] = [None] * len(refs)
        keep = []
        for i, (ref, pred) in enumerate(zip(refs, preds, strict=True)):
            if len(pred) <= WORKER_MIN_CHARS or len(ref) <= WORKER_MIN_CHARS:
                out[i] = SampleScore(WORKER_FAILURE_VALUE, {"worker_rule": "text of 5 characters or fewer"})
            elif not all(preprocess(worker_text(t), self.radgraph.model_type) for t in (ref, pred)):
                # radgraph 0.1.18 raises on a text its preprocessing empties (whitespace only, or only the escape
                # sequences radgraph-xl blanks); the worker catches it and answers -3
                out[i] = SampleScore(WORKER_FAILURE_VALUE, {"worker_rule": "no word left for RadGraph"})
            else:
                keep.append(i)

        def run(index: list[int]) -> None:
            features = self.features([worker_text(refs[i]) for i in index], [worker_text(preds[i]) for i in index])
            for i, row in zip(index, features, strict=True):
                if np.isnan(row).any():
                    out[i] = SampleScore(WORKER_FAILURE_VALUE, {"worker_rule": "a feature could not be computed"})
                else:
                    value = float(radcliq_v1(row[None, :])[0])
                    out[i] = SampleScore(value, dict(zip(FEATURES, map(float, row), strict=True)))

        if keep:
            try:
                run(keep)
            except Exception:  # the worker answers -3 for any failure: one bad pair must not sink the others
                for i in keep:
                    try:
                        run([i])
                    except Exception as exc:
                        out[i] = SampleScore(WORKER_FAILURE_VALUE, {"worker_rule": f"scoring failed: {exc}"})
        return [s for s in out if s is not None]
