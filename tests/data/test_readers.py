"""Predictions and pairs in the formats people hold (evalkit/readers.py): each tool's file, made by that tool's
code or documented layout (tests/fixtures/make_reader_fixtures.py), scores exactly as evalkit JSON lines do."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import FIXTURES
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.readers import PRESETS, read_pairs_file, read_predictions_file, resolve_fields

READERS = FIXTURES / "readers"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def task_yaml(tmp_path_factory) -> Path:
    """phantom-report with its lexical metrics only (fast; no weights involved)."""
    text = Path("tasks/phantom-report.yaml").read_text()
    head = text.split("metrics:\n")[0].replace("name: phantom-report", "name: reader-report")
    path = tmp_path_factory.mktemp("task") / "reader-report.yaml"
    path.write_text(head + "metrics: [rouge_l, bleu_4, cider_d]\nprimary_metric: rouge_l\n")
    return path


def score(db, data_root, task, path, name, *extra):
    result = invoke(
        "score",
        "--task",
        task,
        "--predictions",
        path,
        "--model-name",
        name,
        "--db",
        db,
        "--data-root",
        data_root,
        *extra,
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(invoke("leaderboard", "--db", db, "--model", name, "--json").output)
    return {r["metric"]: (r["value"], r["n"], r["ci_low"], r["ci_high"]) for r in rows}


@pytest.fixture(scope="module")
def as_jsonl(tmp_path_factory, data_root, task_yaml):
    """A database holding the fixtures' predictions scored from evalkit JSON lines, and their values."""
    db = tmp_path_factory.mktemp("db") / "results.duckdb"
    return db, score(db, data_root, task_yaml, READERS / "evalkit.jsonl", "as-jsonl")


@pytest.mark.parametrize(
    "preset, file",
    [
        ("lmms-eval", "lmms_eval_samples.jsonl"),
        ("rexrank", "rexrank_prediction.json"),
        ("radvlm-grpo", "radvlm_grpo_output.json"),
    ],
)
def test_preset_scores_equal_evalkit_jsonl(preset, file, data_root, task_yaml, as_jsonl):
    db, expected = as_jsonl
    found = score(db, data_root, task_yaml, READERS / file, f"as-{preset}", "--preset", preset)
    assert found == expected
    assert expected["rouge_l"][1] == 8 and 0 < expected["rouge_l"][0] < 1


def test_radeval_lists_score_as_pairs_equal_jsonl():
    refs, preds = read_pairs_file(READERS / "radeval_lists.json", preset=PRESETS["radeval"])
    lines = [json.loads(line) for line in (READERS / "evalkit.jsonl").read_text().splitlines()]
    assert refs == [r["reference"] for r in lines] and preds == [r["prediction"] for r in lines]
    a = invoke(
        "score",
        "--pairs",
        READERS / "radeval_lists.json",
        "--preset",
        "radeval",
        "--metrics",
        "rouge_l,bleu_4",
        "--json",
    )
    b = invoke("score", "--pairs", READERS / "evalkit.jsonl", "--metrics", "rouge_l,bleu_4", "--json")
    assert a.exit_code == 0, a.output
    assert json.loads(a.output)["metrics"] == json.loads(b.output)["metrics"]


def test_lmms_eval_pairs_need_no_task():
    refs, preds = read_pairs_file(READERS / "lmms_eval_samples.jsonl", preset=PRESETS["lmms-eval"])
    assert len(refs) == 8 and refs[0] == preds[0]  # the first prediction is the reference itself


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json-array", "json-keyed", "datasets"])
def test_every_format_reads_the_same_predictions(fmt, tmp_path):
    lines = [json.loads(line) for line in (READERS / "evalkit.jsonl").read_text().splitlines()]
    expected = {r["sample_id"]: r["prediction"] for r in lines}
    frame = pd.DataFrame(lines)
    if fmt == "csv":
        path = tmp_path / "p.csv"
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        path = tmp_path / "p.jsonl"  # named wrongly on purpose: the content decides
        frame.to_parquet(path)
    elif fmt == "json-array":
        path = tmp_path / "p.jsonl"
        path.write_text(json.dumps(lines, indent=2))
    elif fmt == "json-keyed":
        path = tmp_path / "p.json"
        path.write_text(json.dumps({r["sample_id"]: {"prediction": r["prediction"]} for r in lines}))
    else:
        datasets = pytest.importorskip("datasets")
        path = tmp_path / "ds"
        datasets.Dataset.from_list(lines).save_to_disk(str(path))
    assert read_predictions_file(path) == expected


def test_json_document_given_as_jsonl_is_named(tmp_path, db, data_root):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps([{"sample_id": "a", "prediction": "x"}], indent=2))
    with pytest.raises(EvalkitError, match=r"one JSON document.*--format json"):
        read_predictions_file(path, fmt="jsonl")
    result = invoke(
        "score",
        "--task",
        "phantom-report",
        "--predictions",
        path,
        "--model-name",
        "m",
        "--format",
        "jsonl",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 2 and str(path) in result.output.replace("\n", "")


def test_parquet_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"sample_id": ["a"], "text": ["x"]}).to_parquet(path)
    with pytest.raises(EvalkitError) as info:
        read_predictions_file(path)
    message = str(info.value)
    assert str(path) in message and "no column 'prediction'" in message and "--prediction-field" in message
    assert read_predictions_file(path, preset=resolve_fields(None, prediction_field="text")) == {"a": "x"}


