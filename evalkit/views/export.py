"""Per-sample export: one row per (run, sample) with prediction, reference, 0-1 boxes, error and scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from evalkit.results.queries import run_outputs, sample_values
from evalkit.results.store import Store, loads
from evalkit.views.leaderboard import latest_runs


def export_rows(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for run in latest_runs(store, task, model):
        generations = run_outputs(store, run["run_id"], run["task"])
        scores: dict[str, dict[str, float | None]] = {}
        for sample_id, metric, value in sample_values(store, run["run_id"]):
            scores.setdefault(sample_id, {})[metric] = value
        for g in generations:
            parsed = loads(g["parsed"], {})
            rows.append(
                {
                    "run_id": run["run_id"],
                    "task": run["task"],
                    "model": run["model"],
                    "sample_id": g["sample_id"],
                    "prediction": parsed.get("answer", g["text"]),
                    "raw_output": g["text"],
                    "reference": g["reference_text"],
                    "pred_boxes": parsed.get("boxes", []),
                    "ref_boxes": loads(g["reference_boxes"], []),
                    "parse_error": parsed.get("parse_error"),
                    "error": g["error"],
                    "error_file": g["error_file"],
                    "scores": scores.get(g["sample_id"], {}),
                }
            )
    return rows


def write_rows(rows: list[dict[str, Any]], fmt: str, out: Path | None) -> None:
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        if out is None:
            sys.stdout.write(text)
        else:
            Path(out).write_text(text, encoding="utf-8")
        return
    import pandas as pd

    frame = pd.DataFrame(rows)
    if fmt == "csv":
        # Nested fields become JSON strings so that the CSV stays one row per sample.
        for column in ("pred_boxes", "ref_boxes", "scores"):
            if column in frame:
                frame[column] = frame[column].map(lambda v: json.dumps(v))
        frame.to_csv(out if out is not None else sys.stdout, index=False)
    else:
        frame["pred_boxes"] = frame["pred_boxes"].map(lambda v: json.dumps(v))
        frame["ref_boxes"] = frame["ref_boxes"].map(lambda v: json.dumps(v))
        frame["scores"] = frame["scores"].map(lambda v: json.dumps(v))
        frame.to_parquet(out, index=False)
