"""Bootstrap CIs computed once per (run, metric, resamples, seed, level, cluster choice), kept in `intervals`.

A run's CIs depend only on its stored scores, so re-bootstrapping them on every `leaderboard` or `site build` is
wasted work (a 20-model x 4-task leaderboard spent half a minute on it even without COCO AP). The runner stores
them when a run finishes, `merge` recomputes them for runs that received samples; readers take a stored
interval when it still describes the stored aggregate (same score identity and sample count as `run_metrics`)
and compute, without storing, only what is missing (a read-only store, an older file, other settings).
Paired statistics (`compare`, `gate`, the site's "vs leader") depend on two runs and are computed on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.results.queries import (
    current_intervals,
    current_intervals_of,
    interval_settings,
    run_metrics,
    run_metrics_of,
    stored_run,
)
from evalkit.results.scores import run_intervals
from evalkit.results.store import Store
from evalkit.results.writes import drop_intervals
from evalkit.stats import DEFAULT_LEVEL, DISPLAY_MAX_GENERIC, Interval

# Resamples behind the CIs that leaderboard and site show (and that a finished run stores).
DISPLAY_N_BOOT = 2000
COLUMNS = (
    "run_id",
    "metric",
    "score_key",
    "n_boot",
    "seed",
    "level",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "n_boot_used",
    "vectorised",
    "cluster",
    "unit",
    "n_clusters",
)


def store_run_cis(
    store: Store,
    run: dict[str, Any],
    *,
    n_boot: int = DISPLAY_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    cluster: str = "auto",
    only_missing: bool = False,
) -> dict[str, Interval]:
    """Compute a run's CIs (every stored metric) and replace what the table held for these settings.

    `only_missing`: keep the stored intervals that still match the aggregates and compute only the others (a
    fully cached rerun; nothing at all when every one is stored)."""
    with store.transaction():
        if not only_missing:
            return _compute_and_write(store, run, n_boot, seed, level, cluster)
        stored, missing = _stored_and_missing(store, run["run_id"], n_boot, seed, level, cluster)
        if missing:
            stored.update(_compute_and_write(store, run, n_boot, seed, level, cluster, missing))
        return stored


def _compute_and_write(
    store: Store,
    run: dict[str, Any],
    n_boot: int,
    seed: int,
    level: float,
    cluster: str,
    metrics: Sequence[str] | None = None,
) -> dict[str, Interval]:
    bounds = _compute(store, run, metrics, n_boot, seed, level, cluster)
    keys = {row["metric"]: row["score_key"] for row in run_metrics(store, run["run_id"])}
    drop_intervals(store, run["run_id"], n_boot, seed, level, cluster, metrics)
    rows = [
        [run["run_id"], name, keys.get(name), n_boot, seed, level, b.value, b.ci_low, b.ci_high, b.n, b.n_boot]
        for name, b in bounds.items()
    ]
    store.insert_rows(
        "intervals",
        COLUMNS,
        [[*row, b.vectorised, cluster, b.unit, b.n_clusters] for row, b in zip(rows, bounds.values(), strict=True)],
    )
    return bounds


def run_cis(
    store: Store,
    run: dict[str, Any],
    *,
    n_boot: int = DISPLAY_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    cluster: str = "auto",
) -> dict[str, Interval]:
    """A run's CIs: the stored ones that match its aggregates, the missing ones computed now (not stored)."""
    stored, missing = _stored_and_missing(store, run["run_id"], n_boot, seed, level, cluster)
    if missing:
        stored.update(_compute(store, run, missing, n_boot, seed, level, cluster))
    return stored


def runs_cis(
    store: Store,
    runs: Sequence[dict[str, Any]],
    *,
    n_boot: int = DISPLAY_N_BOOT,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
    cluster: str = "auto",
    metrics_of: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, dict[str, Interval]]:
    """`run_cis` of many runs (run id -> CIs), their stored intervals and metric rows read in one query each (a
    leaderboard of 240 runs made 480 queries). `metrics_of`: the runs' `run_metrics_of`, when the caller has it."""
    run_ids = [r["run_id"] for r in runs]
    try:
        rows = current_intervals_of(store, run_ids, n_boot, seed, level, cluster)
    except (duckdb.CatalogException, duckdb.BinderException):
        rows = {run_id: [] for run_id in run_ids}  # a file written before the table (or its columns) existed
    metrics_of = metrics_of if metrics_of is not None else run_metrics_of(store, run_ids)
    out: dict[str, dict[str, Interval]] = {}
    for run in runs:
        stored = {r[0]: _interval(r) for r in rows[run["run_id"]]}
        missing = [r["metric"] for r in metrics_of[run["run_id"]] if r["status"] == "ok" and r["metric"] not in stored]
        if missing:
            stored.update(_compute(store, run, missing, n_boot, seed, level, cluster))
        out[run["run_id"]] = stored
    return out


def _compute(
    store: Store,
    run: dict[str, Any],
    metrics: Sequence[str] | None,
    n_boot: int,
    seed: int,
    level: float,
    cluster: str,
) -> dict[str, Interval]:
    return run_intervals(
        store, run, metrics, n_boot=n_boot, seed=seed, level=level, max_generic=DISPLAY_MAX_GENERIC, cluster=cluster
    )


def _stored_and_missing(
    store: Store, run_id: str, n_boot: int, seed: int, level: float, cluster: str
) -> tuple[dict[str, Interval], list[str]]:
    """The stored intervals that still match, and the scored metrics that have none."""
    stored = _stored(store, run_id, n_boot, seed, level, cluster)
    wanted = [r["metric"] for r in run_metrics(store, run_id) if r["status"] == "ok"]
    return stored, [m for m in wanted if m not in stored]


def _stored(store: Store, run_id: str, n_boot: int, seed: int, level: float, cluster: str) -> dict[str, Interval]:
    """Stored intervals that still describe the run's aggregate (same score identity and number of samples)."""
    try:
        rows = current_intervals(store, run_id, n_boot, seed, level, cluster)
    except (duckdb.CatalogException, duckdb.BinderException):
        return {}  # a file written before the table (or its columns) existed, opened read-only
    return {r[0]: _interval(r) for r in rows}


def _interval(r: tuple[Any, ...]) -> Interval:
    """An Interval from a `current_intervals` row."""
    return Interval(r[0], _nan(r[1]), _nan(r[2]), _nan(r[3]), r[4], r[5], r[6], bool(r[7]), r[8], r[9])


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def refresh(store: Store, run_ids: Sequence[str]) -> None:
    """Recompute the stored CIs of these runs at every setting the table holds for them, inside the caller's
    transaction (a merge)."""
    for run_id in run_ids:
        run = stored_run(store, run_id)
        settings = interval_settings(store, run_id) or [(DISPLAY_N_BOOT, 0, DEFAULT_LEVEL, "auto")]
        for n_boot, seed, level, cluster in settings:
            if run:
                try:
                    _compute_and_write(store, run, n_boot, seed, level, cluster)
                except EvalkitError:
                    pass  # left stale (their n no longer matches): readers compute and report it on demand