def test_wrong_field_name_names_line_and_field(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "output": "x"}\n{"id": "b", "answer": "y"}\n')
    layout = resolve_fields(None, id_field="id", prediction_field="output")
    with pytest.raises(EvalkitError, match=rf"{path}:2: no field 'output' \(this record has: answer, id\)"):
        read_predictions_file(path, preset=layout)


def test_nested_fields_and_study_ids():
    path = READERS / "rexrank_prediction.json"
    layout = resolve_fields("rexrank")
    assert layout.id_kind == "key" and len(read_predictions_file(path, preset=layout)) == 8
    from evalkit.readers import Row, sample_id_of

    assert sample_id_of(Row("f", "50051329", "x"), layout) == "s50051329"  # mimic-cxr-report-per-study's ids
    assert sample_id_of(Row("f", "/files/p10/s5/ab-cd.jpg", "x"), PRESETS["radvlm-grpo"]) == "ab-cd"
    nested = resolve_fields(None, id_field="doc.id", prediction_field="resps.0.1")
    path = FIXTURES.parent / "nested.jsonl"
    assert nested.fields.prediction == "resps.0.1" and not path.exists()


def test_ignore_unknown_scores_the_shared_ids(tmp_path, db, data_root, task_yaml):
    lines = (READERS / "evalkit.jsonl").read_text().splitlines()
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join([*lines[:3], json.dumps({"sample_id": "elsewhere", "prediction": "x"})]) + "\n")
    refused = invoke(
        "score", "--task", task_yaml, "--predictions", path, "--model-name", "m", "--db", db, "--data-root", data_root
    )
    assert refused.exit_code == 2 and "--ignore-unknown" in refused.output
    result = invoke(
        "score",
        "--task",
        task_yaml,
        "--predictions",
        path,
        "--model-name",
        "m",
        "--db",
        db,
        "--data-root",
        data_root,
        "--ignore-unknown",
    )
    assert result.exit_code == 0, result.output
    assert "left out 1 of 4" in result.output and "partial" in result.output
    rows = json.loads(invoke("leaderboard", "--db", db, "--json").output)
    assert {r["n"] for r in rows} == {3} and all(r["partial"] for r in rows)


def test_csv_missing_column_and_datasetdict_folder_are_named(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,output\na,x\n")
    with pytest.raises(EvalkitError, match=r"CSV header has no column 'sample_id' \(columns: id, output\)"):
        read_predictions_file(path)
    layout = resolve_fields(None, id_field="id", prediction_field="output")
    assert read_predictions_file(path, preset=layout) == {"a": "x"}
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "dd"
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"sample_id": "a", "prediction": "x"}])}).save_to_disk(
        str(folder)
    )
    with pytest.raises(EvalkitError, match=r"DatasetDict folder \(splits: test\); pass one split's folder"):
        read_predictions_file(folder)
    assert read_predictions_file(folder / "test") == {"a": "x"}


def test_evalkit_jsonl_values_and_errors_are_the_original_readers(tmp_path):
    """One path for every file: evalkit's own JSON lines keep the values (run ids) and messages they always had;
    a one-box answer stays a list of boxes (only lmms-eval's response list is unwrapped)."""
    boxes = [[0.1, 0.2, 0.3, 0.4]]
    path = tmp_path / "p.jsonl"
    rows = [{"sample_id": "a", "prediction": boxes}, {"sample_id": "b", "prediction": "No effusion."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_predictions_file(path) == {"a": json.dumps(boxes), "b": "No effusion."}
    as_array = tmp_path / "p.json"
    as_array.write_text(json.dumps(rows))
    assert read_predictions_file(as_array) == read_predictions_file(path)
    path.write_text('{"sample_id": "a", "prediction": "x"}\n{"sample_id": "b", "prediction": null}\n')
    with pytest.raises(EvalkitError, match=rf"{path}:2: 'prediction' is null for sample_id 'b'"):  # not "null"
        read_predictions_file(path)
    path.write_text('{"sample_id": "a", "prediction": "x"}\n{"sample_id": "a", "prediction": "y"}\n')
    with pytest.raises(EvalkitError, match=rf"{path}:2: sample_id 'a' appears twice"):
        read_predictions_file(path)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"reference": null, "prediction": "x"}\n{"reference": "r", "prediction": 3}\n')
    with pytest.raises(EvalkitError, match=rf"{pairs}:2: 'prediction' must be a string"):
        read_pairs_file(pairs)
    with pytest.raises(EvalkitError, match="cannot read pairs"):
        read_pairs_file(tmp_path / "missing.jsonl")


def test_unreadable_csv_names_file_and_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("sample_id,prediction\na,fine\nb," + "x" * 200_000 + "\n")  # over csv's field size limit
    with pytest.raises(EvalkitError, match=rf"{path}:\d+: not valid CSV"):
        read_predictions_file(path)
