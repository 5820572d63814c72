"""Results: the DuckDB schema (`schema`), the store that writes it (`store`) and the queries that read it
(`queries`). Nothing outside this package writes SQL against the schema's tables by position."""

from evalkit.results.schema import RESULT_TABLES, SCHEMA_VERSION, TABLES
from evalkit.results.store import DEFAULT_DB, Store, dumps, loads

__all__ = ["DEFAULT_DB", "RESULT_TABLES", "SCHEMA_VERSION", "TABLES", "Store", "dumps", "loads"]
