"""A run's stored scores, ready to resample: the store-reading half of the statistics (the math is evalkit/stats.py,
which never opens a store).

`find_run` picks the run a model stands for; `load_run_scores` and `load_pairs` read per-sample scores under the
identity each aggregate was computed with; `run_intervals` and `compare_runs` hand them to evalkit.stats.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.metrics.base import Metric
from evalkit.results.aggregates import StoredMean, stored_metric
from evalkit.results.queries import (
    current_scores,
    display_runs,
    run_metrics,
    stored_run,
    stored_task_names,
    task_model_names,
)
from evalkit.results.store import Store
from evalkit.sample import UNITS
from evalkit.stats import (
    CLUSTER_CHOICES,
    DEFAULT_LEVEL,
    DEFAULT_N_BOOT,
    Clustering,
    Comparison,
    Interval,
    MetricScores,
    PairedData,
    compare_paired,
    intervals,
    pair_scores,
)


def stored_metrics(store: Store, run_id: str) -> dict[str, Metric]:
    """Every metric of a run, as `stored_metric` rebuilds it, in the task's order."""
    return {row["metric"]: stored_metric(row) for row in run_metrics(store, run_id)}


def load_clustering(store: Store, task: str, cluster: str = "auto") -> Clustering:
    """The resampling units of a task's stored samples; `cluster` picks one (`auto`: each sample's `cluster`)."""
    if cluster not in CLUSTER_CHOICES:
        raise EvalkitError(f"unknown --cluster '{cluster}'; use one of {', '.join(CLUSTER_CHOICES)}")
    if cluster == "none":
        return Clustering()
    stored = store.sample_units(task)
    if cluster == "auto":
        keys = {sid: key for sid, (key, _) in stored.items() if key}
        if not keys:
            return Clustering()  # written before clusters were stored: samples are the only unit known
        named = [u for u in UNITS if all(units.get(u) == key for key, units in stored.values() if key)]
        return Clustering(named[0] if named else "cluster", keys)
    keys = {sid: units[cluster] for sid, (_, units) in stored.items() if units.get(cluster)}
    if len(keys) < len(stored) or not stored:
        known = sorted({u for _, units in stored.values() for u in units}, key=UNITS.index)
        raise EvalkitError(
            f"task '{task}': {len(stored) - len(keys)} of {len(stored)} stored samples have no '{cluster}' key "
            f"(its samples record: {', '.join(known) or 'no unit; re-run the task to store them'}); "
            f"use --cluster {' | '.join([*known, 'none'])}"
        )
    return Clustering(cluster, keys)


def load_run_scores(store: Store, run_id: str, metrics: Sequence[str] | None = None) -> dict[str, MetricScores]:
    """Per-sample scores of a run under the identity its aggregate (`run_metrics`) was computed with: the same
    samples as the stored value, so a value and its CI never come from different samples."""
    return {
        name: MetricScores(name, ids, values, stats)
        for name, (ids, values, stats) in current_scores(store, run_id, metrics).items()
    }


def find_run(store: Store, task: str, model_or_run: str) -> dict[str, Any]:
    """A run by id, or the run the leaderboard shows for a model on a task (the latest full one, else the latest
    partial one); EvalkitError naming what exists otherwise."""
    run = stored_run(store, model_or_run, task)
    if run:
        return run
    rows = display_runs(store, task, model_or_run)
    if rows:
        return rows[0]
    tasks = stored_task_names(store)
    if task not in tasks:
        raise EvalkitError(f"{store.path}: no runs of task '{task}'; tasks with runs: {', '.join(tasks) or 'none'}")
    models = task_model_names(store, task)
    raise EvalkitError(
        f"{store.path}: no run of model (or run id) '{model_or_run}' on task '{task}'; models: {', '.join(models)}"
    )


def run_intervals(
    store: Store,
    run: dict[str, Any],
    metrics: Sequence[str] | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    max_generic: int | None = None,
    cluster: str = "auto",
) -> dict[str, Interval]:
    """CIs of every stored metric of a run (a `runs` row), resampling the `cluster` unit."""
    scores = load_run_scores(store, run["run_id"], metrics)
    stored = stored_metrics(store, run["run_id"])
    instances = {name: stored[name] for name in scores}
    clustering = load_clustering(store, run["task"], cluster)
    return intervals(
        scores, instances, n_boot=n_boot, seed=seed, level=level, max_generic=max_generic, clustering=clustering
    )


def compare_runs(
    store: Store,
    task: str,
    model_a: str,
    model_b: str,
    metrics: Sequence[str] | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    n_perm: int = DEFAULT_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    cluster: str = "auto",
) -> tuple[dict[str, Any], dict[str, Any], list[Comparison]]:
    """Compare the latest runs (or given run ids) of two models on a task. Returns (run A, run B, comparisons).

    Without `metrics`: every shared metric but the RL-health diagnostics, which would also join the Holm family and
    so move the adjusted p-values of the quality metrics (name them to compare them; `evalkit health` does)."""
    run_a, run_b = find_run(store, task, model_a), find_run(store, task, model_b)
    if run_a["run_id"] == run_b["run_id"]:
        raise EvalkitError(f"both sides name the same run ({run_a['run_id']}); compare two different models")
    paired = load_pairs(store, task, run_a, run_b, metrics, cluster, skip_diagnostics=not metrics)
    return run_a, run_b, compare_paired(paired, n_boot=n_boot, n_perm=n_perm, seed=seed, level=level)


def load_pairs(
    store: Store,
    task: str,
    run_a: dict[str, Any],
    run_b: dict[str, Any],
    metrics: Sequence[str] | None = None,
    cluster: str = "auto",
    *,
    skip_diagnostics: bool = False,
) -> list[PairedData]:
    """Shared-sample pairs of two runs, with the task's resampling units; EvalkitError when a named metric is
    missing or nothing is shared. `skip_diagnostics`: without `metrics`, leave the RL-health diagnostics out."""
    from evalkit.metrics import is_diagnostic

    order = stored_metrics(store, run_a["run_id"])
    wanted = metrics or ([n for n in order if not is_diagnostic(n)] if skip_diagnostics else None)
    scores_a = load_run_scores(store, run_a["run_id"], wanted)
    scores_b = load_run_scores(store, run_b["run_id"], wanted)
    names = list(metrics) if metrics else [n for n in (wanted or order) if n in scores_a and n in scores_b]
    for name in names:
        for run, scores in ((run_a, scores_a), (run_b, scores_b)):
            if name not in scores:
                raise EvalkitError(
                    f"metric '{name}' has no stored scores in run {run['run_id']} ({run['model']} on {task}); "
                    f"scored there: {', '.join(sorted(scores)) or 'nothing'}"
                )
    if not names:
        raise EvalkitError(f"runs {run_a['run_id']} and {run_b['run_id']} share no scored metric")
    instances = {name: order[name] if name in order else StoredMean(name) for name in names}
    paired = pair_scores(scores_a, scores_b, instances, names, load_clustering(store, task, cluster))
    if all(not p.sample_ids for p in paired):
        raise EvalkitError(
            f"runs {run_a['run_id']} ({run_a['model']}) and {run_b['run_id']} ({run_b['model']}) share no scored "
            "sample: paired statistics need the same samples"
        )
    return [p for p in paired if p.sample_ids]
