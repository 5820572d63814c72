"""Stored runs with planted intra-cluster correlation, written straight into a results database.

The statistics read only the store, so a test can plant exactly the structure it needs: `n_clusters` units of
`size` samples each, a per-unit effect with intra-cluster correlation `icc` (variance share of the unit), and a
per-model shift.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from evalkit.store import Store, dumps


def planted(rng: np.random.Generator, n_clusters: int, size: int, icc: float, sd: float = 0.2) -> np.ndarray:
    """(n_clusters * size,) values: 0.5 + unit effect + noise, total SD `sd`, cluster share `icc` of the variance."""
    unit = rng.normal(0, sd * np.sqrt(icc), n_clusters)
    noise = rng.normal(0, sd * np.sqrt(1 - icc), (n_clusters, size))
    return (0.5 + unit[:, None] + noise).ravel()


def cluster_keys(n_clusters: int, size: int, unit: str = "image") -> list[str]:
    return [f"{unit}:{c}" for c in range(n_clusters) for _ in range(size)]


def write_runs(
    db: Path,
    task: str,
    values: dict[str, np.ndarray],
    clusters: list[str] | None,
    metric: str = "miou",
    units: list[dict[str, str]] | None = None,
) -> dict[str, str]:
    """One finished run per model of `task` with per-sample `metric` values; returns model -> run id."""
    n = len(next(iter(values.values())))
    ids = [f"{task}-s{i:05d}" for i in range(n)]
    start = datetime(2026, 1, 1)
    runs = {}
    with Store(db) as store:
        store.put_samples(
            [
                task,
                sid,
                "[]",
                "{}",
                None,
                "[]",
                "[]",
                "{}",
                clusters[i] if clusters else "",
                dumps(units[i] if units else ({"image": clusters[i]} if clusters else {})),
            ]
            for i, sid in enumerate(ids)
        )
        for k, (model, column) in enumerate(values.items()):
            run_id = f"{task}-{model}"
            runs[model] = run_id
            store.upsert_run(
                {
                    "run_id": run_id,
                    "task": task,
                    "task_version": "1",
                    "model": model,
                    "started_at": start + timedelta(minutes=k),
                    "status": "finished",
                    "access": "public",
                    "task_size": n,
                }
            )
            # A score counts for a run when the run generated the sample and the aggregate names its identity.
            store.insert_rows("generations", ("run_id", "sample_id", "text"), [[run_id, sid, ""] for sid in ids])
            store.insert_rows(
                "scores",
                ("run_id", "sample_id", "metric", "metric_version", "score_key", "value", "stats"),
                [[run_id, sid, metric, "1", "planted", float(v), "{}"] for sid, v in zip(ids, column, strict=True)],
            )
            store.insert_dicts(
                "run_metrics",
                [
                    {
                        **{"run_id": run_id, "metric": metric, "metric_version": "1", "status": "ok", "reason": None},
                        **{"value": float(np.mean(column)), "n": n, "score_key": "planted", "options": "{}"},
                        **{"higher_is_better": True, "is_primary": True, "position": 0},
                    }
                ],
            )
            store.finish_run(run_id, "finished", n, {})
    return runs
