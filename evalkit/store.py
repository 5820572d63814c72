"""DuckDB store: the only place results live. Everything downstream (leaderboard, site, gate) reads it.

Tables follow DESIGN.md: `runs`, `samples`, `generations`, `scores`, `run_metrics`, and two content-addressed
caches: `generation_cache` (model fingerprint + prompt + image hashes + decoding -> text) and
`annotation_cache` (annotator + version + text hash -> annotation, e.g. RadGraph graphs, CheXbert labels).
JSON columns are stored as VARCHAR so that no DuckDB extension (a download) is ever needed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from evalkit.errors import EvalkitError

DEFAULT_DB = Path("results/evalkit.duckdb")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, task VARCHAR, task_version VARCHAR, model VARCHAR, model_fingerprint VARCHAR,
    adapter VARCHAR, card VARCHAR, decoding VARCHAR, access VARCHAR, evalkit_version VARCHAR, git_sha VARCHAR,
    started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR, n_samples INTEGER, summary VARCHAR
);
CREATE TABLE IF NOT EXISTS samples (
    task VARCHAR, sample_id VARCHAR, image_paths VARCHAR, prompt_vars VARCHAR, reference_text VARCHAR,
    reference_boxes VARCHAR, reference_labels VARCHAR, meta VARCHAR, cluster VARCHAR, units VARCHAR,
    PRIMARY KEY (task, sample_id)
);
CREATE TABLE IF NOT EXISTS generations (
    run_id VARCHAR, sample_id VARCHAR, prompt_hash VARCHAR, prompt VARCHAR, text VARCHAR, parsed VARCHAR,
    tokens INTEGER, latency DOUBLE, error VARCHAR, cache_key VARCHAR, PRIMARY KEY (run_id, sample_id)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id VARCHAR, sample_id VARCHAR, metric VARCHAR, metric_version VARCHAR, value DOUBLE, stats VARCHAR,
    PRIMARY KEY (run_id, sample_id, metric)
);
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id VARCHAR, metric VARCHAR, metric_version VARCHAR, status VARCHAR, reason VARCHAR, value DOUBLE,
    n INTEGER, PRIMARY KEY (run_id, metric)
);
CREATE TABLE IF NOT EXISTS generation_cache (
    cache_key VARCHAR PRIMARY KEY, text VARCHAR, tokens INTEGER, latency DOUBLE, created_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS annotation_cache (
    annotator VARCHAR, annotator_version VARCHAR, text_hash VARCHAR, value VARCHAR,
    PRIMARY KEY (annotator, annotator_version, text_hash)
);
"""
# Columns added after a table was first released: (table, column, type). Older files get them on open for write;
# readers of a file opened read-only check `has_column` instead.
ADDED_COLUMNS = (
    ("samples", "cluster", "VARCHAR"),  # the sample's resampling unit (evalkit.sample.Sample.cluster)
    ("samples", "units", "VARCHAR"),  # JSON {image, study, patient} keys (Sample.units)
)


