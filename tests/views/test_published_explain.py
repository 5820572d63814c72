"""`evalkit published explain`: from a run's stored scores, the convention of a published number that lands it
inside the run's 95% CI (RadCliQ inverse, RadGraph level, CheXbert label set and average, mAP definition)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers.clustered import cluster_keys
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.published import FIELDS
from evalkit.store import Store, dumps

RUNNER = CliRunner()
NAME = "Planted (paper)"
N_CLUSTERS, SIZE = 100, 3
# Corpus metrics (CheXbert F1, COCO AP50) are not re-aggregated from planted per-sample values here: their display
# CIs are stored, as a finished run stores them, (value, half width).
STORED_CIS = {
    "chexbert_micro_f1_14": (0.50, 0.02),
    "chexbert_macro_f1_14": (0.35, 0.02),
    "chexbert_micro_f1_5": (0.60, 0.02),
    "chexbert_macro_f1_5": (0.45, 0.02),
    "radvlm_map50": (0.60, 0.02),
    "coco_ap50": (0.45, 0.02),
}


def _plant(db: Path, task: str, metrics: dict[str, np.ndarray]) -> str:
    """One finished run of `task` holding every metric's per-sample values (one store open: fast)."""
    keys = cluster_keys(N_CLUSTERS, SIZE)
    n = len(keys)
    ids = [f"{task}-s{i:05d}" for i in range(n)]
    run_id = f"{task}-planted"
    with Store(db) as store:
        store.put_samples([task, sid, "[]", "{}", None, "[]", "[]", "{}", keys[i], dumps({"image": keys[i]})]
                          for i, sid in enumerate(ids))  # fmt: skip
        store.upsert_run({"run_id": run_id, "task": task, "task_version": "1", "model": "planted",
                          "started_at": datetime(2026, 1, 1), "status": "finished", "access": "public",
                          "task_size": n})  # fmt: skip
        store.insert_rows("generations", ("run_id", "sample_id", "text"), [[run_id, sid, ""] for sid in ids])
        for position, (metric, values) in enumerate(metrics.items()):
            store.insert_rows(
                "scores",
                ("run_id", "sample_id", "metric", "metric_version", "score_key", "value", "stats"),
                [[run_id, sid, metric, "1", "planted", float(v), "{}"] for sid, v in zip(ids, values, strict=True)],
            )
            value, half = STORED_CIS.get(metric, (float(np.mean(values)), None))
            store.insert_dicts("run_metrics", [
                {"run_id": run_id, "metric": metric, "metric_version": "1", "status": "ok", "reason": None,
                 "value": value, "n": n, "score_key": "planted", "options": "{}", "higher_is_better": True,
                 "is_primary": position == 0, "position": position}])  # fmt: skip
            if half is not None:
                store.insert_dicts(
                    "intervals",
                    [{"run_id": run_id, "metric": metric, "score_key": "planted", "n_boot": 2000, "seed": 0,
                      "level": 0.95, "value": value, "ci_low": value - half, "ci_high": value + half,
                      "n": n, "n_boot_used": 2000, "vectorised": False, "cluster": "auto",
                      "unit": "image", "n_clusters": N_CLUSTERS}],
                )  # fmt: skip
        store.finish_run(run_id, "finished", n, {})
    return run_id


