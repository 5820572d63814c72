"""Leaderboard rows from stored aggregates: the latest run per (task, model), with bootstrap 95% CIs."""

from __future__ import annotations

from typing import Any

from evalkit.metrics import all_metrics
from evalkit.registry import all_tasks
from evalkit.store import Store


def latest_runs(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The most recent run of each (task, model), finished or not (an unfinished one is flagged)."""
    where, params = [], []
    if task:
        where.append("task = ?")
        params.append(task)
    if model:
        where.append("model = ?")
        params.append(model)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return store.query(
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY task, model ORDER BY started_at DESC) AS rk "
        f"FROM runs {clause}) WHERE rk = 1 ORDER BY task, model",
        params,
    )


def leaderboard_rows(
    store: Store,
    task: str | None = None,
    model: str | None = None,
    *,
    ci: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str = "auto",
) -> list[dict[str, Any]]:
    """One row per (task, model, metric): value, n, direction, availability, whether it is the primary metric.

    With `ci`, `ci_low`/`ci_high` are percentile-bootstrap 95% bounds from the stored per-sample scores
    (evalkit.stats; corpus metrics re-aggregated per resample, those without a vectorised path on the first
    500 resamples); None where a metric has no stored scores. `ci_unit` says what they resampled
    ("by patient (212 clusters)"); `cluster` picks the unit (evalkit.stats.load_clustering).
    """
    from evalkit.stats import DISPLAY_MAX_GENERIC, run_intervals, unit_text

    metrics = all_metrics()
    tasks = all_tasks()
    rows: list[dict[str, Any]] = []
    for run in latest_runs(store, task, model):
        spec = tasks.get(run["task"])
        order = spec.metric_names if spec else []
        stored = {m["metric"]: m for m in store.query("SELECT * FROM run_metrics WHERE run_id = ?", [run["run_id"]])}
        names = [n for n in order if n in stored] + sorted(n for n in stored if n not in order)
        bounds = (
            run_intervals(store, run, n_boot=n_boot, seed=seed, max_generic=DISPLAY_MAX_GENERIC, cluster=cluster)
            if ci
            else {}
        )
        for name in names:
            m = stored[name]
            cls = metrics.get(name)
            rows.append(
                {
                    "task": run["task"],
                    "model": run["model"],
                    "metric": name,
                    "value": m["value"],
                    "n": m["n"],
                    "ci_low": _finite(bounds[name].ci_low) if name in bounds else None,
                    "ci_high": _finite(bounds[name].ci_high) if name in bounds else None,
                    "ci_unit": unit_text(bounds[name].unit, bounds[name].n_clusters) if name in bounds else None,
                    "higher_is_better": cls.higher_is_better if cls else True,
                    "status": m["status"],
                    "reason": m["reason"],
                    "primary": bool(spec and spec.primary_metric == name),
                    "run_id": run["run_id"],
                    "run_status": run["status"],
                }
            )
    return rows


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None
