"""`evalkit.score_reports` and `evalkit score --pairs`: free report pairs, no task, cached, with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.clinical import all_options
from typer.testing import CliRunner

import evalkit
from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric
from evalkit.run.pairs import read_pairs, score_reports
from evalkit.sample import Parsed, Sample

REFS = [
    "No acute cardiopulmonary process.",
    "Mild cardiomegaly with small bilateral pleural effusions. No pneumothorax.",
    "Right upper lobe nodule measuring 2 cm.",
    "Lungs are clear. Heart size normal.",
]
PREDS = ["No acute process.", "Heart size normal. Small left effusion.", "", "Lungs are clear."]
LEXICAL = ["rouge_l", "bleu_1", "bleu_4"]


@pytest.fixture()
def no_weights(monkeypatch, tmp_path):
    """No metric weights anywhere (the user's Hugging Face cache included)."""
    import evalkit.metrics._weights as weights
    import evalkit.metrics.chexbert as chexbert
    import evalkit.metrics.radgraph as radgraph

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setattr(weights, "hf_cached_snapshot", lambda repo: None)
    for module in (chexbert, radgraph):
        monkeypatch.setattr(module, "hf_cached_file", lambda *a: None)
        monkeypatch.setattr(module, "user_cache_dir", lambda app: tmp_path / "none")


def test_values_are_the_metrics_own(no_weights):
    result = evalkit.score_reports(REFS, PREDS, metrics=LEXICAL)
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(REFS)]
    for name in LEXICAL:
        metric = get_metric(name)
        scores = metric.score([Parsed(answer=p) for p in PREDS], samples)
        assert [row[name] for row in result.per_sample] == [s.value for s in scores]
        assert result.metrics[name] == metric.aggregate([s.value for s in scores], [s.stats for s in scores])
    low, high = result.intervals(n_boot=500)["rouge_l"]
    assert low <= result.metrics["rouge_l"] <= high


def test_unavailable_metrics_get_a_reason_not_a_number(no_weights):
    result = score_reports(REFS, PREDS)  # every report metric
    assert set(result.metrics) == {"rouge_l", "bleu_1", "bleu_2", "bleu_3", "bleu_4"}
    assert {"bertscore", "chexbert_micro_f1_14", "radgraph_f1_partial", "radcliq_v1", "green"} <= set(
        result.unavailable
    )
    assert all("bertscore" not in row for row in result.per_sample)


def test_all_metrics_on_tiny_models_and_warm_rescore(tmp_path, monkeypatch):
    options = all_options()
    names = [n for n in options if n != "green"] + LEXICAL
    db = tmp_path / "pairs.duckdb"
    cold = score_reports(REFS, PREDS, names, options=options, db=db)
    assert not cold.unavailable and set(cold.metrics) == set(names)
    # Warm: every per-pair result is in DuckDB; no metric may score anything again.
    monkeypatch.setattr(Metric, "score", lambda *a: pytest.fail("a metric scored a cached pair"))
    for cls in {type(get_metric(n, **options.get(n, {}))) for n in names}:
        monkeypatch.setattr(cls, "score", lambda *a: pytest.fail("a metric scored a cached pair"))
    warm = score_reports(REFS, PREDS, names, options=options, db=db)
    assert warm.metrics == cold.metrics and warm.per_sample == cold.per_sample


def test_bad_inputs_get_defined_scores(tmp_path):
    options = all_options()
    radgraph = {**options["radgraph_f1_simple"], "max_words": 1000}
    long_prediction = "There is a small left pleural effusion. " * 2600  # ~100 kB
    refs = ["No effusion.", "No effusion.", "No effusion.", "No effusion.", "No effusion."]
    preds = ["", "   \n ", "No effusion \udcff surrogate.", long_prediction, "No effusion."]
    assert len(long_prediction.encode()) > 100_000
    result = score_reports(
        refs,
        preds,
        ["rouge_l", "bleu_4", "bertscore", "chexbert_micro_f1_14", "radgraph_f1_simple"],
        options={**options, "radgraph_f1_simple": radgraph},
    )
    rows = result.per_sample
    assert rows[0]["rouge_l"] == 0.0 and rows[1]["rouge_l"] == 0.0
    assert rows[0]["radgraph_f1_simple"] == 0.0  # F1RadGraph's rule for an empty text
    assert rows[2]["rouge_l"] is not None and rows[2]["bertscore"] is not None  # lone surrogate replaced
    assert rows[3]["bertscore"] is not None and rows[3]["chexbert_micro_f1_14"] is not None  # truncated at 512
    assert rows[3]["radgraph_f1_simple"] is None  # a clear per-sample error, not a made-up number
    assert "max_words" in result.stats["radgraph_f1_simple"][3]["error"]
    assert rows[4]["rouge_l"] == 1.0
    with pytest.raises(EvalkitError, match="must be a string"):
        score_reports(["a"], [3], ["rouge_l"])
    with pytest.raises(EvalkitError, match="2 references but 1 predictions"):
        score_reports(["a", "b"], ["a"], ["rouge_l"])


def _write_pairs(path: Path, refs, preds) -> Path:
    path.write_text(
        "".join(json.dumps({"reference": r, "prediction": p}) + "\n" for r, p in zip(refs, preds, strict=False))
    )
    return path


def test_cli_json(tmp_path, no_weights):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", REFS, PREDS)
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--pairs",
            str(pairs),
            "--metrics",
            "rouge_l,bleu_4,bertscore",
            "--json",
            "--db",
            str(tmp_path / "r.duckdb"),
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["metrics"]) == {"rouge_l", "bleu_4"} and len(out["per_sample"]) == len(REFS)
    assert set(out["per_sample"][0]) == {"rouge_l", "bleu_4"}
    assert "bertscore" in out["unavailable"]


def test_cli_table_with_intervals(tmp_path, no_weights):
    pairs = _write_pairs(tmp_path / "pairs.jsonl", REFS * 5, PREDS * 5)
    result = CliRunner().invoke(
        app, ["score", "--pairs", str(pairs), "--metrics", "rouge_l,bleu_4", "--db", str(tmp_path / "r.duckdb")]
    )
    assert result.exit_code == 0, result.output
    assert "rouge_l" in result.output and "95% CI" in result.output and "[" in result.output


def test_cli_bad_files(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"reference": "a"}\n')
    result = runner.invoke(app, ["score", "--pairs", str(bad), "--db", str(tmp_path / "r.duckdb")])
    assert result.exit_code == 2 and "bad.jsonl:1" in result.output
    invalid = tmp_path / "latin1.jsonl"
    invalid.write_bytes(b'{"reference": "caf\xe9 effusion", "prediction": "effusion"}\n')
    refs, preds = read_pairs(invalid)  # bytes that are not UTF-8 are replaced, not fatal
    assert refs == ["caf\ufffd effusion"] and preds == ["effusion"]
    result = runner.invoke(app, ["score", "--pairs", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "cannot read pairs" in result.output
    result = runner.invoke(app, ["score", "--pairs", str(invalid), "--metrics", "no_such_metric"])
    assert result.exit_code == 2 and "unknown metric" in result.output
    result = runner.invoke(app, ["score", "--task", "phantom-report"])
    assert result.exit_code == 2 and "--pairs" in result.output