def _records(path: Path, task: str, cells: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for column, printed, scale, metric in cells:
            writer.writerow(dict(source="planted", citation="test", table="T", file="t.png", repository="me/x",
                                 commit="abc", model=NAME, task=task, dataset="", n="", column=column, printed=printed,
                                 value=printed, scale=scale, metric=metric, convention="radvlm-grpo",
                                 training_reward="no", note=""))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("explain")
    db = folder / "r.duckdb"
    rng = np.random.default_rng(7)
    n = N_CLUSTERS * SIZE
    radcliq = rng.uniform(0.3, 2.0, n)
    levels = {f"radgraph_f1_{lvl}": np.clip(rng.normal(mean, 0.1, n), 0, 1)
              for lvl, mean in (("simple", 0.30), ("partial", 0.25), ("complete", 0.20))}  # fmt: skip
    chexbert = {m: rng.uniform(0, 1, n) for m in STORED_CIS if m.startswith("chexbert")}
    _plant(db, "phantom-report", {"radcliq_v1": radcliq, **levels, **chexbert})
    _plant(db, "phantom-abnormality-grounding", {m: rng.uniform(0, 1, n) for m in ("radvlm_map50", "coco_ap50")})
    report = _records(
        folder / "report.csv",
        "phantom-report",
        [
            ("RCQ", f"{1 / radcliq.mean():.2f}", "x1", "radcliq_v1"),  # published as 1 / mean
            ("RGF1", f"{levels['radgraph_f1_partial'].mean() * 100:.1f}", "x100", "radgraph_f1_complete"),
            ("CXb-micro", "45.3", "x100", "chexbert_micro_f1_14"),  # really the 5-label macro-F1
        ],
    )
    grounding = _records(folder / "map.csv", "phantom-abnormality-grounding", [("mAP", "45.8", "x100", "radvlm_map50")])
    for path in (report, grounding):
        result = RUNNER.invoke(app, ["published", "add", str(path), "--db", str(db)])
        assert result.exit_code == 0, result.output
    return {"db": db, "radcliq": radcliq}


def _explain(db: Path, task: str, *extra: str) -> dict[str, list[dict]]:
    result = RUNNER.invoke(app, ["published", "explain", "--task", task, "--model", "planted", "--db", str(db),
                                 "--published", NAME, "--json", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return {entry["record"]["column"]: entry["candidates"] for entry in json.loads(result.output)}


def _inside(candidates: list[dict]) -> list[str]:
    return [c["convention"] for c in candidates if c["verdict"] == "inside"]


def test_radcliq_inverse_of_the_mean_is_named_and_the_others_rejected(planted):
    (radcliq,) = _explain(planted["db"], "phantom-report", "--column", "RCQ").values()
    by = {c["convention"]: c for c in radcliq}
    assert _inside(radcliq) == ["1 / mean RadCliQ-v1"]
    values = planted["radcliq"]
    assert by["RadCliQ-v1 raw mean"]["value"] == pytest.approx(values.mean())
    assert by["RadCliQ-v1 raw mean"]["verdict"] == "outside"
    assert by["1 / mean RadCliQ-v1"]["value"] == pytest.approx(1 / values.mean())
    assert by["mean of 1 / RadCliQ-v1"]["value"] == pytest.approx(np.mean(1 / values))
    assert by["mean of 1 / RadCliQ-v1"]["verdict"] == "outside"
    low, high = by["mean of 1 / RadCliQ-v1"]["ci_low"], by["mean of 1 / RadCliQ-v1"]["ci_high"]
    assert low < np.mean(1 / values) < high
    assert radcliq[-1]["verdict"] == "not stored" and "idf" in radcliq[-1]["convention"]


def test_radgraph_level_and_chexbert_set_and_average(planted):
    found = _explain(planted["db"], "phantom-report")
    assert _inside(found["RGF1"]) == ["RadGraph F1 partial"]
    verdicts = {c["metric"]: c["verdict"] for c in found["RGF1"]}
    assert verdicts == {"radgraph_f1_simple": "outside", "radgraph_f1_partial": "inside",
                        "radgraph_f1_complete": "outside", "radgraph_combined": "not stored"}  # fmt: skip
    assert _inside(found["CXb-micro"]) == ["CheXbert macro-F1, 5 labels"]
    assert len([c for c in found["CXb-micro"] if c["verdict"] == "outside"]) == 3


def test_map_definition(planted):
    (grounding,) = _explain(planted["db"], "phantom-abnormality-grounding").values()
    assert _inside(grounding) == ["COCO AP50"]
    assert {c["convention"]: c["verdict"] for c in grounding}["seed mAP@0.5"] == "outside"


def test_text_output_and_errors(planted):
    text = RUNNER.invoke(app, ["published", "explain", "-t", "phantom-report", "-m", "planted", "--db",
                               str(planted["db"]), "--published", NAME, "--column", "RGF1"])  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "lands inside: RadGraph F1 partial" in text.output
    none = RUNNER.invoke(app, ["published", "explain", "-t", "phantom-report", "-m", "planted", "--db",
                               str(planted["db"])])  # fmt: skip
    assert none.exit_code == 2 and f"published models on this task: {NAME}" in none.output
    missing = RUNNER.invoke(app, ["published", "explain", "-t", "phantom-report", "-m", "nobody", "--db",
                                  str(planted["db"])])  # fmt: skip
    assert missing.exit_code == 2 and "no run of model" in missing.output


def test_one_over_the_mean_is_not_computed_where_the_mean_may_be_zero(tmp_path):
    """RadCliQ-v1 can be negative: with the mean's CI across 0, 1/x is not monotone, so no CI is made up for it."""
    db = tmp_path / "r.duckdb"
    values = np.random.default_rng(3).normal(0.0, 1.0, N_CLUSTERS * SIZE)
    _plant(db, "iu-xray-report", {"radcliq_v1": values})
    path = _records(tmp_path / "r.csv", "iu-xray-report", [("RCQ", "2.00", "1/x", "radcliq_v1")])
    assert RUNNER.invoke(app, ["published", "add", str(path), "--db", str(db)]).exit_code == 0
    (radcliq,) = _explain(db, "iu-xray-report").values()
    inverse = {c["convention"]: c for c in radcliq}["1 / mean RadCliQ-v1"]
    assert inverse["verdict"] == "not stored" and "includes 0" in inverse["reason"] and inverse["ci_low"] is None
