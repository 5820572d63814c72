"""Merge results databases written by separate jobs (a SLURM array, several machines) into one.

Each job writes its own DuckDB file; `merge_databases` folds them, in the order given, into a target file
(which may already hold results: it counts as the first source). Rules, per table:

- `runs`: a run (same run_id) present in several files is kept once. Its identity (task, version, model,
  fingerprint, adapter, decoding) must agree; bookkeeping (status, timestamps) is taken from a finished copy.
- `generations` + `scores`, per (run, sample): a sample only one file has is copied with its scores; the same
  text in two files is a duplicate (kept once); a successful generation replaces a failed one (the runner
  would retry that sample anyway); two different texts are a conflict.
- `run_metrics`: aggregates are recomputed from the merged per-sample scores of every run that received samples
  from more than one file (metrics aggregate from stored statistics, so no model runs again); so are that
  run's stored CIs (`intervals`, evalkit/results/intervals.py), which a new run brings along.
- `samples`: the same (task, sample_id) must hold the same references and prompt variables (image paths may
  differ between machines); otherwise it is a conflict.
- `generation_cache`, `annotation_cache`: content-addressed, merged by key; two different values for one key
  (sampled decoding, a nondeterministic annotator) keep the first and are counted, not treated as conflicts.
  `published` (records added with `evalkit published add`) merges the same way.
- any other table: rows with a new primary key are added; an existing key with different content is a conflict.

Conflicts are never resolved silently. With `on_conflict="fail"` (the default) nothing is written; with
`"keep-first"` the merge is written and each conflicting item keeps the version of the earliest file (a whole
sample record, so a score always belongs to the text it scored). Either way the report lists every conflict.

How: the merged file is built in `<into>.merging` (a copy of `into`), with the sources ATTACHed read-only and
every row classified and copied by SQL (`INSERT ... SELECT`), committed every 100k rows under a bounded
DuckDB buffer pool, so memory does not grow with the number of rows (two 1.5 M-score stores merge in a few
hundred MB). It replaces `into` only when complete: a merge that fails, stops at a conflict or is interrupted
leaves `into` byte-identical.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.results.aggregates import aggregate_current, stored_metric
from evalkit.results.intervals import refresh
from evalkit.results.queries import count_run_samples, ok_run_metrics
from evalkit.results.schema import RESULT_TABLES, SCHEMA_VERSION, stored_version
from evalkit.results.store import Store, connect, loads, wait_seconds
from evalkit.results.writes import set_metric_aggregate

ON_CONFLICT = ("fail", "keep-first")
RUN_IDENTITY = ("task", "task_version", "model", "model_fingerprint", "adapter", "decoding")
RUN_BOOKKEEPING = ("status", "started_at", "finished_at", "n_samples", "summary", "git_sha", "evalkit_version")
# Image paths are locations, not content: the same data set mounted elsewhere must not conflict.
SAMPLE_CONTENT = ("prompt_vars", "reference_text", "reference_boxes", "reference_labels")
# schema_info is each file's own (the target's version is what the merged file is written in).
KNOWN_TABLES = (*RESULT_TABLES, "schema_info")
# Per-run tables copied with a run that only one file has.
RUN_TABLES = ("generations", "scores", "run_metrics", "intervals")
# DuckDB's buffer pool during a merge: what exceeds it spills to disk instead of growing the process with the
# number of rows merged (main's single-transaction merge of two 1.5 M-score stores peaked at 1.1-1.6 GB).
MEMORY_LIMIT = "256MB"
MEMORY_ENV = "EVALKIT_MERGE_MEMORY_LIMIT"  # a larger pool, should some merge need one (DuckDB's size syntax)
# Rows per commit when one run's samples are copied: DuckDB holds what a transaction adds to the primary-key
# indexes in memory until it commits, so a single run of a million scores (a PadChest-sized task) is copied in
# steps. The scratch file is discarded on any failure, so a partly copied run is never seen.
STEP_ROWS = 100_000
# Published records a user added (evalkit/results/published.py) merge like the caches: by key, the first file's
# record kept where two files printed different values (counted).
CACHES = {
    "generation_cache": ("cache_key",),
    "annotation_cache": ("annotator", "annotator_version", "text_hash"),
    "published": ("source", "source_table", "model", "task", "source_column"),
}
CACHE_VALUE = {"generation_cache": "text", "annotation_cache": "value", "published": "printed"}


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
    """Folds attached sources into the scratch copy. Everything that grows with rows (classifying samples and
    scores, copying them, remembering where a kept sample came from) happens in DuckDB; Python holds runs, counts
    and conflicts only."""

    def __init__(self, store: Store, report: MergeReport) -> None:
        self.store = store
        self.con = store.con
        self.report = report
        # Which file each kept run came from (for conflict messages); per-sample origins are in `_merge_origin`.
        self.origin: dict[tuple[str, ...], str] = {}
        self.con.execute("CREATE TEMP TABLE _merge_origin (scope VARCHAR, item VARCHAR, source VARCHAR)")
        self.target_label = report.into
        # Runs that received samples or scores from a later file: their aggregates are recomputed at the end.
        self.recompute: set[str] = set()
        self.main_db = self.con.execute("SELECT current_database()").fetchone()[0]
        self._common: dict[tuple[str, str], list[str]] = {}
        self.uncommitted = 0  # rows added since the last commit

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
            "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = ? "
            "AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [self.main_db, table],
        ).fetchall()
        return list(rows[0][0]) if rows else []

    def common(self, alias: str, table: str) -> list[str]:
        """Columns both files have (a file may carry columns this evalkit does not declare; those are left out)."""
        if (alias, table) not in self._common:
            theirs = set(self.columns(alias, table))
            self._common[alias, table] = [c for c in self.columns(self.main_db, table) if c in theirs]
        return self._common[alias, table]

    def copy(self, alias: str, table: str, where: str = "", params: list[Any] | None = None) -> int:
        """INSERT ... SELECT from the attached source; the number of rows added."""
        cols = ", ".join(f'"{c}"' for c in self.common(alias, table))
        sql = f'INSERT INTO main."{table}" ({cols}) SELECT {cols} FROM {alias}."{table}" {where}'
        added = int(self.con.execute(sql, params or []).fetchone()[0])
        self.uncommitted += added
        return added

    def step(self) -> None:
        """Commit once STEP_ROWS rows are pending (inside the caller's transaction, which goes on): DuckDB's
        memory stays that of one step. A commit costs a checkpoint here, so steps are rows, not runs."""
        if self.uncommitted < STEP_ROWS:
            return
        self.uncommitted = 0
        try:
            self.con.execute("COMMIT")
        finally:
            self.con.execute("BEGIN TRANSACTION")  # the caller's transaction goes on (or rolls back)

    def copy_in_steps(self, alias: str, table: str, where: str, params: list[Any]) -> int:
        """`copy` of per-sample rows (`where` filters one run) in parts of about STEP_ROWS, a step after each:
        one run may be larger than DuckDB's pool can commit at once."""
        parts = math.ceil(self.count(f"FROM {alias}.{table} {where}", params) / STEP_ROWS)
        if parts <= 1:
            return self.copy(alias, table, where, params)
        added = 0
        for part in range(parts):
            added += self.copy(alias, table, f"{where} AND hash(sample_id) % {parts} = {part}", params)
            self.step()
        return added

    def count(self, sql: str, params: list[Any] | None = None) -> int:
        return int(self.con.execute(f"SELECT count(*) {sql}", params or []).fetchone()[0])

    def kept_from(self, scope: str, item: str) -> str | None:
        row = self.con.execute(
            "SELECT source FROM _merge_origin WHERE scope = ? AND item = ? LIMIT 1", [scope, item]
        ).fetchone()
        return row[0] if row else None

    def conflict(self, table: str, key: dict[str, Any], source: str, columns: list[str], detail: str = "") -> None:
        if table in ("generations", "scores", "run_metrics"):
            moved = self.kept_from("run:" + key["run_id"], key["sample_id"]) if "sample_id" in key else None
            kept = moved or self.origin.get(("runs", key["run_id"]))
        elif table == "samples":
            kept = self.kept_from("task:" + key["task"], key["sample_id"])
        else:
            kept = self.origin.get((table, *map(str, key.values())))
        kept = kept or f"{self.target_label} (already there)"
        self.report.conflicts.append(Conflict(table, key, source, kept, columns, detail))

    # --- tables -------------------------------------------------------------------------------------------------
    def merge_source(self, alias: str, label: str) -> None:
        """One source, committed in steps (its samples, each run, the caches, other tables): DuckDB's memory stays
        that of one step, whatever the number of rows merged."""
        present = set(self.tables(alias))
        if "samples" in present:
            with self.store.transaction():
                self.merge_samples(alias, label)
        if "runs" in present:
            self.merge_runs(alias, label, present)
        for table in CACHES:
            if table in present:
                with self.store.transaction():
                    self.merge_cache(alias, table)
        ours = set(self.tables(self.main_db))
        for table in sorted(present - set(KNOWN_TABLES)):
            if table in ours:
                with self.store.transaction():
                    self.merge_generic(alias, label, table)

    def merge_samples(self, alias: str, label: str) -> None:
        cols = [c for c in SAMPLE_CONTENT if c in self.common(alias, "samples")]
        join = f"FROM {alias}.samples s JOIN main.samples m ON m.task = s.task AND m.sample_id = s.sample_id"
        # Sample content is VARCHAR (JSON text written by one function): equal content is equal text.
        flags = ", ".join(f"s.{c} IS DISTINCT FROM m.{c}" for c in cols) or "false"
        differs = " OR ".join(f"s.{c} IS DISTINCT FROM m.{c}" for c in cols) or "false"
        shared = self.count(join)
        conflicting = self.con.execute(
            f"SELECT s.task, s.sample_id, {flags} {join} WHERE {differs} ORDER BY s.task, s.sample_id"
        ).fetchall()
        for row in conflicting:
            differing = [c for c, flag in zip(cols, row[2:], strict=True) if flag]
            self.conflict("samples", {"task": row[0], "sample_id": row[1]}, label, differing)
        self.report.count(self.report.duplicates, "samples", shared - len(conflicting))
        new_rows = (
            "s WHERE NOT EXISTS (SELECT 1 FROM main.samples m WHERE m.task = s.task AND m.sample_id = s.sample_id)"
        )
        self.con.execute(
            f"INSERT INTO _merge_origin SELECT 'task:' || task, sample_id, ? FROM {alias}.samples {new_rows}", [label]
        )
        self.report.count(self.report.added, "samples", self.copy(alias, "samples", new_rows))

    def merge_runs(self, alias: str, label: str, present: set[str]) -> None:
        run_cols = self.common(alias, "runs")
        theirs = self.con.execute(f"SELECT {', '.join(run_cols)} FROM {alias}.runs ORDER BY run_id").fetchall()
        ours = {
            r[0]: dict(zip(run_cols, r, strict=True))
            for r in self.con.execute(f"SELECT {', '.join(run_cols)} FROM main.runs").fetchall()
        }
        with self.store.transaction():
            for values in theirs:
                run = dict(zip(run_cols, values, strict=True))
                self.merge_run(alias, label, present, run, ours.get(run["run_id"]))
                self.step()

    def merge_run(
        self, alias: str, label: str, present: set[str], run: dict[str, Any], existing: dict[str, Any] | None
    ) -> None:
        run_id = run["run_id"]
        if existing is None:
            self.copy(alias, "runs", "WHERE run_id = ?", [run_id])
            self.report.count(self.report.added, "runs", 1)
            for table in RUN_TABLES:
                if table in present:
                    copy = self.copy_in_steps if table in ("generations", "scores") else self.copy
                    self.report.count(self.report.added, table, copy(alias, table, "WHERE run_id = ?", [run_id]))
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

    def merge_run_samples(self, alias: str, label: str, run_id: str, present: set[str]) -> None:
        """One run's samples from a later file, classified and copied in DuckDB (nothing per row in Python
        except conflicts)."""
        pairs = (
            f"FROM {alias}.generations s JOIN main.generations m ON m.run_id = s.run_id AND m.sample_id = s.sample_id "
            "WHERE s.run_id = ?"
        )
        # The same partition as the rules: replace a failed one, ignore a failed one, equal texts, other texts.
        replace = f"{pairs} AND m.error IS NOT NULL AND s.error IS NULL"
        failed_here = f"{pairs} AND s.error IS NOT NULL"
        both_ok = f"{pairs} AND m.error IS NULL AND s.error IS NULL"
        alike = "m.prompt_hash IS NOT DISTINCT FROM s.prompt_hash AND m.text IS NOT DISTINCT FROM s.text"
        duplicates = self.count(failed_here, [run_id]) + self.count(f"{both_ok} AND {alike}", [run_id])
        self.report.count(self.report.duplicates, "generations", duplicates)
        for sample_id, hash_differs, text_differs in self.con.execute(
            "SELECT s.sample_id, m.prompt_hash IS DISTINCT FROM s.prompt_hash, m.text IS DISTINCT FROM s.text "
            f"{both_ok} AND NOT ({alike}) ORDER BY s.sample_id",
            [run_id],
        ).fetchall():
            columns = [c for c, flag in (("prompt_hash", hash_differs), ("text", text_differs)) if flag]
            self.conflict("generations", {"run_id": run_id, "sample_id": sample_id}, label, columns)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _merge_moved (id VARCHAR)")
        self.con.execute(f"INSERT INTO _merge_moved SELECT s.sample_id {replace}", [run_id])
        replaced = self.count("FROM _merge_moved")
        self.report.replaced_failed += replaced
        moved_ids = "WHERE run_id = ? AND sample_id IN (SELECT id FROM _merge_moved)"
        if replaced:
            self.con.execute(f"DELETE FROM main.generations {moved_ids}", [run_id])
            self.con.execute(f"DELETE FROM main.scores {moved_ids}", [run_id])
        self.con.execute(
            f"INSERT INTO _merge_moved SELECT s.sample_id FROM {alias}.generations s WHERE s.run_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM main.generations m WHERE m.run_id = s.run_id AND m.sample_id = s.sample_id)",
            [run_id],
        )
        if self.count("FROM _merge_moved"):
            self.report.count(
                self.report.added, "generations", self.copy_in_steps(alias, "generations", moved_ids, [run_id])
            )
            if "scores" in present:
                self.report.count(self.report.added, "scores", self.copy_in_steps(alias, "scores", moved_ids, [run_id]))
            self.recompute.add(run_id)
            self.con.execute("INSERT INTO _merge_origin SELECT ?, id, ? FROM _merge_moved", ["run:" + run_id, label])
        if "scores" in present:
            self.con.execute("CREATE OR REPLACE TEMP TABLE _merge_same (id VARCHAR)")
            self.con.execute(f"INSERT INTO _merge_same SELECT s.sample_id {both_ok} AND {alike}", [run_id])
            self.merge_scores(alias, label, run_id)

    def merge_scores(self, alias: str, label: str, run_id: str) -> None:
        """Scores of the samples both files generated alike (`_merge_same`): equal ones are duplicates, other
        identities are added, the rest are conflicts."""
        # A score is one (sample, metric, identity): other options or weights are other scores, not conflicts.
        same_key = (
            "m.run_id = s.run_id AND m.sample_id = s.sample_id AND m.metric = s.metric AND m.score_key = s.score_key"
        )
        pairs = (
            f"FROM {alias}.scores s JOIN main.scores m ON {same_key} "
            "WHERE s.run_id = ? AND s.sample_id IN (SELECT id FROM _merge_same)"
        )
        # Equal version, value and stats text are duplicates, counted in DuckDB; the rest (a last-bit difference,
        # stats JSON written in another key order) are compared in Python, as few as there are differences.
        equal = (
            "m.metric_version IS NOT DISTINCT FROM s.metric_version AND m.value IS NOT DISTINCT FROM s.value "
            "AND m.stats IS NOT DISTINCT FROM s.stats"
        )
        duplicates = self.count(f"{pairs} AND {equal}", [run_id])
        rows = self.con.execute(
            "SELECT s.sample_id, s.metric, s.score_key, s.metric_version, s.value, s.stats, m.metric_version, "
            f"m.value, m.stats {pairs} AND NOT ({equal}) ORDER BY s.sample_id, s.metric, s.score_key",
            [run_id],
        )
        while batch := rows.fetchmany(10_000):
            for sample_id, metric, score_key, version, value, stats, kept_version, kept_value, kept_stats in batch:
                differing = [
                    c
                    for c, a, b in (("metric_version", version, kept_version), ("value", value, kept_value))
                    if not _same(a, b)
                ]
                if not differing and loads(stats, None) != loads(kept_stats, None):
                    differing = ["stats"]
                if differing:
                    detail = f"version {kept_version} value {kept_value} kept; version {version} value {value} not"
                    key = {"run_id": run_id, "sample_id": sample_id, "metric": metric, "score_key": score_key}
                    self.conflict("scores", key, label, differing, detail)
                else:
                    duplicates += 1
        self.report.count(self.report.duplicates, "scores", duplicates)
        added = self.copy(
            alias,
            "scores",
            "s WHERE run_id = ? AND sample_id IN (SELECT id FROM _merge_same) "
            f"AND NOT EXISTS (SELECT 1 FROM main.scores m WHERE {same_key})",
            [run_id],
        )
        if added:
            self.report.count(self.report.added, "scores", added)
            self.recompute.add(run_id)

    def merge_cache(self, alias: str, table: str) -> None:
        key = CACHES[table]
        join = " AND ".join(f"m.{k} = s.{k}" for k in key)
        value = CACHE_VALUE[table]
        # Counted before the copy: a key only this file has is added, not a disagreement.
        disagree = self.count(
            f"FROM {alias}.{table} s JOIN main.{table} m ON {join} WHERE m.{value} IS DISTINCT FROM s.{value}"
        )
        added = self.copy(alias, table, f"s WHERE NOT EXISTS (SELECT 1 FROM main.{table} m WHERE {join})")
        self.report.count(self.report.added, table, added)
        self.report.count(self.report.cache_disagreements, table, disagree)

    def merge_generic(self, alias: str, label: str, table: str) -> None:
        key = self.primary_key(table)
        cols = self.common(alias, table)
        col_list = ", ".join(f'"{c}"' for c in cols)
        if not key:
            added = self.con.execute(
                f'INSERT INTO main."{table}" ({col_list}) SELECT {col_list} FROM {alias}."{table}" '
                f'EXCEPT SELECT {col_list} FROM main."{table}"'
            ).fetchone()[0]
            self.report.count(self.report.added, table, added)
            return
        join = " AND ".join(f's."{k}" = m."{k}"' for k in key)
        others = [c for c in cols if c not in key]
        if others:
            # Compared before the copy (the new rows would only join themselves); a table evalkit does not know
            # may hold any type, so values are compared in Python (`_same`: float tolerance, NaN equals NaN).
            key_select = ", ".join(f's."{k}"' for k in key)
            pair_select = ", ".join(f's."{c}", m."{c}"' for c in others)
            rows = self.con.execute(
                f'SELECT {key_select}, {pair_select} FROM {alias}."{table}" s JOIN main."{table}" m ON {join}'
            )
            while batch := rows.fetchmany(10_000):
                for row in batch:
                    keys, values = row[: len(key)], row[len(key) :]
                    differing = [c for i, c in enumerate(others) if not _same(values[2 * i], values[2 * i + 1])]
                    if differing:
                        self.conflict(table, dict(zip(key, keys, strict=True)), label, differing)
                    else:
                        self.report.count(self.report.duplicates, table, 1)
        new_rows = f'AS s WHERE NOT EXISTS (SELECT 1 FROM main."{table}" m WHERE {join})'
        self.report.count(self.report.added, table, self.copy(alias, table, new_rows))

    # --- aggregates ---------------------------------------------------------------------------------------------
    def recompute_aggregates(self) -> None:
        """Aggregates of runs that received samples from a later file, from the merged per-sample scores (the
        metric's own `aggregate`, with the options the run stored), then their stored CIs; one run at a time."""
        for run_id in sorted(self.recompute):
            with self.store.transaction():
                self.recompute_run(run_id)

    def recompute_run(self, run_id: str) -> None:
        for row in ok_run_metrics(self.con, run_id):
            try:
                value, n_scored, _ = aggregate_current(self.con, run_id, stored_metric(row))
            except Exception as exc:
                detail = f"cannot recompute it here ({type(exc).__name__}: {exc}); rerun `evalkit run`"
                key = {"run_id": run_id, "metric": row["metric"]}
                self.conflict("run_metrics", key, "(merged)", ["value"], detail)
                continue
            set_metric_aggregate(self.con, run_id, row["metric"], value, n_scored)
        # The run now holds the samples of every file (shards of one run: `--shard`), so it may no longer be partial.
        count_run_samples(self.con, run_id)
        self.report.recomputed_runs.append(run_id)
        refresh(self.store, [run_id])  # its stored CIs described the unmerged scores


def merge_databases(
    sources: list[Path],
    into: Path,
    on_conflict: str = "fail",
) -> MergeReport:
    """Fold `sources` (in order) into `into`; see the module docstring for the rules.

    The merge is built in `<into>.merging` (a copy of `into`, or a new file), committed step by step under a
    bounded DuckDB buffer pool, and replaces `into` only when complete: a merge that fails, finds conflicts
    under `fail`, or is interrupted leaves `into` byte-identical and no scratch file behind.

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
    scratch = into.with_name(into.name + ".merging")
    lock = _MergeLock(into)  # two merges into one file would share (and delete) one scratch file
    _remove(scratch)
    # Held read-only for the whole merge: no writer changes `into` under us (readers still can read it).
    try:
        guard = connect(into, True, wait_seconds()) if into.exists() else None
    except BaseException:
        lock.release()
        raise
    store: Store | None = None
    aliases: list[str] = []
    migrated = tempfile.TemporaryDirectory(prefix="evalkit-merge-")
    try:
        if guard is not None:
            _copy_database(into, scratch)
        store = Store(scratch)
        limit = os.environ.get(MEMORY_ENV, MEMORY_LIMIT)
        try:
            store.con.execute("SET memory_limit = ?", [limit])
        except duckdb.Error as exc:
            raise EvalkitError(f"{MEMORY_ENV}={limit!r} is not a memory size (e.g. 1GB): {exc}") from None
        store.con.execute("SET preserve_insertion_order = false")  # lets INSERT ... SELECT stream
        store.con.execute("SET enable_progress_bar = false")  # a slow step must not print into `--json` output
        merger = _Merger(store, report)
        for index, source in enumerate(sources):
            alias = f"merge_src_{index}"
            try:
                readable = _at_current_schema(Path(source), Path(migrated.name) / f"{index}.duckdb")
                store.con.execute(f"ATTACH '{_sql_path(readable)}' AS {alias} (READ_ONLY)")
            except (duckdb.Error, EvalkitError) as exc:
                raise EvalkitError(f"{source}: not a readable DuckDB results file: {exc}") from None
            aliases.append(alias)
        try:
            for alias, source in zip(aliases, sources, strict=True):
                merger.merge_source(alias, str(source))
            merger.recompute_aggregates()
        except (duckdb.OutOfMemoryException, duckdb.TransactionException) as exc:
            if not any(word in str(exc) for word in ("memory", "allocate", "pin block")):
                raise
            raise EvalkitError(
                f"merge ran out of its DuckDB memory ({limit}): {str(exc).splitlines()[0]}; nothing was written. "
                f"Set {MEMORY_ENV}=1GB (or more) and merge again"
            ) from None
        for alias in aliases:
            store.con.execute(f"DETACH {alias}")
        aliases.clear()
        store.con.execute("CHECKPOINT")  # the finished file stands alone, without a write-ahead log
        store.close()
        if not (report.conflicts and on_conflict == "fail"):
            os.replace(scratch, into)
            Path(str(into) + ".wal").unlink(missing_ok=True)  # `into`'s own log, already folded into the copy
            report.written = True
    finally:
        if store is not None:
            for alias in aliases:
                try:
                    store.con.execute(f"DETACH {alias}")
                except duckdb.Error:
                    pass
            store.close()
        if guard is not None:
            guard.close()
        _remove(scratch)
        migrated.cleanup()
        lock.release()
    return report


class _MergeLock:
    """An exclusive lock on `<into>.merging.lock` for one merge; the file is removed when the merge ends."""

    def __init__(self, into: Path) -> None:
        self.path = into.with_name(into.name + ".merging.lock")
        self.handle = None
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return
        for _ in range(3):
            try:
                handle = open(self.path, "a+")
            except OSError as exc:
                raise EvalkitError(f"{into}: cannot merge into this folder ({exc.strerror or exc})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise EvalkitError(
                    f"{into}: another `evalkit merge` into this file is running; wait for it to finish, then merge "
                    "again"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file the merge before us removed after we opened it
                self.handle = handle
                return
            handle.close()
        raise EvalkitError(f"{into}: merges into this file keep starting and ending; merge again")

    def release(self) -> None:
        if self.handle is not None:
            self.path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
            self.handle.close()
            self.handle = None


def _copy_database(source: Path, target: Path) -> None:
    """A copy of a results file with its pending write-ahead log, which the copy replays when opened."""
    shutil.copyfile(source, target)
    log = Path(str(source) + ".wal")
    if log.exists():
        shutil.copyfile(log, str(target) + ".wal")


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    shutil.rmtree(str(path) + ".tmp", ignore_errors=True)  # DuckDB's spill folder, should it outlive a crash


def _at_current_schema(source: Path, scratch: Path) -> Path:
    """The source itself, or a migrated copy when it was written by an older evalkit (sources stay untouched)."""
    con = connect(source, True, wait_seconds())
    try:
        version = stored_version(con)
    finally:
        con.close()
    if version is None or version == SCHEMA_VERSION:
        return source
    shutil.copyfile(source, scratch)
    Store(scratch).close()  # migrates the copy (or says the file is newer than this evalkit)
    return scratch


def _sql_path(path: Path) -> str:
    return str(Path(path).resolve()).replace("'", "''")
