"""Every read of past results: which run a leaderboard shows, a run's metrics as stored, its current scores,
its failed samples. Readers (leaderboard, stats, gate, site, export, merge) use these and nothing else, so a
database renders from what it holds, never from today's task YAML or metric classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evalkit.results.store import Store, loads

# A run's current scores of a metric: the identity its aggregate was computed with, on samples the run
# generated, without errored samples where the task leaves them out. Values and CIs both come from these rows.
# CURRENT_SCORES is for one run (`?` = its run_id); CURRENT_SCORES_OF for a list of runs (`?` = the run ids).
_CURRENT = """
    FROM scores s
    JOIN run_metrics m ON m.run_id = s.run_id AND m.metric = s.metric AND m.score_key = s.score_key
    JOIN generations g ON g.run_id = s.run_id AND g.sample_id = s.sample_id
    WHERE {runs} AND (m.errored IS DISTINCT FROM 'exclude' OR g.error IS NULL)
"""
CURRENT_SCORES = _CURRENT.format(runs="s.run_id = ?")
CURRENT_SCORES_OF = _CURRENT.format(runs="list_contains(?::VARCHAR[], s.run_id)")


def display_runs(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """Per (task, model, profile), the run a leaderboard shows: the latest run holding every sample of the task,
    else the latest partial run. A limited or partial run never stands in for a full one. Adds `partial` to each
    row. `profile` is NULL for runs under their task's own profile, so a `--profile` run is a row of its own."""
    where, params = [], []
    if task:
        where.append("task = ?")
        params.append(task)
    if model:
        where.append("model = ?")
        params.append(model)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = store.query(
        "SELECT * FROM (SELECT *, coalesce(n_samples, 0) < coalesce(task_size, 0) AS partial, row_number() OVER ("
        "PARTITION BY task, model, profile "
        "ORDER BY coalesce(n_samples, 0) < coalesce(task_size, 0), started_at DESC) AS rk "
        f"FROM runs {clause}) WHERE rk = 1 ORDER BY task, model, profile NULLS FIRST",
        params,
    )
    for row in rows:
        row["partial"] = bool(row["partial"])
        row.pop("rk", None)
    return rows


def task_spec(run: dict[str, Any]) -> dict[str, Any]:
    """The task spec a run stored (a dict; empty for a migrated run whose YAML version was not found)."""
    return loads(run.get("task_spec"), {}) or {}


