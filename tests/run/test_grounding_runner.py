"""The runner end to end on grounding: prior-box and whole-image baselines on every phantom grounding task and on
synthetic files in each real layout, all six metrics, malformed data rows in the run summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evalkit.data.grounding_layouts import (
    MALFORMED_IMAGENOME,
    MALFORMED_MS_CXR,
    MALFORMED_PADCHEST,
    MALFORMED_VINDR,
    write_grounding_layouts,
)
from evalkit.metrics.grounding import coco_ap_pycocotools
from evalkit.registry import resolve_tasks
from evalkit.run.evaluate import evaluate
from evalkit.run.runner import load_samples
from evalkit.sample import Parsed
from evalkit.store import Store, loads

METRICS = {"radvlm_map50", "avg_iou", "coco_ap", "coco_ap50", "miou", "acc50", "soft_f1_iou"}
METRICS |= {"box_count_excess", "no_box_rate", "whole_image_box_rate"}  # RL-health diagnostics
REAL = {
    "imagenome-anatomy-grounding": MALFORMED_IMAGENOME,
    "vindr-abnormality-grounding": MALFORMED_VINDR,
    "mscxr-phrase-grounding": MALFORMED_MS_CXR,
    "padchest-phrase-grounding": MALFORMED_PADCHEST,
}


@pytest.fixture(scope="session")
def real_root(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_grounding_layouts(data_root / "phantom", tmp_path_factory.mktemp("real"), malformed=True)


def _run(db: Path, data_root: Path, model: str, task: str):
    (summary,) = evaluate(model, task, db=db, data_root=data_root)
    with Store(db, read_only=True) as store:
        run = store.query("SELECT summary FROM runs WHERE run_id = ?", [summary.run_id])[0]
    return summary, loads(run["summary"])


def test_grounding_group_holds_the_four_real_tasks():
    assert {t.name for t in resolve_tasks("grounding")} == set(REAL)
    for task in resolve_tasks("grounding"):
        assert task.access == "credentialed" and set(task.metric_names) == METRICS and task.prompt.pool


@pytest.mark.parametrize("task", sorted(REAL))
@pytest.mark.parametrize("model", ["prior-box", "whole-image"])
def test_baselines_on_each_real_layout(tmp_path, real_root, task, model):
    summary, stored = _run(tmp_path / "r.duckdb", real_root, model, task)
    assert summary.n_samples > 0 and summary.errors == 0 and summary.parse_failures == 0
    assert set(summary.metrics) == METRICS
    assert all(v is not None and math.isfinite(v) for v in summary.metrics.values())
    issues = stored["data_issues"]
    counts = {}
    for key, n in issues["by_problem"].items():
        problem, action = key.split(": ")
        fixed, dropped = counts.get(problem, (0, 0))
        counts[problem] = (fixed + n, dropped) if action == "fixed" else (fixed, dropped + n)
    assert counts == REAL[task]
    assert issues["rows"] and all(" -> " in row for row in issues["rows"])


@pytest.mark.parametrize(
    "task", ["phantom-abnormality-grounding", "phantom-anatomy-grounding", "phantom-phrase-grounding"]
)
def test_baselines_on_phantom_tasks_and_coco_through_the_store(tmp_path, data_root, task):
    db = tmp_path / "r.duckdb"
    prior, _ = _run(db, data_root, "prior-box", task)
    whole, stored = _run(db, data_root, "whole-image", task)
    assert set(prior.metrics) == METRICS and set(whole.metrics) == METRICS
    assert prior.metrics["miou"] > whole.metrics["miou"] and prior.parse_failures == 0
    assert stored["data_issues"] == {}
    # The stored corpus COCO AP equals pycocotools run on the stored boxes, images in sample-id order.
    samples = {s.sample_id: s for s in load_samples(resolve_tasks(task)[0], data_root)}
    with Store(db, read_only=True) as store:
        rows = store.query(
            "SELECT sample_id, parsed FROM generations WHERE run_id = ? ORDER BY sample_id", [prior.run_id]
        )
    predicted = [Parsed.from_json(loads(r["parsed"])).boxes for r in rows]
    reference = [samples[r["sample_id"]].reference_boxes for r in rows]
    ap, ap50 = coco_ap_pycocotools(predicted, reference)
    assert prior.metrics["coco_ap"] == ap and prior.metrics["coco_ap50"] == ap50
