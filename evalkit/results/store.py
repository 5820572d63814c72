"""The DuckDB store: the only place results live. Everything downstream (leaderboard, site, gate) reads it.

Looking at results during a run: DuckDB lets one process at a time hold a file for writing, and no reader in
while it does. So a writer keeps its connection only around its transactions: the runner closes the file
before each slow step (a generate or scoring call that took over `SLOW_STEP_S` last time) and at least every
`HOLD_S` seconds, and every open retries on the lock for `EVALKIT_DB_WAIT_S` seconds (default 120), then says
which process holds the file. A reader thus waits at most about one batch.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from evalkit.errors import EvalkitError
from evalkit.results.schema import SCHEMA_VERSION, TABLES, ensure_schema, stored_version

DEFAULT_DB = Path("results/evalkit.duckdb")
DEFAULT_WAIT_S = 120.0
HOLD_S = 0.5  # a writer closes the file at least this often (seconds), so readers get in
SLOW_STEP_S = 0.2  # a step (generate, score) slower than this last time runs with the file closed
_LOCK_HOLDER = re.compile(r"PID (\d+)")


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


def _holder(message: str) -> str:
    """'PID 123 (python -m evalkit run ...)' from DuckDB's lock error, as far as /proc tells."""
    found = _LOCK_HOLDER.search(message)
    if not found:
        return "another process"
    pid = found.group(1)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        command = ""
    return f"process {pid}" + (f" ({command[:160]})" if command else "")


def wait_seconds() -> float:
    try:
        return float(os.environ.get("EVALKIT_DB_WAIT_S", DEFAULT_WAIT_S))
    except ValueError as exc:
        value = os.environ["EVALKIT_DB_WAIT_S"]
        raise EvalkitError(f"EVALKIT_DB_WAIT_S must be a number of seconds, not {value!r}") from exc


def connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Open `path`, retrying while another process holds its lock; EvalkitError naming the holder after wait_s."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise EvalkitError(f"{path}: cannot open the results database: {exc}") from exc
            if time.monotonic() >= deadline:
                raise EvalkitError(
                    f"{path}: held by {_holder(message)} for more than {wait_s:g}s; wait for it to finish, "
                    "or raise EVALKIT_DB_WAIT_S"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


class Store:
    """A DuckDB connection with the evalkit schema. Writes are transactional per batch.

    `con` opens the file on first use; `release()` closes it between batches so other processes can open it.
    """

    def __init__(self, path: str | Path = DEFAULT_DB, read_only: bool = False, wait_s: float | None = None) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.wait_s = wait_seconds() if wait_s is None else wait_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened_at = 0.0
        self._in_transaction = False
        if read_only and not self.path.exists():
            raise EvalkitError(f"{self.path}: no results database here (run `evalkit run` or `evalkit demo` first)")
        if not read_only:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise EvalkitError(
                    f"{self.path}: cannot create its folder ({exc.strerror or exc}); give --db a writable path"
                ) from None
        if read_only:
            self._migrate_for_reading()
        else:
            ensure_schema(self.con, str(self.path))

    def _migrate_for_reading(self) -> None:
        """A reader of an older file migrates it once (briefly as a writer), then reads it read-only."""
        version = stored_version(self.con)
        if version == SCHEMA_VERSION:
            return
        if version is None:
            # Not a file evalkit made: a reader never creates tables in it (it may be another application's).
            self.release()
            raise EvalkitError(
                f"{self.path}: not an evalkit results database (it holds none of evalkit's tables); nothing was "
                "read or changed; give --db the file `evalkit run` or `evalkit demo` wrote"
            )
        if version is not None and version > SCHEMA_VERSION:
            ensure_schema(self.con, str(self.path))  # raises: written by a newer evalkit
        self.release()
        try:
            with Store(self.path, wait_s=self.wait_s):
                pass
        except (OSError, duckdb.IOException, duckdb.PermissionException) as exc:
            raise EvalkitError(
                f"{self.path}: results schema {version} needs migrating to {SCHEMA_VERSION} and the file is not "
                f"writable here ({exc}); open it once with write access (e.g. `evalkit leaderboard` as its owner)"
            ) from None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.path, self.read_only, self.wait_s)
            self._opened_at = time.monotonic()
        return self._con

    def release(self, held_s: float = 0.0) -> None:
        """Close the file between batches (a no-op inside a transaction); the next use reopens it.

        With `held_s`, only once the connection has been open that long: an open costs 30-70 ms here, so a fast
        writer lets readers in every `held_s` seconds instead of after every batch.
        """
        if self._con is None or self._in_transaction:
            return
        if held_s and time.monotonic() - self._opened_at < held_s:
            return
        self._con.close()
        self._con = None

    def close(self) -> None:
        if self._in_transaction and self._con is not None:
            self._con.execute("ROLLBACK")
        self._in_transaction = False
        self.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self):
        con = self.con
        con.execute("BEGIN TRANSACTION")
        self._in_transaction = True
        try:
            yield con
        except BaseException:
            self._in_transaction = False
            con.execute("ROLLBACK")
            raise
        self._in_transaction = False
        con.execute("COMMIT")

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
        """INSERT OR REPLACE many rows through a registered Arrow table, by column name.

        DuckDB's executemany costs about 4 ms a row here; Arrow makes a 3,000-sample batch a few milliseconds.
        """
        if not rows:
            return
        unknown = [c for c in columns if c not in TABLES[table].column_names]
        if unknown:
            raise ValueError(f"table {table} has no column(s) {unknown}")
        import pyarrow as pa

        data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
        name = f"_rows_{table}"
        self.con.register(name, pa.table(data))
        try:
            self.con.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) SELECT * FROM {name}")
        finally:
            self.con.unregister(name)

    def insert_dicts(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        """`insert_rows` for dicts (all with the same keys): no positional column lists anywhere."""
        if rows:
            columns = list(rows[0])
            self.insert_rows(table, columns, [[r[c] for c in columns] for r in rows])

    # --- runs -------------------------------------------------------------------------------------------------
    def upsert_run(self, row: dict[str, Any]) -> None:
        """A new run, or an existing one set running again with what this invocation runs (spec, card, size)."""
        existing = self.query("SELECT started_at FROM runs WHERE run_id = ?", [row["run_id"]])
        if existing:
            updated = ("status", "git_sha", "evalkit_version", "task_spec", "card", "task_size", "access")
            self.con.execute(
                f"UPDATE runs SET finished_at = NULL, {', '.join(f'{c} = ?' for c in updated)} WHERE run_id = ?",
                [*(row.get(c) for c in updated), row["run_id"]],
            )
            return
        self.insert_dicts("runs", [row])

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
        rows = [list(r) for r in rows]
        tasks = sorted({r[0] for r in rows})
        stored = {
            tuple(r)
            for r in self.con.execute(
                f"SELECT {', '.join(columns)} FROM samples WHERE list_contains(?::VARCHAR[], task)", [tasks]
            ).fetchall()
        }
        # Only new or changed samples are written: a rerun stores the same rows again otherwise.
        self.insert_rows("samples", columns, [r for r in rows if tuple(r) not in stored])

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