def run_metrics(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A run's metrics as stored: value, n, identity, direction, primary flag; primary first, then task order."""
    rows = store.query(
        "SELECT * FROM run_metrics WHERE run_id = ? ORDER BY is_primary DESC NULLS LAST, position NULLS LAST, metric",
        [run_id],
    )
    for row in rows:
        row["options"] = loads(row["options"], {}) or {}
        row["higher_is_better"] = True if row["higher_is_better"] is None else bool(row["higher_is_better"])
        row["is_primary"] = bool(row["is_primary"])
    return rows


def current_scores(
    store: Store, run_id: str, metrics: Sequence[str] | None = None
) -> dict[str, tuple[list[str], list[float | None], list[dict[str, Any]]]]:
    """Per metric: (sample ids, values, stats) of the run's current scores, ordered by sample id."""
    # The metric filter runs in DuckDB: a caller asking for one metric must not fetch and parse all of them.
    extra, params = (
        ("AND list_contains(?::VARCHAR[], s.metric)", [run_id, list(metrics)])
        if metrics is not None
        else ("", [run_id])
    )
    rows = store.con.execute(
        f"SELECT s.metric, s.sample_id, s.value, s.stats {CURRENT_SCORES} {extra} ORDER BY s.metric, s.sample_id",
        params,
    ).fetchall()
    out: dict[str, tuple[list[str], list[float | None], list[dict[str, Any]]]] = {}
    for metric, sample_id, value, stats in rows:
        ids, values, all_stats = out.setdefault(metric, ([], [], []))
        ids.append(sample_id)
        values.append(value)
        all_stats.append(loads(stats, {}))
    return out


def sample_values(store: Store, run_id: str, metric: str | None = None) -> list[tuple[str, str, float | None]]:
    """(sample id, metric, value) of the run's current scores, for per-sample views and exports."""
    extra, params = ("AND s.metric = ?", [run_id, metric]) if metric else ("", [run_id])
    return store.con.execute(
        f"SELECT s.sample_id, s.metric, s.value {CURRENT_SCORES} {extra} ORDER BY s.sample_id, s.metric", params
    ).fetchall()


def failed_samples(store: Store, run_id: str) -> list[dict[str, Any]]:
    """Every sample of a run that failed: generation (unreadable image, adapter error) or a metric, with why."""
    return store.query(
        "SELECT sample_id, 'generation' AS stage, error AS reason, error_file AS file FROM generations "
        "WHERE run_id = ? AND error IS NOT NULL "
        "UNION ALL SELECT s.sample_id, 'metric ' || s.metric AS stage, "
        "json_extract_string(s.stats, '$.error') AS reason, "
        f"NULL AS file {CURRENT_SCORES} AND json_extract_string(s.stats, '$.error') IS NOT NULL "
        "ORDER BY sample_id, stage",
        [run_id, run_id],
    )


def failure_counts(store: Store, run_ids: Sequence[str]) -> dict[str, int]:
    """Failed samples per run (distinct sample ids over generation and metric failures, as `failed_samples`),
    in one query for all runs: a leaderboard asks for every run it shows."""
    rows = store.con.execute(
        "SELECT run_id, count(DISTINCT sample_id) FROM ("
        "SELECT run_id, sample_id FROM generations WHERE list_contains(?::VARCHAR[], run_id) AND error IS NOT NULL "
        f"UNION ALL SELECT s.run_id, s.sample_id {CURRENT_SCORES_OF} "
        "AND json_extract_string(s.stats, '$.error') IS NOT NULL) GROUP BY run_id",
        [list(run_ids), list(run_ids)],
    ).fetchall()
    counts = dict(rows)
    return {run_id: int(counts.get(run_id, 0)) for run_id in run_ids}


def run_model_name(store: Store, run_id: str) -> str | None:
    """The model name a stored run was made under (None: no such run)."""
    rows = store.con.execute("SELECT model FROM runs WHERE run_id = ?", [run_id]).fetchall()
    return rows[0][0] if rows else None


def parse_failure_counts(store: Store, run_ids: Sequence[str]) -> dict[str, int]:
    """Answers per run that the parser could not read (generated without error, parse_error set): they score as
    empty answers, so a run of 0.0000 everywhere says why wherever its numbers are shown."""
    rows = store.con.execute(
        "SELECT run_id, count(*) FROM generations WHERE list_contains(?::VARCHAR[], run_id) AND error IS NULL "
        "AND json_extract_string(parsed, '$.parse_error') IS NOT NULL GROUP BY run_id",
        [list(run_ids)],
    ).fetchall()
    counts = dict(rows)
    return {run_id: int(counts.get(run_id, 0)) for run_id in run_ids}


def stored_task_names(store: Store) -> list[str]:
    """Every task the file holds a run of."""
    return [r[0] for r in store.con.execute("SELECT DISTINCT task FROM runs ORDER BY task").fetchall()]


def stored_model_names(store: Store) -> list[str]:
    """Every model name the file holds a run of."""
    return [r[0] for r in store.con.execute("SELECT DISTINCT model FROM runs ORDER BY model").fetchall()]


def run_counts(store: Store) -> tuple[int, int]:
    """(runs stored, samples they hold): what an interrupted multi-run command can say it kept."""
    row = store.con.execute("SELECT count(*), coalesce(sum(n_samples), 0) FROM runs").fetchall()[0]
    return int(row[0]), int(row[1])


def count_run_samples(con: Any, run_id: str) -> None:
    """Set a run's n_samples to the generations it holds: merged shards of one run make it whole (not partial)."""
    con.execute(
        "UPDATE runs SET n_samples = (SELECT count(*) FROM generations g WHERE g.run_id = ?) WHERE run_id = ?",
        [run_id, run_id],
    )
