"""A task's per-sample scores for the site build, read once for all its runs and decoded once.

The pairwise map (the primary metric) and the IoU histogram (`miou`) each read every run's scores with their
statistics JSON; reading them per run and per view made one query per (run, view) and decoded the same JSON again
for each view. Here one query per task reads the metrics the views need for every run, and each row's statistics
are decoded once, whichever views use them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from evalkit.results.queries import task_score_rows
from evalkit.results.store import Store
from evalkit.stats import MetricScores


def task_scores(
    store: Store, run_ids: Sequence[str], metrics: Sequence[str], without_stats: Sequence[str] = ()
) -> dict[str, dict[str, MetricScores]]:
    """run id -> metric -> its current scores (as `stats.load_run_scores` returns them), for every run at once.

    A metric a run holds no current score of is absent from that run's dict, as in `load_run_scores`. Metrics in
    `without_stats` get empty statistics ({} per sample), neither read nor decoded: for a caller that needs only
    their values (a plain mean re-aggregates from values alone, `stats.StoredMean`).
    """
    out: dict[str, dict[str, MetricScores]] = {run_id: {} for run_id in run_ids}
    rows = task_score_rows(store, run_ids, sorted(set(metrics)), without_stats)
    # One decoder call for every row's statistics (a NULL column reads as {}, as `loads(stats, {})` has it).
    decoded = json.loads("[" + ",".join("{}" if r[4] is None else r[4] for r in rows) + "]") if rows else []
    key, current = None, MetricScores("", [], [], [])
    # Rows come ordered by run, metric and sample id: each (run, metric) is one stretch of rows.
    for (run_id, metric, sample_id, value, _), stats in zip(rows, decoded, strict=True):
        if (run_id, metric) != key:
            key, current = (run_id, metric), MetricScores(metric, [], [], [])
            out[run_id][metric] = current
        current.sample_ids.append(sample_id)
        current.values.append(value)
        current.stats.append(stats)
    return out
