"""Score free (reference, prediction) report pairs: `evalkit.score_reports` and `evalkit score --pairs`.

No task, image or run is involved: the metrics are the same classes the runner uses, with the same
compute-once caches. With a results database, each metric's per-pair result is also cached under its score
identity (metric, version, canonical options, weights fingerprint: the runner's key) and the hash of both
texts, so scoring the same pairs again runs nothing at all, and a new set of predictions against the same
references reuses every reference annotation.

    >>> from evalkit import score_reports
    >>> result = score_reports(["No effusion."], ["No pleural effusion."], metrics=["rouge_l", "bleu_4"])
    >>> result.metrics["rouge_l"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics._annotations import pair_hash
from evalkit.metrics.base import Metric, safe_score
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

DEFAULT_METRICS = (
    "rouge_l",
    "bleu_1",
    "bleu_2",
    "bleu_3",
    "bleu_4",
    "bertscore",
    "chexbert_micro_f1_14",
    "chexbert_macro_f1_14",
    "chexbert_micro_f1_5",
    "chexbert_macro_f1_5",
    "radgraph_f1_simple",
    "radgraph_f1_partial",
    "radgraph_f1_complete",
    "radcliq_v1",
    "green",
)
CHUNK = 512


@dataclass
class ReportScores:
    """Corpus values, per-pair values and statistics, and the metrics that could not run (with why)."""

    metrics: dict[str, float]
    per_sample: list[dict[str, float | None]]
    stats: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    instances: dict[str, Metric] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "per_sample": self.per_sample, "unavailable": self.unavailable}

    def intervals(self, n_boot: int = 2_000, seed: int = 0, level: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap CIs of each corpus value, re-aggregated from the stored per-pair statistics."""
        from evalkit.stats import MetricScores, intervals

        ids = [str(i) for i in range(len(self.per_sample))]
        scores = {
            name: MetricScores(name, ids, [row.get(name) for row in self.per_sample], self.stats[name])
            for name in self.metrics
        }
        found = intervals(scores, self.instances, n_boot=n_boot, seed=seed, level=level)
        return {name: (i.ci_low, i.ci_high) for name, i in found.items()}


def clean_text(value: Any) -> str:
    """A report as text: None -> "", other types refused, lone surrogates (bad input) made valid UTF-8."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EvalkitError(f"a report must be a string, not {type(value).__name__}: {value!r:.60}")
    return value.encode("utf-8", "replace").decode("utf-8")


def _score_metric(metric: Metric, refs: list[str], preds: list[str], store: Any):
    keys = [pair_hash(r, p) for r, p in zip(refs, preds, strict=True)]
    # The same score identity as the runner's (metric, version, canonical options, weights fingerprint).
    annotator, version = f"score:{metric.name}", metric.identity().key
    known: dict[str, Any] = store.get_annotations(annotator, version, keys) if store is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in known))
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        samples = [Sample(sample_id=k, task="pairs", image_paths=[], reference_text=refs[first[k]]) for k in chunk]
        scores = safe_score(metric, [Parsed(answer=preds[first[k]]) for k in chunk], samples)
        new = {k: {"value": s.value, "stats": s.stats} for k, s in zip(chunk, scores, strict=True)}
        known.update(new)
        if store is not None:  # errors are not cached: the next scoring tries them again
            store.put_annotations(annotator, version, {k: v for k, v in new.items() if "error" not in v["stats"]})
    return [known[k]["value"] for k in keys], [known[k]["stats"] for k in keys]


def score_reports(
    references: Sequence[str],
    predictions: Sequence[str],
    metrics: Sequence[str] | None = None,
    *,
    options: dict[str, dict[str, Any]] | None = None,
    db: str | Path | None = None,
    store: Any = None,
    profile: str | None = None,
) -> ReportScores:
    """Score report pairs with the field's metrics.

    Args:
        references: Reference reports.
        predictions: Generated reports, one per reference.
        metrics: Metric names (default: every report metric, see `DEFAULT_METRICS`); a model-backed metric
            whose weights are not available is listed in `unavailable` with the reason, never given a number.
        options: Per-metric options, e.g. `{"bertscore": {"model_path": "/models/distilbert"}}`.
        db: A DuckDB results file for the compute-once caches (annotations of texts and per-pair scores).
            Without it (and without `store`) caching lasts for the Python process only.
        store: An open `evalkit.store.Store`, instead of `db`.
        profile: A convention profile (evalkit/profiles.py): its pipeline's metrics become the default list (for
            `radvlm-grpo` the seed's report columns and ANC) and its metric options the defaults under `options`
            (e.g. RadGraph on every report, RadCliQ-v1 as the seed's worker). None: evalkit's own definitions.

    Returns:
        `ReportScores` with `.metrics` (corpus values), `.per_sample` (one dict per pair), `.unavailable`,
        and `.intervals()` for bootstrap CIs.
    """
    for what, given in (("references", references), ("predictions", predictions)):
        if isinstance(given, str | bytes):
            # A string is a sequence of characters: scored as-is it would be one "report" per character.
            raise EvalkitError(
                f"score_reports: {what} is a single string; pass a list of reports, e.g. [{given[:40]!r}]"
            )
    if len(references) != len(predictions):
        raise EvalkitError(f"{len(references)} references but {len(predictions)} predictions")
    refs = [clean_text(r) for r in references]
    preds = [clean_text(p) for p in predictions]
    chosen = get_profile(profile) if profile is not None else None
    defaults = (chosen.pipeline_metrics if chosen is not None else ()) or DEFAULT_METRICS
    names = list(dict.fromkeys(metrics or defaults))
    options = options or {}
    if chosen is not None:
        options = {name: chosen.options_for(name, options.get(name)) for name in {*names, *options}}
    own_store = None
    if store is None and db is not None:
        from evalkit.results.store import Store

        store = own_store = Store(db)
    try:
        corpus: dict[str, float] = {}
        per_sample: list[dict[str, float | None]] = [{} for _ in refs]
        stats: dict[str, list[dict[str, Any]]] = {}
        unavailable: dict[str, str] = {}
        instances: dict[str, Metric] = {}
        for name in names:
            metric = get_metric(name, **options.get(name, {}))
            if metric.kind != "report":
                raise EvalkitError(f"metric '{name}' scores {metric.kind} outputs, not reports")
            reason = metric.available()
            if reason:
                unavailable[name] = reason
                continue
            metric.cache = store
            values, metric_stats = _score_metric(metric, refs, preds, store)
            corpus[name] = float(metric.aggregate(values, metric_stats)) if refs else float("nan")
            stats[name], instances[name] = metric_stats, metric
            for row, value in zip(per_sample, values, strict=True):
                row[name] = value
        return ReportScores(corpus, per_sample, stats, unavailable, instances)
    finally:
        if own_store is not None:
            own_store.close()


def read_pairs(path: Path) -> tuple[list[str], list[str]]:
    """`{"reference": ..., "prediction": ...}` per line; errors name the file and line (evalkit.readers).

    Bytes that are not UTF-8 are replaced (U+FFFD) rather than refused: a scorer must not die on one bad line.
    """
    from evalkit.readers import read_pairs_file

    return read_pairs_file(path)
