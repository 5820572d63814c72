"""The `published` table: ledger records a user added to a results database (`evalkit published add`).

Rows hold the ledger's fields as text (evalkit.published.FIELDS); `table` and `column` are SQL words, so they are
stored as `source_table` and `source_column`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from evalkit.results.store import Store

_RENAMED = {"table": "source_table", "column": "source_column"}
_BACK = {v: k for k, v in _RENAMED.items()}


def published_rows(store: Store) -> list[dict[str, Any]]:
    """Every stored record as ledger fields, by source, table and model."""
    if not store.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'published'"):
        return []  # a file opened read-only before the table existed
    rows = store.query("SELECT * FROM published ORDER BY source, source_table, model, origin")
    return [{_BACK.get(k, k): v for k, v in row.items() if k not in ("origin", "added_at")} for row in rows]


def put_published(store: Store, rows: Sequence[dict[str, Any]], origin: str) -> None:
    """Add (or replace, by source, table, model, task and column) records, all in one transaction."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with store.transaction():
        store.insert_dicts(
            "published",
            [{**{_RENAMED.get(k, k): v for k, v in r.items()}, "origin": origin, "added_at": now} for r in rows],
        )
