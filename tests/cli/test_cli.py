"""The command line as a user meets it: exit codes, error messages naming file and field, JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_then_leaderboard_json(db, data_root):
    result = invoke(
        "run", "--model", "prior-box", "--task", "phantom-anatomy-grounding", "--db", db, "--data-root", data_root
    )
    assert result.exit_code == 0, result.output
    result = invoke("leaderboard", "--db", db, "--json")
    rows = json.loads(result.output)
    assert {"task", "model", "metric", "value", "n"} <= set(rows[0])
    assert {r["metric"] for r in rows} == {
        "radvlm_map50",
        "avg_iou",
        "coco_ap",
        "coco_ap50",
        "miou",
        "acc50",
        "soft_f1_iou",
        "box_count_excess",  # RL-health diagnostics (docs/rl-health.md)
        "no_box_rate",
        "whole_image_box_rate",
    }
    assert all(r["model"] == "prior-box" and r["n"] == 16 for r in rows)


def test_task_group_expands_for_the_chosen_dataset(db, data_root):
    result = invoke(
        "run",
        "--model",
        "whole-image",
        "--task",
        "grounding",
        "--dataset",
        "phantom",
        "--db",
        db,
        "--data-root",
        data_root,
        "--limit",
        "3",
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(invoke("leaderboard", "--db", db, "--json").output)
    assert {r["task"] for r in rows} == {
        "phantom-abnormality-grounding",
        "phantom-anatomy-grounding",
        "phantom-phrase-grounding",
    }


def test_typo_in_task_yaml_names_file_and_field(tmp_path, db, data_root):
    bad = tmp_path / "bad-task.yaml"
    text = Path("tasks/phantom-report.yaml").read_text().replace("primary_metric:", "primary_metirc:")
    bad.write_text(text.replace("name: phantom-report", "name: bad-task"))
    result = invoke("run", "--model", "normal-template", "--task", bad, "--db", db, "--data-root", data_root)
    assert result.exit_code == 2
    assert str(bad) in result.output and "primary_metirc" in result.output and "unknown field" in result.output


def test_unknown_model_and_task(db):
    result = invoke("run", "--model", "no-such-model", "--task", "phantom-report", "--db", db)
    assert result.exit_code == 2 and "unknown model 'no-such-model'" in result.output
    result = invoke("run", "--model", "prior-box", "--task", "no-such-task", "--db", db)
    assert result.exit_code == 2 and "unknown task or task group 'no-such-task'" in result.output


def test_missing_data_root(tmp_path, db):
    from evalkit.data import register_loader

    @register_loader("folder-for-test")
    def _never_called(spec, root, task, split):
        raise AssertionError("the runner must check the folder before calling the loader")

    task = tmp_path / "other-report.yaml"
    text = Path("tasks/phantom-report.yaml").read_text().replace("name: phantom-report", "name: other-report")
    task.write_text(text.replace("loader: phantom", "loader: folder-for-test\n  root: my-cxr"))
    missing = tmp_path / "nowhere"
    result = invoke("run", "--model", "normal-template", "--task", task, "--db", db, "--data-root", missing)
    assert result.exit_code == 2
    assert str(missing / "my-cxr") in result.output.replace("\n", "")


def test_score_external_predictions_and_export(tmp_path, db, data_root):
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    spec = resolve_tasks("phantom-abnormality-grounding")[0]
    samples = load_samples(spec, data_root)[:5]
    preds = tmp_path / "preds.jsonl"
    lines = []
    for i, s in enumerate(samples):
        box = s.reference_boxes[0]
        # Perfect answers in qwen1000 format, except a malformed one (three numbers).
        pred = json.dumps([{"bbox_2d": [round(v * 1000) for v in box]}]) if i != 4 else "[100, 200, 300]"
        lines.append(json.dumps({"sample_id": s.sample_id, "prediction": pred}))
    preds.write_text("\n".join(lines) + "\n")
    result = invoke(
        "score",
        "--task",
        spec.name,
        "--predictions",
        preds,
        "--model-name",
        "mine",
        "--box-format",
        "qwen1000",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 0, result.output
    rows = {r["metric"]: r for r in json.loads(invoke("leaderboard", "--db", db, "--json").output)}
    assert rows["acc50"]["n"] == 5
    assert rows["acc50"]["value"] == pytest.approx(0.8, abs=0.01)

    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"export.{fmt}"
        result = invoke("export", "--db", db, "--format", fmt, "--out", out)
        assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in (tmp_path / "export.jsonl").read_text().splitlines()]
    assert len(exported) == 5
    first = exported[0]
    assert {
        "task",
        "model",
        "sample_id",
        "prediction",
        "reference",
        "pred_boxes",
        "ref_boxes",
        "error",
        "scores",
    } <= set(first)
    failed = [r for r in exported if r["parse_error"]]
    assert len(failed) == 1 and failed[0]["scores"]["miou"] == 0.0
    assert len(pd.read_parquet(tmp_path / "export.parquet")) == 5
    assert len(pd.read_csv(tmp_path / "export.csv")) == 5


def test_score_rejects_unknown_sample_ids(tmp_path, db, data_root):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"sample_id": "nope", "prediction": "x"}) + "\n")
    result = invoke(
        "score",
        "--task",
        "phantom-report",
        "--predictions",
        preds,
        "--model-name",
        "m",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 2 and "not in task" in result.output


def test_score_bad_jsonl_names_line(tmp_path, db, data_root):
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"sample_id": "a", "prediction": "x"}\n{not json\n')
    result = invoke(
        "score",
        "--task",
        "phantom-report",
        "--predictions",
        preds,
        "--model-name",
        "m",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 2 and f"{preds}:2" in result.output.replace("\n", "")


def test_listing_commands():
    assert "phantom-report" in invoke("tasks").output
    names = {c["name"] for c in json.loads(invoke("models", "--json").output)}
    assert {"normal-template", "nn-retrieval", "prior-box", "whole-image"} <= names
    metrics = {m["name"]: m for m in json.loads(invoke("metrics", "--json").output)}
    assert metrics["rouge_l"]["available"] and metrics["radvlm_map50"]["higher_is_better"]


def test_leaderboard_without_db(tmp_path):
    result = invoke("leaderboard", "--db", tmp_path / "none.duckdb")
    assert result.exit_code == 2 and "no results database" in result.output


def test_card_report_prompt_overrides_the_task_pool():
    from evalkit.config import ModelCard
    from evalkit.registry import resolve_tasks
    from evalkit.run.prompts import render_prompt
    from evalkit.sample import Sample

    report, grounding = resolve_tasks("phantom-report")[0], resolve_tasks("phantom-abnormality-grounding")[0]
    card = ModelCard(name="m", adapter="baseline", checkpoint="x", options={"report_prompt": "Findings:"})
    sample = Sample("s1", "t", [], prompt_vars={"label": "nodule"})
    assert render_prompt(report, card, sample)[1] == "Findings:"
    assert "nodule" in render_prompt(grounding, card, sample)[1]
