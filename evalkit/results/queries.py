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
# A score whose metric failed on its sample (stats hold "error"). The substring test comes first: it is a cheap
# necessary condition (stats are written by json.dumps, keys unescaped), so the JSON is parsed only where it holds.
_SCORE_ERROR = "contains(s.stats, '\"error\"') AND json_extract_string(s.stats, '$.error') IS NOT NULL"
# An answer the parser could not read (parsed holds "parse_error"), with the same cheap test first.
_PARSE_ERROR = "contains(parsed, '\"parse_error\"') AND json_extract_string(parsed, '$.parse_error') IS NOT NULL"


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
        f"NULL AS file {CURRENT_SCORES} AND {_SCORE_ERROR} "
        "ORDER BY sample_id, stage",
        [run_id, run_id],
    )


def failure_counts(store: Store, run_ids: Sequence[str]) -> dict[str, int]:
    """Failed samples per run (distinct sample ids over generation and metric failures, as `failed_samples`),
    in one query for all runs: a leaderboard asks for every run it shows."""
    # A failed score has no value (metrics.base.safe_score): only value-less scores' stats are searched, before the
    # joins that make them current (at 60 models x 4 tasks the stats text is GBs; this keeps the scan off it).
    failed = (
        "SELECT run_id, metric, score_key, sample_id FROM scores s WHERE list_contains(?::VARCHAR[], s.run_id) "
        f"AND s.value IS NULL AND {_SCORE_ERROR}"
    )
    current_failed = _CURRENT.replace("FROM scores s", f"FROM ({failed}) s", 1).format(runs="TRUE")
    rows = store.con.execute(
        "SELECT run_id, count(DISTINCT sample_id) FROM ("
        "SELECT run_id, sample_id FROM generations WHERE list_contains(?::VARCHAR[], run_id) AND error IS NOT NULL "
        f"UNION ALL SELECT s.run_id, s.sample_id {current_failed}) GROUP BY run_id",
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
        f"AND {_PARSE_ERROR} GROUP BY run_id",
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


# --- reads of the readers outside this package (stats, gate, site, export, stored CIs, the runner) -------------
def stored_run(store: Store, run_id: str, task: str | None = None) -> dict[str, Any] | None:
    """The run with this id (on this task, when given), or None."""
    if task is None:
        rows = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    else:
        rows = store.query("SELECT * FROM runs WHERE run_id = ? AND task = ?", [run_id, task])
    return rows[0] if rows else None


def task_model_names(store: Store, task: str) -> list[str]:
    """Every model name the file holds a run of on `task`, sorted."""
    return [r["model"] for r in store.query("SELECT DISTINCT model FROM runs WHERE task = ? ORDER BY 1", [task])]


def task_run_ids(store: Store, task: str) -> list[str]:
    """Every run id of `task`."""
    return [r["run_id"] for r in store.query("SELECT run_id FROM runs WHERE task = ?", [task])]


def run_outputs(store: Store, run_id: str, task: str) -> list[dict[str, Any]]:
    """A run's generations in sample order, each with its sample's references (export)."""
    return store.query(
        "SELECT g.sample_id, g.text, g.parsed, g.error, g.error_file, s.reference_text, s.reference_boxes "
        "FROM generations g LEFT JOIN samples s ON s.task = ? AND s.sample_id = g.sample_id "
        "WHERE g.run_id = ? ORDER BY g.sample_id",
        [task, run_id],
    )


def generated_sample_ids(store: Store, run_ids: Sequence[str]) -> list[str]:
    """Sample ids that any of these runs generated, sorted."""
    return [
        r[0]
        for r in store.con.execute(
            "SELECT DISTINCT sample_id FROM generations WHERE run_id IN (SELECT unnest(?)) ORDER BY 1", [run_ids]
        ).fetchall()
    ]


def run_generation_rows(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """(sample_id, text, parsed, error) of each generation of a run, in storage order."""
    return store.con.execute(
        "SELECT sample_id, text, parsed, error FROM generations WHERE run_id = ?", [run_id]
    ).fetchall()


def task_sample_rows(store: Store, task: str) -> list[tuple[Any, ...]]:
    """(sample_id, image_paths, prompt_vars, reference_text, reference_boxes, reference_labels) of a task."""
    return store.con.execute(
        "SELECT sample_id, image_paths, prompt_vars, reference_text, reference_boxes, reference_labels "
        "FROM samples WHERE task = ?",
        [task],
    ).fetchall()


def current_intervals(
    store: Store, run_id: str, n_boot: int, seed: int, level: float, cluster: str
) -> list[tuple[Any, ...]]:
    """Stored intervals of a run at one setting that still describe its aggregate (same score identity and n):
    (metric, value, ci_low, ci_high, n, level, n_boot_used, vectorised, unit, n_clusters)."""
    return store.con.execute(
        "SELECT i.metric, i.value, i.ci_low, i.ci_high, i.n, i.level, i.n_boot_used, i.vectorised, i.unit, "
        "i.n_clusters "
        "FROM intervals i JOIN run_metrics m ON m.run_id = i.run_id AND m.metric = i.metric "
        "WHERE i.run_id = ? AND i.n_boot = ? AND i.seed = ? AND i.level = ? AND i.cluster = ? "
        "AND i.score_key IS NOT DISTINCT FROM m.score_key AND i.n = m.n",
        [run_id, n_boot, seed, level, cluster],
    ).fetchall()


def interval_settings(store: Store, run_id: str) -> list[tuple[Any, ...]]:
    """(n_boot, seed, level, cluster) of every setting the intervals table holds for a run."""
    return store.con.execute(
        "SELECT DISTINCT n_boot, seed, level, cluster FROM intervals WHERE run_id = ?", [run_id]
    ).fetchall()


def unscored_generations(
    store: Store, run_id: str, skip_errored: bool, metric: str, score_key: str
) -> list[tuple[str, Any]]:
    """(sample_id, parsed) of a run's generations that hold no score of this metric under this key, in sample
    order (errored generations left out when `skip_errored`)."""
    return store.con.execute(
        "SELECT g.sample_id, g.parsed FROM generations g WHERE g.run_id = ? AND (NOT ? OR g.error IS NULL) "
        "AND NOT EXISTS (SELECT 1 FROM scores s WHERE s.run_id = g.run_id AND s.sample_id = g.sample_id "
        "AND s.metric = ? AND s.score_key = ?) ORDER BY g.sample_id",
        [run_id, skip_errored, metric, score_key],
    ).fetchall()


def generation_count(store: Store, run_id: str, skip_errored: bool) -> int:
    """Generations of a run (errored ones left out when `skip_errored`)."""
    return store.con.execute(
        "SELECT count(*) FROM generations WHERE run_id = ? AND (NOT ? OR error IS NULL)", [run_id, skip_errored]
    ).fetchall()[0][0]


def score_counts(store: Store, run_id: str, skip_errored: bool) -> list[tuple[str, str, int]]:
    """(metric, score_key, scored generations) of a run (errored generations left out when `skip_errored`)."""
    return store.con.execute(
        "SELECT s.metric, s.score_key, count(*) FROM scores s JOIN generations g "
        "ON g.run_id = s.run_id AND g.sample_id = s.sample_id "
        "WHERE s.run_id = ? AND (NOT ? OR g.error IS NULL) GROUP BY s.metric, s.score_key",
        [run_id, skip_errored],
    ).fetchall()


def failed_generation_count(con: Any, run_id: str) -> int:
    """Generations of a run that failed (error set)."""
    return con.execute("SELECT count(*) FROM generations WHERE run_id = ? AND error IS NOT NULL", [run_id]).fetchall()[
        0
    ][0]


def ok_run_metrics(con: Any, run_id: str) -> list[dict[str, Any]]:
    """The metrics of a run that scored (`status = 'ok'`): name, options (decoded) and direction, enough to rebuild
    each one (evalkit.results.aggregates.stored_metric)."""
    cursor = con.execute(
        "SELECT metric, options, higher_is_better FROM run_metrics WHERE run_id = ? AND status = 'ok'", [run_id]
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["options"] = loads(row["options"], {}) or {}
    return rows


def current_score_rows(con: Any, run_id: str, metric: str) -> list[tuple[Any, Any]]:
    """(value, stats) of a run's current scores of a metric, in sample order (a resumed run sums in the same order
    as an uninterrupted one)."""
    return con.execute(
        f"SELECT s.value, s.stats {CURRENT_SCORES} AND s.metric = ? ORDER BY s.sample_id", [run_id, metric]
    ).fetchall()


def current_score_counts(store: Store, run_id: str) -> dict[str, int]:
    """Current scores per metric of a run."""
    return dict(store.con.execute(f"SELECT s.metric, count(*) {CURRENT_SCORES} GROUP BY s.metric", [run_id]).fetchall())


def stored_metric_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A run's run_metrics rows as stored, in storage order."""
    return store.query("SELECT * FROM run_metrics WHERE run_id = ?", [run_id])


def generation_failure_counts(store: Store, run_id: str) -> tuple[int, int]:
    """(failed generations, answers the parser could not read among the others) of a run."""
    row = store.con.execute(
        "SELECT count(*) FILTER (WHERE error IS NOT NULL), "
        "count(*) FILTER (WHERE json_extract_string(parsed, '$.parse_error') IS NOT NULL AND error IS NULL) "
        "FROM generations WHERE run_id = ?",
        [run_id],
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def held_sample_count(store: Store, run_id: str, sample_ids: Sequence[str]) -> int:
    """Generations a run holds among these samples (generated, failed or not)."""
    return int(
        store.con.execute(
            "SELECT count(*) FROM generations WHERE run_id = ? AND list_contains(?::VARCHAR[], sample_id)",
            [run_id, list(sample_ids)],
        ).fetchall()[0][0]
    )


# --- batched reads of many runs (leaderboard and site build read every run of a store at once) ------------------
def run_metrics_of(store: Store, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`run_metrics` of several runs in one query: run id -> its rows, in `run_metrics`' order."""
    rows = store.query(
        "SELECT * FROM run_metrics WHERE list_contains(?::VARCHAR[], run_id) "
        "ORDER BY run_id, is_primary DESC NULLS LAST, position NULLS LAST, metric",
        [list(run_ids)],
    )
    out: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    for row in rows:
        row["options"] = loads(row["options"], {}) or {}
        row["higher_is_better"] = True if row["higher_is_better"] is None else bool(row["higher_is_better"])
        row["is_primary"] = bool(row["is_primary"])
        out[row["run_id"]].append(row)
    return out


def current_intervals_of(
    store: Store, run_ids: Sequence[str], n_boot: int, seed: int, level: float, cluster: str
) -> dict[str, list[tuple[Any, ...]]]:
    """`current_intervals` of several runs in one query: run id -> its rows."""
    rows = store.con.execute(
        "SELECT i.run_id, i.metric, i.value, i.ci_low, i.ci_high, i.n, i.level, i.n_boot_used, i.vectorised, i.unit, "
        "i.n_clusters "
        "FROM intervals i JOIN run_metrics m ON m.run_id = i.run_id AND m.metric = i.metric "
        "WHERE list_contains(?::VARCHAR[], i.run_id) AND i.n_boot = ? AND i.seed = ? AND i.level = ? "
        "AND i.cluster = ? AND i.score_key IS NOT DISTINCT FROM m.score_key AND i.n = m.n",
        [list(run_ids), n_boot, seed, level, cluster],
    ).fetchall()
    out: dict[str, list[tuple[Any, ...]]] = {run_id: [] for run_id in run_ids}
    for row in rows:
        out[row[0]].append(row[1:])
    return out


def failed_samples_of(store: Store, run_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """`failed_samples` of several runs in one query: run id -> its failures, in `failed_samples`' order."""
    rows = store.query(
        "SELECT run_id, sample_id, 'generation' AS stage, error AS reason, error_file AS file FROM generations "
        "WHERE list_contains(?::VARCHAR[], run_id) AND error IS NOT NULL "
        "UNION ALL SELECT s.run_id, s.sample_id, 'metric ' || s.metric AS stage, "
        "json_extract_string(s.stats, '$.error') AS reason, "
        f"NULL AS file {CURRENT_SCORES_OF} AND {_SCORE_ERROR} "
        "ORDER BY run_id, sample_id, stage",
        [list(run_ids), list(run_ids)],
    )
    out: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
    for row in rows:
        out[row.pop("run_id")].append(row)
    return out


def task_score_values(store: Store, run_ids: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    """Current scores of several runs on the given metrics, as numeric columns (numpy arrays): `run` (index into
    `run_ids`), `sample` (index into `generated_sample_ids(run_ids)`, the same order), `metric` (index into
    `metrics`) and `value` (masked or NaN where NULL). One query for a whole task, for views that show every run's
    per-sample scores (the site's sample data); no sample id string crosses into Python."""
    scored = _CURRENT.format(runs="list_contains(?::VARCHAR[], s.run_id)").replace(
        "WHERE", "JOIN ids ON ids.sample_id = s.sample_id WHERE", 1
    )
    return store.con.execute(
        "WITH ids AS (SELECT sample_id, row_number() OVER (ORDER BY sample_id) - 1 AS i FROM "
        "(SELECT DISTINCT sample_id FROM generations WHERE run_id IN (SELECT unnest(?::VARCHAR[])))) "
        "SELECT list_position(?::VARCHAR[], s.run_id) - 1 AS run, ids.i AS sample, "
        f"list_position(?::VARCHAR[], s.metric) - 1 AS metric, s.value {scored} "
        "AND list_contains(?::VARCHAR[], s.metric)",
        [list(run_ids), list(run_ids), list(metrics), list(run_ids), list(metrics)],
    ).fetchnumpy()


def task_score_rows(
    store: Store, run_ids: Sequence[str], metrics: Sequence[str], without_stats: Sequence[str] = ()
) -> list[tuple[str, str, str, float | None, str | None]]:
    """(run id, metric, sample id, value, stats JSON) of several runs' current scores on the given metrics,
    ordered by run, metric and sample id (as `current_scores` orders one run's); stats NULL for the metrics in
    `without_stats` (not read)."""
    return store.con.execute(
        "SELECT s.run_id, s.metric, s.sample_id, s.value, "
        f"CASE WHEN list_contains(?::VARCHAR[], s.metric) THEN NULL ELSE s.stats END {CURRENT_SCORES_OF} "
        "AND list_contains(?::VARCHAR[], s.metric) ORDER BY s.run_id, s.metric, s.sample_id",
        [list(without_stats), list(run_ids), list(metrics)],
    ).fetchall()


def task_generation_rows(store: Store, run_ids: Sequence[str]) -> list[tuple[Any, ...]]:
    """(run index into `run_ids`, sample_id, text, parsed, error) of every generation of several runs, by run."""
    return store.con.execute(
        "SELECT list_position(?::VARCHAR[], run_id) - 1 AS run, sample_id, text, parsed, error FROM generations "
        "WHERE list_contains(?::VARCHAR[], run_id) ORDER BY run",
        [list(run_ids), list(run_ids)],
    ).fetchall()
