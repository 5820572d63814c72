"""Merge results databases written by separate jobs (a SLURM array, several machines) into one.

Each job writes its own DuckDB file; `merge_databases` folds them, in the order given, into a target file
(which may already hold results: it counts as the first source). Rules, per table:

- `runs`: a run (same run_id) present in several files is kept once. Its identity (task, version, model,
  fingerprint, adapter, decoding) must agree; bookkeeping (status, timestamps) is taken from a finished copy.
- `generations` + `scores`, per (run, sample): a sample only one file has is copied with its scores; the same
  text in two files is a duplicate (kept once); a successful generation replaces a failed one (the runner
  would retry that sample anyway); two different texts are a conflict.
- `run_metrics`: aggregates are recomputed from the merged per-sample scores of every run that received samples
  from more than one file (metrics aggregate from stored statistics, so no model runs again).
- `samples`: the same (task, sample_id) must hold the same references and prompt variables (image paths may
  differ between machines); otherwise it is a conflict.
- `generation_cache`, `annotation_cache`: content-addressed, merged by key; two different values for one key
  (sampled decoding, a nondeterministic annotator) keep the first and are counted, not treated as conflicts.
- any other table: rows with a new primary key are added; an existing key with different content is a conflict.

Conflicts are never resolved silently. With `on_conflict="fail"` (the default) nothing is written; with
`"keep-first"` the merge is written and each conflicting item keeps the version of the earliest file (a whole
sample record, so a score always belongs to the text it scored). Either way the report lists every conflict.
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.store import Store, loads

ON_CONFLICT = ("fail", "keep-first")
RUN_IDENTITY = ("task", "task_version", "model", "model_fingerprint", "adapter", "decoding")
RUN_BOOKKEEPING = ("status", "started_at", "finished_at", "n_samples", "summary", "git_sha", "evalkit_version")
# Image paths are locations, not content: the same data set mounted elsewhere must not conflict.
SAMPLE_CONTENT = ("prompt_vars", "reference_text", "reference_boxes", "reference_labels")
KNOWN_TABLES = (
    "runs",
    "samples",
    "generations",
    "scores",
    "run_metrics",
    "intervals",
    "generation_cache",
    "annotation_cache",
)
# Per-run tables copied with a run that only one file has.
RUN_TABLES = ("generations", "scores", "run_metrics", "intervals")
# DuckDB's buffer pool for a merge: tables larger than this spill to disk instead of growing the process.
MEMORY_LIMIT = "256MB"
CACHES = {"generation_cache": ("cache_key",), "annotation_cache": ("annotator", "annotator_version", "text_hash")}
CACHE_VALUE = {"generation_cache": "text", "annotation_cache": "value"}


@dataclass
class Conflict:
    """One item two files disagree on."""

    table: str
    key: dict[str, Any]
    source: str
    kept_from: str
    columns: list[str]
    detail: str = ""

    def describe(self) -> str:
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        what = f" ({self.detail})" if self.detail else ""
        return f"{self.table} [{key}]: {self.source} differs in {', '.join(self.columns)} from {self.kept_from}{what}"


@dataclass
class MergeReport:
    into: str
    sources: list[str]
    on_conflict: str
    added: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    replaced_failed: int = 0
    recomputed_runs: list[str] = field(default_factory=list)
    cache_disagreements: dict[str, int] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    written: bool = False

    def count(self, bucket: dict[str, int], table: str, n: int) -> None:
        if n:
            bucket[table] = bucket.get(table, 0) + int(n)

    def to_json(self) -> dict[str, Any]:
        return {
            "into": self.into,
            "sources": self.sources,
            "on_conflict": self.on_conflict,
            "written": self.written,
            "added": self.added,
            "duplicates": self.duplicates,
            "replaced_failed_generations": self.replaced_failed,
            "recomputed_runs": self.recomputed_runs,
            "cache_disagreements": self.cache_disagreements,
            "conflicts": [
                {
                    "table": c.table,
                    "key": c.key,
                    "source": c.source,
                    "kept_from": c.kept_from,
                    "columns": c.columns,
                    "detail": c.detail,
                }
                for c in self.conflicts
            ],
        }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


class _Merger:
    def __init__(self, store: Store, report: MergeReport) -> None:
        self.store = store
        self.con = store.con
        self.report = report
        # Which file each kept run/sample record came from (for conflict messages). Per-sample origins live in a
        # temporary table, so a merge's memory does not grow with the number of samples moved.
        self.origin: dict[tuple[str, ...], str] = {}
        self.con.execute("CREATE TEMP TABLE _merge_origin (run_id VARCHAR, sample_id VARCHAR, source VARCHAR)")
        self.target_label = report.into
        # Runs that received samples or scores from a later file: their aggregates are recomputed at the end.
        self.recompute: set[str] = set()
        self.main_db = self.con.execute("SELECT current_database()").fetchone()[0]

    # --- helpers ------------------------------------------------------------------------------------------------
    def columns(self, schema: str, table: str) -> list[str]:
        rows = self.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND schema_name = 'main' "
            "AND table_name = ? ORDER BY column_index",
            [schema, table],
        ).fetchall()
        return [r[0] for r in rows]

    def tables(self, schema: str) -> list[str]:
        rows = self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'", [schema]
        ).fetchall()
        return [r[0] for r in rows]

    def primary_key(self, table: str) -> list[str]:
        rows = self.con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = current_database() "
            "AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [table],
        ).fetchall()
        return list(rows[0][0]) if rows else []

    def common(self, alias: str, table: str) -> list[str]:
        """Columns both files have (an older file may lack newer columns; those stay NULL)."""
        theirs = set(self.columns(alias, table))
        return [c for c in self.columns(self.main_db, table) if c in theirs]

    def copy(self, alias: str, table: str, where: str = "", params: list[Any] | None = None) -> int:
        cols = ", ".join(f'"{c}"' for c in self.common(alias, table))
        sql = f'INSERT INTO main."{table}" ({cols}) SELECT {cols} FROM {alias}."{table}" {where}'
        before = self.con.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0]
        self.con.execute(sql, params or [])
        return self.con.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0] - before

    def conflict(self, table: str, key: dict[str, Any], source: str, columns: list[str], detail: str = "") -> None:
        if table in ("generations", "scores", "run_metrics"):
            moved = self.con.execute(
                "SELECT source FROM _merge_origin WHERE run_id = ? AND sample_id = ?",
                [key["run_id"], key.get("sample_id", "")],
            ).fetchone()
            kept = moved[0] if moved else self.origin.get(("runs", key["run_id"]))
        elif table == "samples":
            moved = self.con.execute(
                "SELECT source FROM _merge_origin WHERE run_id = ? AND sample_id = ?",
                ["samples:" + key["task"], key["sample_id"]],
            ).fetchone()
            kept = moved[0] if moved else None
        else:
            kept = self.origin.get((table, *map(str, key.values())))
        kept = kept or f"{self.target_label} (already there)"
        self.report.conflicts.append(Conflict(table, key, source, kept, columns, detail))

    # --- tables -------------------------------------------------------------------------------------------------
    def merge_source(self, alias: str, label: str) -> None:
        present = set(self.tables(alias))
        if "samples" in present:
            self.merge_samples(alias, label)
        if "runs" in present:
            self.merge_runs(alias, label, present)
        for table in CACHES:
            if table in present:
                self.merge_cache(alias, table)
        ours = set(self.tables(self.main_db))
        for table in sorted(present - set(KNOWN_TABLES)):
            if table in ours:
                self.merge_generic(alias, label, table)

    def merge_samples(self, alias: str, label: str) -> None:
        cols = [c for c in SAMPLE_CONTENT if c in self.common(alias, "samples")]
        join = f"FROM {alias}.samples s JOIN main.samples m ON m.task = s.task AND m.sample_id = s.sample_id"
        # Stored content is JSON text written by one function: equal content is equal text.
        differs = " OR ".join(f"s.{c} IS DISTINCT FROM m.{c}" for c in cols) or "false"
        shared = self.con.execute(f"SELECT count(*) {join}").fetchone()[0]
        select = ", ".join(f"s.{c} IS DISTINCT FROM m.{c}" for c in cols)
        conflicting = self.con.execute(f"SELECT s.task, s.sample_id, {select} {join} WHERE {differs}").fetchall()
        for row in conflicting:
            differing = [c for c, flag in zip(cols, row[2:], strict=True) if flag]
            self.conflict("samples", {"task": row[0], "sample_id": row[1]}, label, differing)
        self.report.count(self.report.duplicates, "samples", shared - len(conflicting))
        new_rows = (
            "s WHERE NOT EXISTS (SELECT 1 FROM main.samples m WHERE m.task = s.task AND m.sample_id = s.sample_id)"
        )
        self.con.execute(
            f"INSERT INTO _merge_origin SELECT 'samples:' || task, sample_id, ? FROM {alias}.samples {new_rows}",
            [label],
        )
        self.report.count(self.report.added, "samples", self.copy(alias, "samples", new_rows))

    def merge_runs(self, alias: str, label: str, present: set[str]) -> None:
        run_cols = self.common(alias, "runs")
        theirs = self.con.execute(f"SELECT {', '.join(run_cols)} FROM {alias}.runs").fetchall()
        ours = {
            r[0]: dict(zip(run_cols, r, strict=True))
            for r in self.con.execute(f"SELECT {', '.join(run_cols)} FROM main.runs").fetchall()
        }
        for values in theirs:
            run = dict(zip(run_cols, values, strict=True))
            with self.store.transaction():  # one run at a time: memory stays that of one run
                self.merge_run(alias, label, present, run, ours.get(run["run_id"]))

    def merge_run(
        self, alias: str, label: str, present: set[str], run: dict[str, Any], existing: dict[str, Any] | None
    ) -> None:
        run_id = run["run_id"]
        if existing is None:
            self.copy(alias, "runs", "WHERE run_id = ?", [run_id])
            self.report.count(self.report.added, "runs", 1)
            for table in RUN_TABLES:
                if table in present:
                    self.report.count(self.report.added, table, self.copy(alias, table, "WHERE run_id = ?", [run_id]))
            self.origin[("runs", run_id)] = label
            return
        differing = [c for c in RUN_IDENTITY if c in run and not _same(run[c], existing[c])]
        if differing:
            self.conflict("runs", {"run_id": run_id}, label, differing, "the whole run is kept from one file")
            return
        self.report.count(self.report.duplicates, "runs", 1)
        if run.get("status") == "finished" and existing.get("status") != "finished":
            updates = [c for c in RUN_BOOKKEEPING if c in run]
            assignments = ", ".join(f"{c} = ?" for c in updates)
            self.con.execute(
                f"UPDATE main.runs SET {assignments} WHERE run_id = ?", [*(run[c] for c in updates), run_id]
            )
        if "generations" in present:
            self.merge_run_samples(alias, label, run_id, present)
        if "run_metrics" in present:
            # Metrics this file scored and the earlier ones did not; values are recomputed below.
            added = self.copy(
                alias,
                "run_metrics",
                "s WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM main.run_metrics m "
                "WHERE m.run_id = s.run_id AND m.metric = s.metric)",
                [run_id],
            )
            if added:
                self.report.count(self.report.added, "run_metrics", added)
                self.recompute.add(run_id)
        if "intervals" in present:
            # CIs at settings only this file stored; those of runs that received samples are recomputed below.
            self.copy(
                alias,
                "intervals",
                "s WHERE run_id = ? AND NOT EXISTS (SELECT 1 FROM main.intervals m WHERE m.run_id = s.run_id "
                "AND m.metric = s.metric AND m.n_boot = s.n_boot AND m.seed = s.seed AND m.level = s.level "
                "AND m.cluster = s.cluster)",
                [run_id],
            )

    def merge_run_samples(self, alias: str, label: str, run_id: str, present: set[str]) -> None:
        """One run's samples from a later file, classified and copied inside DuckDB (nothing per row in Python)."""
        join = (
            f"FROM {alias}.generations s JOIN main.generations m ON m.run_id = s.run_id AND m.sample_id = s.sample_id "
            "WHERE s.run_id = ?"
        )
        # A successful generation replaces a failed one (the runner would retry it anyway).
        replace = f"{join} AND m.error IS NOT NULL AND s.error IS NULL"
        # Failed here (and the kept one exists): nothing to take. Equal text: a duplicate.
        failed = f"{join} AND s.error IS NOT NULL"
        same = (
            f"{join} AND m.error IS NULL AND s.error IS NULL "
            "AND m.prompt_hash IS NOT DISTINCT FROM s.prompt_hash AND m.text IS NOT DISTINCT FROM s.text"
        )
        differ = (
            f"{join} AND m.error IS NULL AND s.error IS NULL "
            "AND (m.prompt_hash IS DISTINCT FROM s.prompt_hash OR m.text IS DISTINCT FROM s.text)"
        )
        count = "SELECT count(*) {}"
        duplicates = self.con.execute(count.format(failed), [run_id]).fetchone()[0]
        duplicates += self.con.execute(count.format(same), [run_id]).fetchone()[0]
        self.report.count(self.report.duplicates, "generations", duplicates)
        for sample_id, hash_differs, text_differs in self.con.execute(
            "SELECT s.sample_id, m.prompt_hash IS DISTINCT FROM s.prompt_hash, m.text IS DISTINCT FROM s.text "
            + differ,
            [run_id],
        ).fetchall():
            columns = [c for c, flag in (("prompt_hash", hash_differs), ("text", text_differs)) if flag]
            self.conflict("generations", {"run_id": run_id, "sample_id": sample_id}, label, columns)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _merge_moved (id VARCHAR)")
        self.con.execute(f"INSERT INTO _merge_moved SELECT s.sample_id {replace}", [run_id])
        replaced = self.con.execute("SELECT count(*) FROM _merge_moved").fetchone()[0]
        self.report.replaced_failed += replaced
        where = "WHERE run_id = ? AND sample_id IN (SELECT id FROM _merge_moved)"
        if replaced:
            self.con.execute(f"DELETE FROM main.generations {where}", [run_id])
            self.con.execute(f"DELETE FROM main.scores {where}", [run_id])
        self.con.execute(
            f"INSERT INTO _merge_moved SELECT s.sample_id FROM {alias}.generations s WHERE s.run_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM main.generations m WHERE m.run_id = s.run_id AND m.sample_id = s.sample_id)",
            [run_id],
        )
        moved = self.con.execute("SELECT count(*) FROM _merge_moved").fetchone()[0]
        if moved:
            self.report.count(self.report.added, "generations", self.copy(alias, "generations", where, [run_id]))
            if "scores" in present:
                self.report.count(self.report.added, "scores", self.copy(alias, "scores", where, [run_id]))
            self.recompute.add(run_id)
            self.con.execute("INSERT INTO _merge_origin SELECT ?, id, ? FROM _merge_moved", [run_id, label])
        if "scores" in present:
            self.merge_scores(alias, label, run_id, same)

    def merge_scores(self, alias: str, label: str, run_id: str, same: str) -> None:
        """Scores of the samples both files generated alike: equal ones are duplicates, new metrics are added."""
        self.con.execute("CREATE OR REPLACE TEMP TABLE _merge_same (id VARCHAR)")
        self.con.execute(f"INSERT INTO _merge_same SELECT s.sample_id {same}", [run_id])
        pairs = (
            f"FROM {alias}.scores s JOIN main.scores m ON m.run_id = s.run_id AND m.sample_id = s.sample_id "
            "AND m.metric = s.metric WHERE s.run_id = ? AND s.sample_id IN (SELECT id FROM _merge_same)"
        )
        # Equal version, value and stats text: duplicates, counted without leaving DuckDB. The rest (a rounding
        # difference, stats JSON written differently) are compared one by one below.
        equal = "m.metric_version IS NOT DISTINCT FROM s.metric_version AND m.value IS NOT DISTINCT FROM s.value"
        equal += " AND m.stats IS NOT DISTINCT FROM s.stats"
        duplicates = self.con.execute(f"SELECT count(*) {pairs} AND {equal}", [run_id]).fetchone()[0]
        rows = self.con.execute(
            "SELECT s.sample_id, s.metric, s.metric_version, s.value, s.stats, m.metric_version, m.value, m.stats "
            f"{pairs} AND NOT ({equal})",
            [run_id],
        ).fetchall()
        for sample_id, metric, version, value, stats, kept_version, kept_value, kept_stats in rows:
            differing = [
                c
                for c, a, b in (("metric_version", version, kept_version), ("value", value, kept_value))
                if not _same(a, b)
            ]
            if not differing and loads(stats, None) != loads(kept_stats, None):
                differing = ["stats"]
            if differing:
                detail = f"version {kept_version} value {kept_value} kept; version {version} value {value} not"
                score_key = {"run_id": run_id, "sample_id": sample_id, "metric": metric}
                self.conflict("scores", score_key, label, differing, detail)
            else:
                duplicates += 1
        self.report.count(self.report.duplicates, "scores", duplicates)
        added = self.copy(
            alias,
            "scores",
            "s WHERE run_id = ? AND sample_id IN (SELECT id FROM _merge_same) AND NOT EXISTS (SELECT 1 FROM "
            "main.scores m WHERE m.run_id = s.run_id AND m.sample_id = s.sample_id AND m.metric = s.metric)",
            [run_id],
        )
        if added:
            self.report.count(self.report.added, "scores", added)
            self.recompute.add(run_id)

    def merge_cache(self, alias: str, table: str) -> None:
        key = CACHES[table]
        join = " AND ".join(f"m.{k} = s.{k}" for k in key)
        added = self.copy(alias, table, f"s WHERE NOT EXISTS (SELECT 1 FROM main.{table} m WHERE {join})")
        self.report.count(self.report.added, table, added)
        value = CACHE_VALUE[table]
        disagree = self.con.execute(
            f"SELECT count(*) FROM {alias}.{table} s JOIN main.{table} m ON {join} "
            f"WHERE m.{value} IS DISTINCT FROM s.{value}"
        ).fetchone()[0]
        self.report.count(self.report.cache_disagreements, table, disagree)

    def merge_generic(self, alias: str, label: str, table: str) -> None:
        key = self.primary_key(table)
        cols = self.common(alias, table)
        col_list = ", ".join(f'"{c}"' for c in cols)
        if not key:
            before = self.con.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0]
            self.con.execute(
                f'INSERT INTO main."{table}" ({col_list}) SELECT {col_list} FROM {alias}."{table}" '
                f'EXCEPT SELECT {col_list} FROM main."{table}"'
            )
            after = self.con.execute(f'SELECT count(*) FROM main."{table}"').fetchone()[0]
            self.report.count(self.report.added, table, after - before)
            return
        join = " AND ".join(f's."{k}" = m."{k}"' for k in key)
        new_rows = f'AS s WHERE NOT EXISTS (SELECT 1 FROM main."{table}" m WHERE {join})'
        self.report.count(self.report.added, table, self.copy(alias, table, new_rows))
        others = [c for c in cols if c not in key]
        if not others:
            return
        key_select = ", ".join(f's."{k}"' for k in key)
        pair_select = ", ".join(f's."{c}", m."{c}"' for c in others)
        rows = self.con.execute(
            f'SELECT {key_select}, {pair_select} FROM {alias}."{table}" s JOIN main."{table}" m ON {join}'
        ).fetchall()
        for row in rows:
            keys, values = row[: len(key)], row[len(key) :]
            differing = [c for i, c in enumerate(others) if not _same(values[2 * i], values[2 * i + 1])]
            if differing:
                self.conflict(table, dict(zip(key, keys, strict=True)), label, differing)
            else:
                self.report.count(self.report.duplicates, table, 1)

    # --- aggregates ---------------------------------------------------------------------------------------------
    def recompute_aggregates(self) -> None:
        """Aggregates of runs that received samples from a later file, from the merged per-sample scores (the
        metric's own `aggregate`, with the task's metric options when the task is known here)."""
        from evalkit.registry import all_tasks

        try:
            tasks = all_tasks()
        except EvalkitError:
            tasks = {}
        for run_id in sorted(self.recompute):
            with self.store.transaction():
                self.recompute_run(run_id, tasks)

    def recompute_run(self, run_id: str, tasks: dict[str, Any]) -> None:
        """One run's aggregates, then its stored CIs (they describe the aggregates)."""
        from evalkit.metrics import get_metric
        from evalkit.stored_cis import refresh

        run = self.store.query("SELECT task, task_version FROM runs WHERE run_id = ?", [run_id])
        spec = tasks.get(run[0]["task"]) if run else None
        known = spec is not None and spec.version == run[0]["task_version"]
        options = {m.name: m.options for m in spec.metrics} if known else {}
        rows = self.store.query(
            "SELECT metric, metric_version FROM run_metrics WHERE run_id = ? AND status = 'ok'", [run_id]
        )
        for row in rows:
            scores = self.con.execute(
                "SELECT value, stats FROM scores WHERE run_id = ? AND metric = ? AND metric_version = ?",
                [run_id, row["metric"], row["metric_version"]],
            ).fetchall()
            try:
                metric = get_metric(row["metric"], **options.get(row["metric"], {}))
                values, stats = [s[0] for s in scores], [loads(s[1], {}) for s in scores]
                value = metric.aggregate(values, stats) if scores else None
            except Exception as exc:
                detail = f"cannot recompute it here ({type(exc).__name__}: {exc}); rerun `evalkit run`"
                key = {"run_id": run_id, "metric": row["metric"]}
                self.conflict("run_metrics", key, "(merged)", ["value"], detail)
                continue
            self.con.execute(
                "UPDATE run_metrics SET value = ?, n = ? WHERE run_id = ? AND metric = ?",
                [value, len(scores), run_id, row["metric"]],
            )
        try:
            refresh(self.store, [run_id])
        except EvalkitError:
            # Readers compute what is missing; a stale interval never shows (its n no longer matches).
            self.con.execute("DELETE FROM intervals WHERE run_id = ?", [run_id])
        self.report.recomputed_runs.append(run_id)


