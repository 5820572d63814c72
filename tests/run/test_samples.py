"""`evalkit samples`: a task's manifest, which fed back as predictions (references as answers) scores perfectly."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.registry import all_tasks

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def lexical_task(tmp_path: Path) -> Path:
    text = Path("tasks/phantom-report.yaml").read_text()
    head = text.split("metrics:\n")[0].replace("name: phantom-report", "name: manifest-report")
    path = tmp_path / "manifest-report.yaml"
    path.write_text(head + "metrics: [rouge_l, bleu_4, cider_d]\nprimary_metric: rouge_l\n")
    return path


def leaderboard(db, name):
    rows = json.loads(invoke("leaderboard", "--db", db, "--model", name, "--json").output)
    return {r["metric"]: r for r in rows}


def test_report_manifest_fed_back_scores_a_perfect_run(tmp_path, db, data_root):
    task = lexical_task(tmp_path)
    out = tmp_path / "manifest.jsonl"
    result = invoke("samples", "--task", task, "--data-root", data_root, "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16 and [r["row"] for r in rows] == list(range(16))
    assert rows[0]["image_paths"][0].startswith("phantom/images/") and (data_root / rows[0]["image_paths"][0]).exists()
    assert rows[0]["prompt"] and rows[0]["cluster"].startswith("image:")
    result = invoke(
        "score",
        "--task",
        task,
        "--predictions",
        out,
        "--prediction-field",
        "reference",
        "--model-name",
        "oracle",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 0, result.output
    scores = leaderboard(db, "oracle")
    assert scores["rouge_l"]["value"] == 1.0 and scores["bleu_4"]["value"] > 0.999
    assert all(r["n"] == 16 and not r["partial"] for r in scores.values())


def test_grounding_manifest_as_parquet_fed_back_scores_a_perfect_run(tmp_path, db, data_root):
    out = tmp_path / "manifest.parquet"
    result = invoke(
        "samples",
        "--task",
        "phantom-abnormality-grounding",
        "--format",
        "parquet",
        "--out",
        out,
        "--data-root",
        data_root,
        "--with-images",
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pylist()
    first = table[0]
    assert first["images"][0] == (data_root / first["image_paths"][0]).read_bytes()
    result = invoke(
        "score",
        "--task",
        "phantom-abnormality-grounding",
        "--predictions",
        out,
        "--prediction-field",
        "reference_boxes",
        "--model-name",
        "oracle",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 0, result.output
    scores = leaderboard(db, "oracle")
    assert scores["acc50"]["value"] == 1.0 and scores["miou"]["value"] > 0.999
    assert scores["acc50"]["n"] == len(table)


def test_csv_and_images_as_base64(tmp_path, data_root):
    result = invoke("samples", "--task", "phantom-report", "--format", "csv", "--data-root", data_root, "--with-images")
    assert result.exit_code == 0, result.output
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 16
    paths, images = json.loads(rows[3]["image_paths"]), json.loads(rows[3]["images"])
    assert base64.b64decode(images[0]) == (data_root / paths[0]).read_bytes()


def test_bad_options(tmp_path, data_root):
    result = invoke("samples", "--task", "phantom-report", "--format", "parquet", "--data-root", data_root)
    assert result.exit_code == 2 and "--out" in result.output
    result = invoke("samples", "--task", "grounding", "--data-root", data_root)
    assert result.exit_code == 2 and "one task" in result.output


def test_docs_table_names_every_task_scheme():
    text = Path("docs/importing.md").read_text()
    table = text.split("## Sample ids")[1]
    for name in all_tasks():
        assert f"`{name}`" in table, name
