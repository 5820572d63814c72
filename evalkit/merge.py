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
  run's stored CIs (`intervals`, evalkit/stored_cis.py), which a new run brings along.
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
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.results.queries import CURRENT_SCORES
from evalkit.results.schema import RESULT_TABLES, SCHEMA_VERSION, stored_version
from evalkit.results.store import Store, connect, loads, wait_seconds

ON_CONFLICT = ("fail", "keep-first")
RUN_IDENTITY = ("task", "task_version", "model", "model_fingerprint", "adapter", "decoding")
RUN_BOOKKEEPING = ("status", "started_at", "finished_at", "n_samples", "summary", "git_sha", "evalkit_version")
# Image paths are locations, not content: the same data set mounted elsewhere must not conflict.
SAMPLE_CONTENT = ("prompt_vars", "reference_text", "reference_boxes", "reference_labels")
# schema_info is each file's own (the target's version is what the merged file is written in).
KNOWN_TABLES = (*RESULT_TABLES, "schema_info")
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
        # Which file each kept run/sample record came from (for conflict messages).
        self.origin: dict[tuple[str, ...], str] = {}
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
            kept = self.origin.get(("sample", key["run_id"], key.get("sample_id", ""))) or self.origin.get(
                ("runs", key["run_id"])
            )
        elif table == "samples":
            kept = self.origin.get(("samples", key["task"], key["sample_id"]))
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
        select = ", ".join(f"s.{c}, m.{c}" for c in cols)
        shared = self.con.execute(
            f"SELECT s.task, s.sample_id, {select} FROM {alias}.samples s JOIN main.samples m "
            "ON m.task = s.task AND m.sample_id = s.sample_id"
        ).fetchall()
        duplicates = 0
        for row in shared:
            task, sample_id, values = row[0], row[1], row[2:]
            differing = [c for i, c in enumerate(cols) if not _same(values[2 * i], values[2 * i + 1])]
            if differing:
                self.conflict("samples", {"task": task, "sample_id": sample_id}, label, differing)
            else:
                duplicates += 1
        self.report.count(self.report.duplicates, "samples", duplicates)
        new_rows = (
            "s WHERE NOT EXISTS (SELECT 1 FROM main.samples m WHERE m.task = s.task AND m.sample_id = s.sample_id)"
        )
        for task, sample_id in self.con.execute(f"SELECT task, sample_id FROM {alias}.samples {new_rows}").fetchall():
            self.origin[("samples", task, sample_id)] = label
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
            run_id = run["run_id"]
            existing = ours.get(run_id)
            if existing is None:
                self.copy(alias, "runs", "WHERE run_id = ?", [run_id])
                self.report.count(self.report.added, "runs", 1)
                for table in ("generations", "scores", "run_metrics", "intervals"):
                    if table in present:
                        self.report.count(
                            self.report.added, table, self.copy(alias, table, "WHERE run_id = ?", [run_id])
                        )
                self.origin[("runs", run_id)] = label
                continue
            differing = [c for c in RUN_IDENTITY if c in run and not _same(run[c], existing[c])]
            if differing:
                self.conflict("runs", {"run_id": run_id}, label, differing, "the whole run is kept from one file")
                continue
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
        query = "SELECT sample_id, prompt_hash, text, error FROM {}.generations WHERE run_id = ?"
        theirs = {r[0]: r[1:] for r in self.con.execute(query.format(alias), [run_id]).fetchall()}
        ours = {r[0]: r[1:] for r in self.con.execute(query.format("main"), [run_id]).fetchall()}
        take: list[str] = []
        replace: list[str] = []
        same: list[str] = []
        for sample_id, (prompt_hash, text, error) in theirs.items():
            mine = ours.get(sample_id)
            if mine is None:
                take.append(sample_id)
            elif mine[2] is not None and error is None:
                replace.append(sample_id)
            elif error is not None:
                self.report.count(self.report.duplicates, "generations", 1)
            elif (mine[0], mine[1]) == (prompt_hash, text):
                same.append(sample_id)
            else:
                columns = [c for c, a, b in (("prompt_hash", prompt_hash, mine[0]), ("text", text, mine[1])) if a != b]
                self.conflict("generations", {"run_id": run_id, "sample_id": sample_id}, label, columns)
        self.report.count(self.report.duplicates, "generations", len(same))
        self.report.replaced_failed += len(replace)
        where = "WHERE run_id = ? AND sample_id IN (SELECT id FROM _merge_ids)"
        if replace:
            self._set_ids(replace)
            self.con.execute(f"DELETE FROM main.generations {where}", [run_id])
            self.con.execute(f"DELETE FROM main.scores {where}", [run_id])
        moved = take + replace
        if moved:
            self._set_ids(moved)
            self.report.count(self.report.added, "generations", self.copy(alias, "generations", where, [run_id]))
            if "scores" in present:
                self.report.count(self.report.added, "scores", self.copy(alias, "scores", where, [run_id]))
            self.recompute.add(run_id)
            for sample_id in moved:
                self.origin[("sample", run_id, sample_id)] = label
        if same and "scores" in present:
            self.merge_scores(alias, label, run_id, same)

    def merge_scores(self, alias: str, label: str, run_id: str, sample_ids: list[str]) -> None:
        self._set_ids(sample_ids)
        # A score is one (sample, metric, identity): other options or weights are other scores, not conflicts.
        query = (
            "SELECT sample_id, metric, score_key, metric_version, value, stats FROM {}.scores WHERE run_id = ? "
            "AND sample_id IN (SELECT id FROM _merge_ids)"
        )
        theirs = {(r[0], r[1], r[2]): r[3:] for r in self.con.execute(query.format(alias), [run_id]).fetchall()}
        ours = {(r[0], r[1], r[2]): r[3:] for r in self.con.execute(query.format("main"), [run_id]).fetchall()}
        missing = [key for key in theirs if key not in ours]
        duplicates = 0
        for key, (version, value, stats) in theirs.items():
            mine = ours.get(key)
            if mine is None:
                continue
            differing = [
                c for c, a, b in (("metric_version", version, mine[0]), ("value", value, mine[1])) if not _same(a, b)
            ]
            if not differing and loads(stats, None) != loads(mine[2], None):
                differing = ["stats"]
            if differing:
                detail = f"version {mine[0]} value {mine[1]} kept; version {version} value {value} not"
                score_key = {"run_id": run_id, "sample_id": key[0], "metric": key[1], "score_key": key[2]}
                self.conflict("scores", score_key, label, differing, detail)
            else:
                duplicates += 1
        self.report.count(self.report.duplicates, "scores", duplicates)
        for sample_id, metric, key in missing:
            where = "WHERE run_id = ? AND sample_id = ? AND metric = ? AND score_key = ?"
            self.report.count(
                self.report.added, "scores", self.copy(alias, "scores", where, [run_id, sample_id, metric, key])
            )
            self.recompute.add(run_id)

    def _set_ids(self, ids: list[str]) -> None:
        self.con.execute("CREATE TEMP TABLE IF NOT EXISTS _merge_ids (id VARCHAR)")
        self.con.execute("DELETE FROM _merge_ids")
        self.con.executemany("INSERT INTO _merge_ids VALUES (?)", [[i] for i in ids])

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
        metric's own `aggregate`, with the options the run stored)."""
        from evalkit.metrics import get_metric

        for run_id in sorted(self.recompute):
            rows = self.store.query(
                "SELECT metric, options FROM run_metrics WHERE run_id = ? AND status = 'ok'", [run_id]
            )
            for row in rows:
                scores = self.con.execute(
                    f"SELECT s.value, s.stats {CURRENT_SCORES} AND s.metric = ? ORDER BY s.sample_id",
                    [run_id, row["metric"]],
                ).fetchall()
                try:
                    metric = get_metric(row["metric"], **(loads(row["options"], {}) or {}))
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
            self.report.recomputed_runs.append(run_id)
        from evalkit.stored_cis import refresh

        refresh(self.store, self.report.recomputed_runs)  # their stored CIs described the unmerged scores


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
    existed = into.exists()
    report = MergeReport(into=str(into), sources=[str(s) for s in sources], on_conflict=on_conflict)
    store = Store(into)
    aliases: list[str] = []
    scratch = tempfile.TemporaryDirectory(prefix="evalkit-merge-")
    try:
        merger = _Merger(store, report)
        for index, source in enumerate(sources):
            alias = f"merge_src_{index}"
            try:
                readable = _at_current_schema(Path(source), Path(scratch.name) / f"{index}.duckdb")
                store.con.execute(f"ATTACH '{_sql_path(readable)}' AS {alias} (READ_ONLY)")
            except (duckdb.Error, EvalkitError) as exc:
                raise EvalkitError(f"{source}: not a readable DuckDB results file: {exc}") from None
            aliases.append(alias)
        store.con.execute("BEGIN TRANSACTION")
        try:
            for alias, source in zip(aliases, sources, strict=True):
                merger.merge_source(alias, str(source))
            merger.recompute_aggregates()
        except BaseException:
            store.con.execute("ROLLBACK")
            raise
        if report.conflicts and on_conflict == "fail":
            store.con.execute("ROLLBACK")
        else:
            store.con.execute("COMMIT")
            report.written = True
    finally:
        for alias in aliases:
            try:
                store.con.execute(f"DETACH {alias}")
            except duckdb.Error:
                pass
        store.close()
        scratch.cleanup()
        if not report.written and not existed:
            into.unlink(missing_ok=True)
            Path(str(into) + ".wal").unlink(missing_ok=True)
    return report


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
