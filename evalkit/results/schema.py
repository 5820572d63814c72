"""The results schema: every table's columns in one place, its version, and the steps that migrate older files.

Adding a column or a table is one line in `TABLES`: `ensure_schema` rebuilds any table whose columns or primary
key differ from the declaration, copying rows by column name (new columns are NULL in old rows). A numbered step
in `MIGRATIONS` (which bumps `SCHEMA_VERSION`) is needed only when old rows need computed values.
JSON columns are VARCHAR so that no DuckDB extension (a download) is ever needed.

Version 0 is the format before versions existed (no `schema_info` table); version 1 keys scores on their full
identity (`score_key`) and stores what each run ran (task spec, per-metric options, fingerprint, direction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from evalkit.errors import EvalkitError


@dataclass(frozen=True)
class Table:
    """A table's columns and primary key. `backfill`: SQL giving a new column's value in rows of a file that
    lacks it, where NULL will not do (a primary-key column)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...] = ()
    backfill: tuple[tuple[str, str], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def ddl(self, name: str | None = None) -> str:
        parts = [f"{c} {t}" for c, t in self.columns]
        if self.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {name or self.name} ({', '.join(parts)})"


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """'name TYPE, name TYPE' -> pairs; keeps each table's declaration on a few readable lines."""
    return tuple(tuple(part.split()) for part in spec.split(","))  # type: ignore[misc]


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("schema_info", _cols("key VARCHAR, value VARCHAR"), ("key",)),
        Table(
            "runs",
            _cols(
                "run_id VARCHAR, task VARCHAR, task_version VARCHAR, model VARCHAR, model_fingerprint VARCHAR,"
                "adapter VARCHAR, card VARCHAR, decoding VARCHAR, access VARCHAR, evalkit_version VARCHAR,"
                "git_sha VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, n_samples INTEGER,"
                "summary VARCHAR, task_spec VARCHAR, task_size INTEGER,"
                "profile VARCHAR"  # set only for a run under another profile than its task's own (--profile)
            ),
            ("run_id",),
        ),
        Table(
            "samples",
            _cols(
                "task VARCHAR, sample_id VARCHAR, image_paths VARCHAR, prompt_vars VARCHAR, reference_text VARCHAR,"
                "reference_boxes VARCHAR, reference_labels VARCHAR, meta VARCHAR,"
                "cluster VARCHAR,"  # the sample's resampling unit (evalkit.sample.Sample.cluster)
                "units VARCHAR"  # JSON {image, study, patient} keys (Sample.units)
            ),
            ("task", "sample_id"),
        ),
        Table(
            "generations",
            _cols(
                "run_id VARCHAR, sample_id VARCHAR, prompt_hash VARCHAR, prompt VARCHAR, text VARCHAR, parsed VARCHAR,"
                "tokens INTEGER, latency DOUBLE, error VARCHAR, cache_key VARCHAR, error_file VARCHAR"
            ),
            ("run_id", "sample_id"),
        ),
        Table(
            "scores",
            _cols(
                "run_id VARCHAR, sample_id VARCHAR, metric VARCHAR, metric_version VARCHAR, score_key VARCHAR,"
                "value DOUBLE, stats VARCHAR"
            ),
            ("run_id", "sample_id", "metric", "score_key"),
            backfill=(("score_key", "'legacy:' || coalesce(metric_version, '')"),),
        ),
        Table(
            "run_metrics",
            _cols(
                "run_id VARCHAR, metric VARCHAR, metric_version VARCHAR, status VARCHAR, reason VARCHAR, value DOUBLE,"
                "n INTEGER, score_key VARCHAR, options VARCHAR, fingerprint VARCHAR, higher_is_better BOOLEAN,"
                "is_primary BOOLEAN, position INTEGER, errored VARCHAR, n_errored INTEGER"
            ),
            ("run_id", "metric"),
        ),
        Table(
            "intervals",  # display CIs stored when a run finishes (evalkit/results/intervals.py)
            _cols(
                "run_id VARCHAR, metric VARCHAR, score_key VARCHAR, n_boot INTEGER, seed BIGINT, level DOUBLE,"
                "value DOUBLE, ci_low DOUBLE, ci_high DOUBLE, n INTEGER, n_boot_used INTEGER, vectorised BOOLEAN,"
                "cluster VARCHAR, unit VARCHAR, n_clusters INTEGER"
            ),
            ("run_id", "metric", "n_boot", "seed", "level", "cluster"),
        ),
        Table(
            "generation_cache",
            _cols("cache_key VARCHAR, text VARCHAR, tokens INTEGER, latency DOUBLE, created_at TIMESTAMP"),
            ("cache_key",),
        ),
        Table(
            "published",  # ledger records a user added (evalkit/results/published.py; evalkit.published.FIELDS)
            _cols(
                "source VARCHAR, citation VARCHAR, source_table VARCHAR, file VARCHAR, repository VARCHAR,"
                "commit VARCHAR, model VARCHAR, task VARCHAR, dataset VARCHAR, n VARCHAR, source_column VARCHAR,"
                "printed VARCHAR, value VARCHAR, scale VARCHAR, metric VARCHAR, convention VARCHAR,"
                "training_reward VARCHAR, note VARCHAR, origin VARCHAR, added_at TIMESTAMP"
            ),
            ("source", "source_table", "model", "task", "source_column"),
        ),
        Table(
            "annotation_cache",
            _cols("annotator VARCHAR, annotator_version VARCHAR, text_hash VARCHAR, value VARCHAR"),
            ("annotator", "annotator_version", "text_hash"),
        ),
    )
}
RESULT_TABLES = tuple(name for name in TABLES if name != "schema_info")


