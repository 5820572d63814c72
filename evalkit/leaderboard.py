"""Leaderboard rows from stored aggregates: per (task, model) the run `display_runs` picks, with bootstrap 95% CIs.

Everything shown comes from the database (what each run stored: direction, primary metric, n, task size,
failed samples), so an old file renders the same after task YAML files change or disappear.
"""

from __future__ import annotations

from typing import Any

from evalkit.results.queries import display_runs, failure_counts, run_metrics
from evalkit.results.store import Store, loads


def latest_runs(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The run shown for each (task, model): the latest full run, else the latest partial one (flagged)."""
    return display_runs(store, task, model)


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
    """One row per (task, model, metric): value, n, task size, direction, availability, primary flag, whether
    the run is partial and how many of its samples failed.

    `reference` is the label of a reference row (a card with `reference`, e.g. inter-reader agreement), which
    tables show apart from the ranked models; None for a model.

    With `ci`, `ci_low`/`ci_high` are percentile-bootstrap 95% bounds from the stored per-sample scores under
    the same identity and on the same samples as the value (evalkit.stats; corpus metrics re-aggregated per
    resample, those without a vectorised path on the first 500 resamples); None where a metric has no scores.
    `ci_unit` says what they resampled ("by patient (212 clusters)"); `cluster` picks the unit
    (evalkit.stats.load_clustering).
    """
    from evalkit.stats import DISPLAY_MAX_GENERIC, run_intervals, unit_text

    rows: list[dict[str, Any]] = []
    runs = latest_runs(store, task, model)
    failures = failure_counts(store, [r["run_id"] for r in runs])
    for run in runs:
        reference = reference_label(run)
        bounds = (
            run_intervals(store, run, n_boot=n_boot, seed=seed, max_generic=DISPLAY_MAX_GENERIC, cluster=cluster)
            if ci
            else {}
        )
        for m in run_metrics(store, run["run_id"]):
            name = m["metric"]
            rows.append(
                {
                    "task": run["task"],
                    "model": run["model"],
                    "metric": name,
                    "value": m["value"],
                    "n": m["n"],
                    "task_size": run["task_size"],
                    "partial": run["partial"],
                    "failed_samples": failures[run["run_id"]],
                    "errored_samples": m["errored"],  # how they count: zero (in n, as empty answers) or exclude
                    "ci_low": _finite(bounds[name].ci_low) if name in bounds else None,
                    "ci_high": _finite(bounds[name].ci_high) if name in bounds else None,
                    "ci_unit": unit_text(bounds[name].unit, bounds[name].n_clusters) if name in bounds else None,
                    "higher_is_better": m["higher_is_better"],
                    "status": m["status"],
                    "reason": m["reason"],
                    "primary": m["is_primary"],
                    "run_id": run["run_id"],
                    "run_status": run["status"],
                    "reference": reference,
                }
            )
    return rows


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def reference_label(run: dict[str, Any]) -> str | None:
    """The stored card's `reference` label: a reference row (e.g. radiologists), not a model to rank."""
    card = loads(run.get("card"), {}) or {}
    label = card.get("reference") if isinstance(card, dict) else None
    return str(label) if label else None