def merge_databases(sources: list[Path], into: Path, on_conflict: str = "fail") -> MergeReport:
    """Fold `sources` (in order) into `into`; see the module docstring for the rules.

    Args:
        sources: DuckDB files written by `evalkit run` (read only; never modified).
        into: Target file; created if absent. Its existing content takes precedence over every source.
        on_conflict: `fail` (write nothing when any conflict is found) or `keep-first` (write, keeping the
            earliest file's version of each conflicting item).
    """
    if on_conflict not in ON_CONFLICT:
        raise EvalkitError(f"--on-conflict must be one of {', '.join(ON_CONFLICT)}, not '{on_conflict}'")
    if not sources:
        raise EvalkitError("give at least one database to merge")
    into = Path(into)
    target = into.resolve()
    for source in sources:
        if not Path(source).is_file():
            raise EvalkitError(f"{source}: no such database file")
        if Path(source).resolve() == target:
            raise EvalkitError(f"{source}: is also the --into file; merge into a new file or leave it out of the list")
    report = MergeReport(into=str(into), sources=[str(s) for s in sources], on_conflict=on_conflict)
    # The merge is built in a scratch copy, committed run by run (so DuckDB's memory stays that of one run, not
    # of every row merged), and replaces `into` only when complete: a failed or interrupted merge leaves `into`
    # as it was.
    scratch = into.with_name(into.name + ".merging")
    _remove(scratch)
    if into.exists():
        Store(into).close()  # folds a pending write-ahead log into the file before it is copied
        shutil.copy2(into, scratch)
    store = Store(scratch)
    store.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    store.con.execute("SET preserve_insertion_order = false")
    aliases: list[str] = []
    try:
        merger = _Merger(store, report)
        for index, source in enumerate(sources):
            alias = f"merge_src_{index}"
            try:
                store.con.execute(f"ATTACH '{_sql_path(source)}' AS {alias} (READ_ONLY)")
            except duckdb.Error as exc:
                raise EvalkitError(f"{source}: not a readable DuckDB results file: {exc}") from None
            aliases.append(alias)
        for alias, source in zip(aliases, sources, strict=True):
            merger.merge_source(alias, str(source))
        merger.recompute_aggregates()
        report.written = not (report.conflicts and on_conflict == "fail")
    finally:
        for alias in aliases:
            try:
                store.con.execute(f"DETACH {alias}")
            except duckdb.Error:
                pass
        store.con.execute("CHECKPOINT")
        store.close()
        if report.written:
            os.replace(scratch, into)
            Path(str(into) + ".wal").unlink(missing_ok=True)
        _remove(scratch)
    return report


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)


def _sql_path(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "''")