def dumps(value: Any) -> str:
    """JSON with NaN/inf mapped to null, so stored JSON is valid everywhere."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), ensure_ascii=False, default=str)


def loads(value: str | None, default: Any = None) -> Any:
    return default if value is None else json.loads(value)


class Store:
    """A DuckDB connection with the evalkit schema. Writes are transactional per batch."""

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False) -> None:
        self.path = Path(path)
        if read_only and not self.path.exists():
            raise EvalkitError(f"{self.path}: no results database here (run `evalkit run` or `evalkit demo` first)")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise EvalkitError(f"{self.path}: cannot open the results database: {exc}") from exc
        if not read_only:
            self.con.execute(SCHEMA)
            for table, column, kind in ADDED_COLUMNS:
                self.con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def has_column(self, table: str, column: str) -> bool:
        rows = self.con.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
        ).fetchall()
        return bool(rows)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, params or [])
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """INSERT OR REPLACE many rows through a registered Arrow table.

        DuckDB's executemany costs about 4 ms a row here; Arrow makes a 3,000-sample batch a few milliseconds.
        """
        if not rows:
            return
        import pyarrow as pa

        data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        name = f"_rows_{table}"
        self.con.register(name, pa.table(data))
        try:
            self.con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) SELECT * FROM {name}")
        finally:
            self.con.unregister(name)

    # --- runs -------------------------------------------------------------------------------------------------
    def upsert_run(self, row: dict[str, Any]) -> None:
        existing = self.query("SELECT started_at FROM runs WHERE run_id = ?", [row["run_id"]])
        if existing:
            self.con.execute(
                "UPDATE runs SET status = ?, finished_at = NULL, git_sha = ?, evalkit_version = ? WHERE run_id = ?",
                [row["status"], row.get("git_sha"), row.get("evalkit_version"), row["run_id"]],
            )
            return
        columns = list(row)
        self.con.execute(
            f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [row[c] for c in columns],
        )

    def finish_run(self, run_id: str, status: str, n_samples: int, summary: dict[str, Any]) -> None:
        self.con.execute(
            "UPDATE runs SET status = ?, finished_at = now(), n_samples = ?, summary = ? WHERE run_id = ?",
            [status, n_samples, dumps(summary), run_id],
        )

    # --- samples ----------------------------------------------------------------------------------------------
    def put_samples(self, rows: Iterable[Sequence[Any]]) -> None:
        columns = (
            "task",
            "sample_id",
            "image_paths",
            "prompt_vars",
            "reference_text",
            "reference_boxes",
            "reference_labels",
            "meta",
            "cluster",
            "units",
        )
        self.insert_rows("samples", columns, list(rows))

    def sample_units(self, task: str) -> dict[str, tuple[str, dict[str, str]]]:
        """Per sample id of a task: (cluster key, units). Empty for a file written before clusters were stored."""
        if not self.has_column("samples", "cluster"):
            return {}
        rows = self.con.execute("SELECT sample_id, cluster, units FROM samples WHERE task = ?", [task]).fetchall()
        return {sid: (cluster or "", loads(units, {}) or {}) for sid, cluster, units in rows}

    # --- generations ------------------------------------------------------------------------------------------
    def done_sample_ids(self, run_id: str) -> set[str]:
        """Samples with a successful generation; errored ones are retried on resume."""
        rows = self.con.execute(
            "SELECT sample_id FROM generations WHERE run_id = ? AND error IS NULL", [run_id]
        ).fetchall()
        return {r[0] for r in rows}

    def cached_generations(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        placeholders = ", ".join("?" for _ in keys)
        rows = self.query(f"SELECT * FROM generation_cache WHERE cache_key IN ({placeholders})", list(keys))
        return {r["cache_key"]: r for r in rows}

    # --- annotation cache (model-backed metrics) ---------------------------------------------------------------
    def get_annotations(self, annotator: str, version: str, text_hashes: Sequence[str]) -> dict[str, Any]:
        if not text_hashes:
            return {}
        import pyarrow as pa

        # A registered Arrow table, not executemany: DuckDB's executemany costs ~5 ms a row.
        self.con.register("_wanted_hashes", pa.table({"h": sorted(set(text_hashes))}))
        try:
            rows = self.con.execute(
                "SELECT a.text_hash, a.value FROM annotation_cache a JOIN _wanted_hashes w ON a.text_hash = w.h "
                "WHERE a.annotator = ? AND a.annotator_version = ?",
                [annotator, version],
            ).fetchall()
        finally:
            self.con.unregister("_wanted_hashes")
        return {h: json.loads(v) for h, v in rows}

    def put_annotations(self, annotator: str, version: str, values: dict[str, Any]) -> None:
        self.insert_rows(
            "annotation_cache",
            ("annotator", "annotator_version", "text_hash", "value"),
            [[annotator, version, h, dumps(v)] for h, v in values.items()],
        )
