"""What a run written before schema 1 ran, recovered once at migration time.

Old files hold no task spec and no metric options or directions. At migration the only source is the task
YAML of the same name *and version* (a version bump is how a task says its content changed); the spec copied
from it is marked `_provenance: migrated` in `runs.task_spec`. Directions come from the metric classes. After
this one step the file holds everything its readers need, so it renders the same when YAML files change later.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from evalkit.errors import EvalkitError


def _task_specs() -> dict[str, Any]:
    try:
        from evalkit.registry import all_tasks

        return all_tasks()
    except EvalkitError:
        return {}


def _direction(metric: str) -> bool:
    from evalkit.metrics import metric_class

    try:
        return bool(metric_class(metric).higher_is_better)
    except EvalkitError:
        return True


def backfill_runs(con: duckdb.DuckDBPyConnection) -> None:
    specs = _task_specs()
    runs = con.execute(
        "SELECT run_id, task, task_version, n_samples FROM runs WHERE task_spec IS NULL OR task_size IS NULL"
    ).fetchall()
    for run_id, task, version, n_samples in runs:
        current = specs.get(task)
        spec = current if current is not None and str(current.version) == str(version) else None
        # Display order and the primary flag are not part of what was computed: where the YAML of that version is
        # gone, today's task still says which column leads (old readers took it from there too); options and the
        # stored spec come only from the same version.
        layout = spec or current
        stored = None
        if spec is not None:
            stored = json.dumps({**spec.model_dump(mode="json"), "_provenance": "migrated"}, sort_keys=True)
        known = con.execute("SELECT count(*) FROM samples WHERE task = ?", [task]).fetchall()[0][0]
        con.execute(
            "UPDATE runs SET task_spec = coalesce(task_spec, ?), task_size = coalesce(task_size, ?) WHERE run_id = ?",
            [stored, max(int(n_samples or 0), int(known)), run_id],
        )
        order = [m.name for m in layout.metrics] if layout else []
        options = {m.name: m.options for m in spec.metrics} if spec else {}
        names = [r[0] for r in con.execute("SELECT metric FROM run_metrics WHERE run_id = ?", [run_id]).fetchall()]
        ranked = sorted(names, key=lambda m: (order.index(m) if m in order else len(order), m))
        for position, name in enumerate(ranked):
            con.execute(
                "UPDATE run_metrics SET higher_is_better = ?, is_primary = ?, position = ?, "
                "options = coalesce(options, ?) WHERE run_id = ? AND metric = ?",
                [
                    _direction(name),
                    bool(layout and layout.primary_metric == name),
                    position,
                    json.dumps(options.get(name, {}), sort_keys=True),
                    run_id,
                    name,
                ],
            )
