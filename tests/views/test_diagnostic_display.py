"""RL-health diagnostics are stored and resampled like any metric, but they stay out of the places that list quality
metrics: leaderboard tables, run summaries, the site's leaderboard columns and compare's Holm family."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.metrics import all_metrics, is_diagnostic
from evalkit.results.scores import compare_runs
from evalkit.store import Store

runner = CliRunner()


def _run(db, data_root, model: str) -> str:
    result = runner.invoke(
        app, ["run", "--model", model, "--task", "phantom-report", "--db", str(db), "--data-root", str(data_root)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_diagnostics_are_the_health_metrics_only():
    flagged = {name for name in all_metrics() if is_diagnostic(name)}
    assert {"answer_words", "omission_rate", "distinct_2", "no_box_rate", "omission_rate_chexbert"} <= flagged
    assert not flagged & {"rouge_l", "bleu_4", "cider_d", "response_chars", "coco_ap", "radcliq_v1", "miou"}
    assert not is_diagnostic("a_metric_an_old_database_stored")


@pytest.mark.slow
def test_leaderboard_summary_and_compare_leave_diagnostics_out_unless_asked(db, data_root):
    summary = _run(db, data_root, "nn-retrieval")
    assert "rouge_l=" in summary and "answer_words=" not in summary
    assert "RL-health diagnostics: evalkit health" in summary
    _run(db, data_root, "normal-template")

    table = runner.invoke(app, ["leaderboard", "--db", str(db), "--task", "phantom-report"])
    assert table.exit_code == 0, table.output
    assert "rouge_l" in table.output and "answer_words" not in table.output
    assert "RL-health diagnostics not shown" in table.output
    shown = runner.invoke(app, ["leaderboard", "--db", str(db), "--task", "phantom-report", "--diagnostics"])
    assert "answer_words" in shown.output and "not shown" not in shown.output
    rows = json.loads(runner.invoke(app, ["leaderboard", "--db", str(db), "--json"]).output)
    assert {"rouge_l", "answer_words"} <= {r["metric"] for r in rows}  # JSON keeps every stored number

    with Store(db, read_only=True) as store:
        _, _, default = compare_runs(store, "phantom-report", "nn-retrieval", "normal-template", n_boot=200, n_perm=200)
        _, _, named = compare_runs(
            store, "phantom-report", "nn-retrieval", "normal-template", ["rouge_l", "answer_words"], n_boot=200
        )
    compared = {c.metric for c in default}
    assert "rouge_l" in compared and not any(is_diagnostic(m) for m in compared)
    assert {c.metric for c in named} == {"rouge_l", "answer_words"}
