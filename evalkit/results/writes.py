"""Every change to stored results outside a merge: the runner's scores and aggregates, the stored CIs. Writers
call these (inside their own transaction where they hold one) so that the SQL stays in this package."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.results.store import Store


def drop_scores(con: Any, run_id: str, sample_ids: Sequence[str]) -> None:
    """Remove the scores of these samples of a run (their generations were just replaced)."""
    con.execute(
        "DELETE FROM scores WHERE run_id = ? AND list_contains(?::VARCHAR[], sample_id)", [run_id, list(sample_ids)]
    )


def drop_other_metrics(con: Any, run_id: str, metric_names: Sequence[str]) -> None:
    """Remove a run's aggregate rows of metrics the task no longer lists."""
    con.execute(
        "DELETE FROM run_metrics WHERE run_id = ? AND NOT list_contains(?::VARCHAR[], metric)",
        [run_id, list(metric_names)],
    )


def set_metric_aggregate(
    con: Any, run_id: str, metric: str, value: float | None, n: int, n_errored: int | None = None
) -> None:
    """Write a metric's aggregate over a run's current scores (`n_errored` None: keep the stored count, as a
    merge does, which re-aggregates without knowing the failed generations)."""
    if n_errored is None:
        con.execute(
            "UPDATE run_metrics SET value = ?, n = ? WHERE run_id = ? AND metric = ?", [value, n, run_id, metric]
        )
        return
    con.execute(
        "UPDATE run_metrics SET value = ?, n = ?, n_errored = ? WHERE run_id = ? AND metric = ?",
        [value, n, n_errored, run_id, metric],
    )


def drop_intervals(
    store: Store, run_id: str, n_boot: int, seed: int, level: float, cluster: str, metrics: Sequence[str] | None
) -> None:
    """Remove a run's stored intervals at one setting (of these metrics; every metric when None)."""
    store.con.execute(
        "DELETE FROM intervals WHERE run_id = ? AND n_boot = ? AND seed = ? AND level = ? AND cluster = ? "
        "AND (?::VARCHAR[] IS NULL OR list_contains(?::VARCHAR[], metric))",
        [run_id, n_boot, seed, level, cluster, metrics, metrics],
    )
