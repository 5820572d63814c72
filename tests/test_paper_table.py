"""`evalkit leaderboard --style radvlm-grpo`: the paper's columns, order and scale, from the stored results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.evaluation import evaluate
from evalkit.leaderboard import RADVLM_GRPO_REPORT_COLUMNS, leaderboard_rows, paper_tables
from evalkit.store import Store


def _run(db: Path, data_root: Path, model: str, task: str) -> None:
    evaluate(model, task, db=db, data_root=data_root, limit=6)


@pytest.mark.slow  # runs three phantom tasks through the store (~9 s)
def test_paper_tables_scale_and_order(tmp_path: Path, data_root: Path) -> None:
    db = tmp_path / "r.duckdb"
    _run(db, data_root, "normal-template", "phantom-report")
    for task in ("phantom-anatomy-grounding", "phantom-phrase-grounding"):
        _run(db, data_root, "prior-box", task)
        _run(db, data_root, "whole-image", task)
    with Store(db, read_only=True) as store:
        rows = [
            r
            for t in ("phantom-report", "phantom-anatomy-grounding", "phantom-phrase-grounding")
            for r in leaderboard_rows(store, t, ci=False)
        ]
    by = {(r["task"], r["model"], r["metric"]): r for r in rows}
    report, grounding = paper_tables(rows)
    assert report["columns"] == ["Model", "R-L", "B-S", "CXb-micro", "CXb-macro", "RGF1", "GRN", "RCQ↓", "ANC"]
    (model_row,) = report["rows"]
    assert model_row[0] == "normal-template"
    for (column, metric, scale, decimals), text in zip(RADVLM_GRPO_REPORT_COLUMNS, model_row[1:], strict=True):
        r = by[("phantom-report", "normal-template", metric)]
        expected = "n/a" if r["status"] == "unavailable" else f"{r['value'] * scale:.{decimals}f}"
        assert text == expected, column
    assert model_row[1] == f"{by[('phantom-report', 'normal-template', 'rouge_l')]['value'] * 100:.1f}"
    assert grounding["columns"] == ["Model", "Anatomy (phantom)", "Phrase (phantom)"]
    assert [r[0] for r in grounding["rows"]] == ["prior-box", "whole-image"]
    value = by[("phantom-phrase-grounding", "whole-image", "radvlm_map50")]["value"]
    assert grounding["rows"][1][2] == f"{value * 100:.1f}"

    result = CliRunner().invoke(
        app, ["leaderboard", "--db", str(db), "--task", "phantom", "--style", "radvlm-grpo", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [report, grounding]
    text = CliRunner().invoke(
        app, ["leaderboard", "--db", str(db), "--task", "phantom-report", "--style", "radvlm-grpo"]
    )
    assert text.exit_code == 0 and "RGF1" in text.output and "RCQ↓" in text.output
    bad = CliRunner().invoke(app, ["leaderboard", "--db", str(db), "--style", "radvlm"])
    assert bad.exit_code == 2 and "--style must be one of radvlm-grpo" in bad.output
