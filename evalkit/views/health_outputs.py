"""RL-health rows that compare a run's stored outputs with another run's or with its own decoding settings, so they
cannot be metrics (a metric sees one answer and its sample):

- `template_share`: answers identical (whitespace-normalised) to the `normal-template` baseline's answer to the same
  sample, when that baseline ran the task (report tasks): template collapse onto the "always normal" report;
- `prior_box_share`: answers with a box of IoU >= 0.9 with a box of the `prior-box` baseline's answer to the same
  sample (grounding tasks): boxes that ignore the image and return the data set's prior;
- `token_limit_share`: answers whose generation used the whole `max_new_tokens` budget (cut by the limit), for
  runs that recorded token counts.

Each is a per-sample 0/1 value over the run's samples, resampled by the task's clusters and paired with the parent
exactly as the stored diagnostics are (a mean: `StoredMean`).
"""

from __future__ import annotations

from typing import Any

from evalkit.errors import EvalkitError
from evalkit.metrics.grounding import iou_matrix
from evalkit.results.aggregates import StoredMean
from evalkit.results.health_queries import run_outputs
from evalkit.results.queries import task_spec
from evalkit.results.scores import find_run, load_clustering
from evalkit.results.store import Store, loads
from evalkit.stats import Comparison, Interval, MetricScores, compare_paired, intervals, pair_scores

PRIOR_IOU = 0.9


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


def _baseline(store: Store, task: str, model: str, run: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    if run["model"] == model:
        return None
    try:
        return run_outputs(store, find_run(store, task, model)["run_id"])
    except EvalkitError:
        return None


def output_values(store: Store, task: str, run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{diagnostic: {sample_id: 0/1}} for the diagnostics this run's task and the store allow."""
    outputs = {sid: o for sid, o in run_outputs(store, run["run_id"]).items() if o["error"] is None}
    kind = task_spec(run).get("kind")
    out: dict[str, dict[str, float]] = {}
    if kind != "grounding":
        template = _baseline(store, task, "normal-template", run)
        if template:
            out["template_share"] = {
                sid: float(_norm(o["parsed"].get("answer")) == _norm(template[sid]["parsed"].get("answer")))
                for sid, o in outputs.items()
                if sid in template
            }
    else:
        prior = _baseline(store, task, "prior-box", run)
        if prior:
            values = {}
            for sid, o in outputs.items():
                if sid not in prior:
                    continue
                mine, theirs = o["parsed"].get("boxes") or [], prior[sid]["parsed"].get("boxes") or []
                hit = bool(mine and theirs) and float(iou_matrix(mine, theirs).max()) >= PRIOR_IOU
                values[sid] = float(hit)
            out["prior_box_share"] = values
    limit = (loads(run.get("decoding"), {}) or {}).get("max_new_tokens")
    counted = {sid: o["tokens"] for sid, o in outputs.items() if o["tokens"]}
    if limit and counted:
        out["token_limit_share"] = {sid: float(o["tokens"] is not None and o["tokens"] >= limit)
                                    for sid, o in outputs.items()}  # fmt: skip
    return {name: values for name, values in out.items() if values}


def _scores(values: dict[str, dict[str, float]]) -> dict[str, MetricScores]:
    out = {}
    for name, by_sample in values.items():
        ids = sorted(by_sample)
        out[name] = MetricScores(name, ids, [by_sample[i] for i in ids], [{} for _ in ids])
    return out


def output_diagnostics(
    store: Store,
    task: str,
    run: dict[str, Any],
    base: dict[str, Any] | None,
    *,
    n_boot: int,
    seed: int,
    cluster: str,
    level: float,
) -> tuple[dict[str, Interval], dict[str, Comparison]]:
    """CIs of the run's output diagnostics and, with a parent run, their paired comparisons."""
    scores = _scores(output_values(store, task, run))
    if not scores:
        return {}, {}
    metrics = {name: StoredMean(name, higher_is_better=False) for name in scores}
    clustering = load_clustering(store, task, cluster)
    cis = intervals(scores, metrics, n_boot=n_boot, seed=seed, level=level, clustering=clustering)
    comparisons: dict[str, Comparison] = {}
    if base is not None:
        parent = _scores(output_values(store, task, base))
        names = [n for n in scores if n in parent]
        pairs = [p for p in pair_scores(scores, parent, metrics, names, clustering) if p.sample_ids]
        if pairs:
            found = compare_paired(pairs, n_boot=n_boot, n_perm=0, seed=seed, level=level)
            comparisons = {c.metric: c for c in found}
    return cis, comparisons
