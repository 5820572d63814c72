"""Reads that image-reliance scores need: a run's parsed answers and a task's stored samples."""

from __future__ import annotations

from typing import Any

from evalkit.results.store import Store, loads
from evalkit.sample import Sample


def parsed_answers(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """sample id -> stored parsed answer (`Parsed.to_json()`) of every generation of a run that did not fail."""
    rows = store.con.execute(
        "SELECT sample_id, parsed FROM generations WHERE run_id = ? AND error IS NULL ORDER BY sample_id", [run_id]
    ).fetchall()
    return {sid: loads(parsed, {}) or {} for sid, parsed in rows}


def stored_samples(store: Store, task: str) -> dict[str, Sample]:
    """The samples a task's runs stored (references, prompt variables, meta), by sample id."""
    rows = store.con.execute(
        "SELECT sample_id, image_paths, prompt_vars, reference_text, reference_boxes, reference_labels, meta, "
        "cluster, units FROM samples WHERE task = ? ORDER BY sample_id",
        [task],
    ).fetchall()
    return {
        sid: Sample(
            sample_id=sid,
            task=task,
            image_paths=loads(paths, []) or [],
            prompt_vars=loads(prompt_vars, {}) or {},
            reference_text=text,
            reference_boxes=loads(boxes, []) or [],
            reference_labels=loads(labels, []) or [],
            meta=loads(meta, {}) or {},
            cluster=cluster or "",
            units=loads(units, {}) or {},
        )
        for sid, paths, prompt_vars, text, boxes, labels, meta, cluster, units in rows
    }
