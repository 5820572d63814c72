"""Kept so that `from evalkit.store import Store` goes on working; the schema and store live in evalkit.results."""

from evalkit.results.store import DEFAULT_DB, Store, dumps, loads

__all__ = ["DEFAULT_DB", "Store", "dumps", "loads"]
