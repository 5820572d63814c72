"""Convention inference: which named definition of a number lands a published value inside a run's 95% CI.

The same metric name means different numbers across the field: RadCliQ-v1 is reported as the raw mean (lower is
better; RadVLM-GRPO), as 1 over the mean (ReXrank's primary score) or could be a mean of per-report reciprocals;
RadGraph F1 has three levels, CheXbert F1 two label sets and two averages, grounding "mAP@0.5" is the seed's
per-sample greedy AP or COCO's AP50, BLEU comes in four orders and per report (CXR-Report-Metric), BERTScore on
two models. For one run and one published cell this computes
every named convention of that number from what the run stored (sibling metrics with their stored CIs; transforms
of the per-sample values, bootstrapped by the task's clusters) and says which land the published value (its
printed rounding included) inside the CI. What the run did not store (BERTScore with idf, another BLEU
tokenisation) is listed as not computable rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from evalkit.published import PublishedRecord

# family -> ((convention, who reports it, stored metric, transform), ...); transform: stored | inverse_of_mean |
# mean_of_inverse (the last two only for metrics whose stored value is the mean of per-sample values).
FAMILIES: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "radcliq": (
        ("RadCliQ-v1 raw mean", "RadVLM-GRPO Tables 1/3, evalkit (lower is better)", "radcliq_v1", "stored"),
        ("1 / mean RadCliQ-v1", "ReXrank-metric's primary score (higher is better)", "radcliq_v1", "inverse_of_mean"),
        ("mean of 1 / RadCliQ-v1", "per-report reciprocal, then averaged", "radcliq_v1", "mean_of_inverse"),
    ),
    "radgraph": (
        ("RadGraph F1 simple", "entities only", "radgraph_f1_simple", "stored"),
        ("RadGraph F1 partial", "entities and relations, relation types ignored", "radgraph_f1_partial", "stored"),
        ("RadGraph F1 complete", "RadVLM-GRPO's RGF1 (Table 3's starred RGF1-C)", "radgraph_f1_complete", "stored"),
        (
            "RadGraph (entity F1 + relation F1) / 2",
            "CXR-Report-Metric, ReXrank's RadGraph",
            "radgraph_combined",
            "stored",
        ),
    ),
    "bertscore": (
        ("BERTScore distilbert-base-uncased L5, rescaled", "RadVLM-GRPO's B-S (vilmedic)", "bertscore", "stored"),
        (
            "BERTScore distilroberta-base L5, rescaled",
            "RadCliQ's feature, ReXrank's BertScore",
            "bertscore_cxr",
            "stored",
        ),
    ),
    "chexbert": (
        ("CheXbert micro-F1, 14 labels", "RadVLM-GRPO's CXb-micro", "chexbert_micro_f1_14", "stored"),
        ("CheXbert macro-F1, 14 labels", "RadVLM-GRPO's CXb-macro", "chexbert_macro_f1_14", "stored"),
        ("CheXbert micro-F1, 5 labels", "the 5-observation set", "chexbert_micro_f1_5", "stored"),
        ("CheXbert macro-F1, 5 labels", "the 5-observation set", "chexbert_macro_f1_5", "stored"),
    ),
    "grounding": (
        ("seed mAP@0.5", "RadVLM(-GRPO)'s per-sample greedy AP at IoU 0.5", "radvlm_map50", "stored"),
        ("COCO AP50", "pycocotools COCOeval, class-agnostic", "coco_ap50", "stored"),
    ),
    "bleu": (
        *((f"BLEU-{k}", "corpus, pycocoevalcap arithmetic", f"bleu_{k}", "stored") for k in range(1, 5)),
        ("BLEU-2 per report, averaged", "CXR-Report-Metric (fast_bleu), ReXrank's BLEU", "bleu2_cxr", "stored"),
    ),
}
METRIC_FAMILY = {metric: family for family, rows in FAMILIES.items() for _, _, metric, _ in rows}
NOT_STORED = {
    "radcliq": "BERTScore inside RadCliQ with idf on or off: only the setting the run used is stored",
    "bertscore": "BERTScore with idf on, or without rescaling: only the settings the run used are stored",
    "bleu": "raw vs lower-cased, punctuation-split tokens: only the tokenisation the task used is stored",
}
INSIDE, OUTSIDE, MISSING = "inside", "outside", "not stored"


@dataclass(frozen=True)
class Candidate:
    """One convention of a published number, computed from a run (values on the record's printed scale)."""

    convention: str
    reported_by: str
    metric: str
    transform: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    verdict: str  # inside | outside | not stored
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def family_of(record: PublishedRecord) -> str | None:
    """The family of conventions a published cell belongs to (None: no alternatives known)."""
    return METRIC_FAMILY.get(record.metric)


def explain(store: Any, run: dict[str, Any], record: PublishedRecord, cluster: str = "auto") -> list[Candidate]:
    """Every named convention of `record`'s number, computed from `run`'s stored data, against the published value.

    The published value is read on its printed scale (x100 is undone; a 1/x column is compared as printed, since
    the inverse is itself one of the conventions). Inside means some value that prints as the cell lies inside the
    convention's 95% CI (the run's display CIs, clustered as the task's samples are: `cluster`).
    """
    from evalkit.results.intervals import run_cis
    from evalkit.results.queries import run_metrics

    family = family_of(record)
    if family is None:
        return []
    stored = {m["metric"]: m for m in run_metrics(store, run["run_id"])}
    bounds = run_cis(store, run, cluster=cluster)
    factor = 100.0 if record.scale == "x100" else 1.0
    half = 0.5 * 10.0**-record.decimals
    published_low, published_high = record.value - half, record.value + half
    out = []
    for convention, who, metric, transform in FAMILIES[family]:
        row = stored.get(metric)
        if row is None or row["status"] != "ok" or row["value"] is None or metric not in bounds:
            why = "the run has no such score" if row is None else f"the run's score is {row['status']}"
            out.append(Candidate(convention, who, metric, transform, None, None, None, MISSING, why))
            continue
        if transform == "inverse_of_mean" and bounds[metric].ci_low <= 0 <= bounds[metric].ci_high:
            why = "the mean's CI includes 0, where 1/x is not monotone (RadCliQ-v1 can be negative)"
            out.append(Candidate(convention, who, metric, transform, None, None, None, MISSING, why))
            continue
        value, low, high = _transformed(store, run, metric, transform, row["value"], bounds[metric], cluster)
        value, low, high = value * factor, low * factor, high * factor
        inside = math.isfinite(low) and published_low <= high and published_high >= low
        out.append(Candidate(convention, who, metric, transform, value, low, high, INSIDE if inside else OUTSIDE))
    if family in NOT_STORED:
        out.append(Candidate(NOT_STORED[family], "", "", "", None, None, None, MISSING, "re-score to compare"))
    return out


def _transformed(
    store: Any, run: dict[str, Any], metric: str, transform: str, value: float, interval: Any, cluster: str
) -> tuple[float, float, float]:
    if transform == "stored":
        return value, interval.ci_low, interval.ci_high
    if transform == "inverse_of_mean":
        # A percentile bootstrap CI maps through a monotone transform: the CI of 1/mean is 1/(the mean's CI).
        return _inv(value), _inv(interval.ci_high), _inv(interval.ci_low)
    return _mean_of_inverse(store, run, metric, cluster)


def _inv(x: float) -> float:
    return 1.0 / x if x else math.inf


def _mean_of_inverse(store: Any, run: dict[str, Any], metric: str, cluster: str) -> tuple[float, float, float]:
    from evalkit.results.aggregates import StoredMean
    from evalkit.results.intervals import DISPLAY_N_BOOT
    from evalkit.results.scores import load_clustering, load_run_scores
    from evalkit.stats import intervals

    scores = load_run_scores(store, run["run_id"], [metric])[metric]
    scores.values = [None if v is None else _inv(v) for v in scores.values]
    scores.stats = [{} for _ in scores.values]
    b = intervals(
        {metric: scores},
        {metric: StoredMean(metric)},
        n_boot=DISPLAY_N_BOOT,
        clustering=load_clustering(store, run["task"], cluster),
    )[metric]
    return b.value, b.ci_low, b.ci_high
