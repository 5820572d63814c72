"""Reads for the RL-health diagnostics that compare a run's stored outputs with another run's (a baseline's answer
per sample) or with its own decoding settings (answers cut at the token limit): evalkit/views/health.py."""

from __future__ import annotations

from typing import Any

from evalkit.results.store import Store, loads


def run_outputs(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Per sample id: the parsed answer (dict), the generated tokens (None when not recorded) and the error."""
    rows = store.query("SELECT sample_id, parsed, tokens, error FROM generations WHERE run_id = ?", [run_id])
    return {
        r["sample_id"]: {"parsed": loads(r["parsed"], {}), "tokens": r["tokens"], "error": r["error"]} for r in rows
    }