# A score written before identities existed gets the key 'legacy:<version>': its options and weights are
# unknown, so it never matches a new run's identity (which re-scores from the stored generations), yet the old
# aggregates point at it and render as they were.


def _fill_identities_v1(con: duckdb.DuckDBPyConnection) -> None:
    """v0 -> v1: legacy score keys (scores got theirs in the rebuild), and per run what can be known of what it
    ran (see evalkit/results/backfill.py)."""
    con.execute(
        "UPDATE run_metrics SET score_key = 'legacy:' || coalesce(metric_version, ''), errored = 'zero' "
        "WHERE score_key IS NULL AND status = 'ok'"
    )
    from evalkit.results.backfill import backfill_runs

    backfill_runs(con)


MIGRATIONS: dict[int, Callable[[duckdb.DuckDBPyConnection], None]] = {1: _fill_identities_v1}
SCHEMA_VERSION = max(MIGRATIONS)


def _existing(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[dict[str, str], list[str]]]:
    """Tables of the open file: name -> ({column: type}, primary key)."""
    columns: dict[str, dict[str, str]] = {}
    for table, column, kind in con.execute(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = 'main' ORDER BY table_name, column_index"
    ).fetchall():
        columns.setdefault(table, {})[column] = kind
    keys = {
        table: list(cols)
        for table, cols in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND constraint_type = 'PRIMARY KEY'"
        ).fetchall()
    }
    return {t: (cols, keys.get(t, [])) for t, cols in columns.items()}


def stored_version(con: duckdb.DuckDBPyConnection) -> int | None:
    """The file's schema version: None for an empty file, 0 for the format before versions."""
    tables = _existing(con)
    if "schema_info" in tables:
        rows = con.execute("SELECT value FROM schema_info WHERE key = 'version'").fetchall()
        return int(rows[0][0]) if rows else 0
    return 0 if set(tables) & set(RESULT_TABLES) else None


def _current(table: Table, found: tuple[dict[str, str], list[str]]) -> bool:
    # Columns the file has beyond the declaration (written by a newer branch) are kept, not a reason to rebuild.
    return set(table.column_names) <= set(found[0]) and list(table.primary_key) == found[1]


def _rebuild(con: duckdb.DuckDBPyConnection, table: Table, old_columns: dict[str, str]) -> None:
    # DuckDB cannot change a primary key in place (nor add columns to every indexed table): copy by name, and
    # carry along any column the file has that this code does not declare.
    extra = tuple((c, t) for c, t in old_columns.items() if c not in table.column_names)
    wide = Table(table.name, table.columns + extra, table.primary_key)
    fills = {c: sql for c, sql in table.backfill if c not in old_columns}
    keep = [c for c in wide.column_names if c in old_columns or c in fills]
    values = [fills.get(c, c) for c in keep]
    con.execute(wide.ddl(f"{table.name}__new"))
    con.execute(f"INSERT INTO {table.name}__new ({', '.join(keep)}) SELECT {', '.join(values)} FROM {table.name}")
    con.execute(f"DROP TABLE {table.name}")
    con.execute(f"ALTER TABLE {table.name}__new RENAME TO {table.name}")


def ensure_schema(con: duckdb.DuckDBPyConnection, where: str = "") -> int | None:
    """Create missing tables, bring old ones to the declared columns and keys, run pending migration steps.

    One transaction: a crash mid-migration leaves the file as it was. Returns the version found (None: new file).
    """
    found = stored_version(con)
    if found is not None and found > SCHEMA_VERSION:
        raise EvalkitError(
            f"{where}: written by a newer evalkit (results schema {found}; this one reads up to {SCHEMA_VERSION}); "
            "upgrade evalkit to read it"
        )
    tables = _existing(con)
    if found == SCHEMA_VERSION and all(name in tables and _current(t, tables[name]) for name, t in TABLES.items()):
        return found
    con.execute("BEGIN TRANSACTION")
    try:
        for name, table in TABLES.items():
            if name not in tables:
                con.execute(table.ddl())
            elif not _current(table, tables[name]):
                _rebuild(con, table, tables[name][0])
        for version in range(1 if found is None else found + 1, SCHEMA_VERSION + 1):
            if found is not None:
                MIGRATIONS[version](con)
        con.execute("INSERT OR REPLACE INTO schema_info VALUES ('version', ?)", [str(SCHEMA_VERSION)])
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")
    return found
