"""`evalkit merge`'s entry point: the merge itself (all its SQL) lives in evalkit/results/merge.py; this module
hands it the stored-CI refresh (evalkit/stored_cis.py, which sits above the results package) and keeps the names
that `evalkit.merge` offered before the move importable here for one release."""

from __future__ import annotations

from pathlib import Path

from evalkit.results import merge as _merge
from evalkit.results.merge import (  # noqa: F401 (the names `evalkit.merge` had)
    CACHE_VALUE,
    CACHES,
    KNOWN_TABLES,
    MEMORY_ENV,
    MEMORY_LIMIT,
    ON_CONFLICT,
    RUN_BOOKKEEPING,
    RUN_IDENTITY,
    RUN_TABLES,
    SAMPLE_CONTENT,
    STEP_ROWS,
    Conflict,
    MergeReport,
    _MergeLock,
    _Merger,
)
from evalkit.stored_cis import refresh


def merge_databases(sources: list[Path], into: Path, on_conflict: str = "fail") -> MergeReport:
    """Fold `sources` (in order) into `into` and refresh the stored CIs of every run whose aggregates were
    recomputed (see evalkit.results.merge.merge_databases for the rules and arguments)."""
    return _merge.merge_databases(sources, into, on_conflict, refresh_cis=refresh)
