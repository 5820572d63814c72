"""`evalkit leaderboard --style radvlm-grpo`: the paper's columns, order and scale, from the stored results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.run.evaluate import evaluate
from evalkit.store import Store
from evalkit.views.leaderboard import leaderboard_rows, paper_tables
from evalkit.views.paper_layouts import paper_layout


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
    columns = [(c.label, c.metric, c.scale, c.decimals) for c in paper_layout("radvlm-grpo").report.columns]
    for (column, metric, scale, decimals), text in zip(columns, model_row[1:], strict=True):
        r = by[("phantom-report", "normal-template", metric)]
        # --limit 6 of 16: every number says it is partial, never passing for the paper's full-set one
        expected = "n/a" if r["status"] == "unavailable" else f"{r['value'] * scale:.{decimals}f} (partial 6/16)"
        assert r["task_size"] == 16
        assert text == expected, column
    assert model_row[1] == f"{by[('phantom-report', 'normal-template', 'rouge_l')]['value'] * 100:.1f} (partial 6/16)"
    assert grounding["columns"] == ["Model", "Anatomy (phantom)", "Phrase (phantom)"]
    assert [r[0] for r in grounding["rows"]] == ["prior-box", "whole-image"]
    value = by[("phantom-phrase-grounding", "whole-image", "radvlm_map50")]["value"]
    size = by[("phantom-phrase-grounding", "whole-image", "radvlm_map50")]["task_size"]
    assert grounding["rows"][1][2] == f"{value * 100:.1f} (partial 6/{size})"

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


def _row(task: str, model: str, metric: str, value: float, partial: bool, kind: str = "grounding") -> dict:
    return {
        "task": task,
        "kind": kind,
        "model": model,
        "profile": None,
        "metric": metric,
        "value": value,
        "status": "ok",
        "n_samples": 39 if partial else 100,
        "task_size": 100,
        "partial": partial,
    }


def test_a_partial_run_is_marked_in_the_paper_table() -> None:
    """A 39/100 run must not print like a Table 2 number (issue 20 item 5)."""
    rows = [
        _row("phantom-anatomy-grounding", "full", "radvlm_map50", 0.25, False),
        _row("phantom-anatomy-grounding", "half", "radvlm_map50", 0.5, True),
        _row("phantom-report", "half", "rouge_l", 0.3, True, "report_generation"),
    ]
    report, grounding = paper_tables(rows)
    assert grounding["rows"] == [["full", "25.0"], ["half", "50.0 (partial 39/100)"]]
    assert report["rows"][0][1] == "30.0 (partial 39/100)"


def test_layouts_are_data_files_and_a_new_one_needs_no_code(tmp_path: Path, monkeypatch) -> None:
    from evalkit.views import paper_layouts

    assert paper_layouts.paper_styles() == ("radvlm-grpo",)
    (tmp_path / "layouts").mkdir()
    (tmp_path / "layouts" / "mine.yaml").write_text(
        "name: mine\nreport:\n  title: '{task} (my Table 1)'\n  columns:\n"
        "    - {label: 'R-L', metric: rouge_l, scale: 100, decimals: 2}\n"
    )
    monkeypatch.setattr(paper_layouts, "bundled", lambda name: tmp_path)
    paper_layouts.paper_layout.cache_clear()
    rows = [
        {"task": "t", "model": "m", "metric": "rouge_l", "value": 0.123456, "status": "ok", "kind": "report_generation"}
    ]
    (table,) = paper_tables(rows, "mine")
    assert table == {"title": "t (my Table 1)", "columns": ["Model", "R-L"], "rows": [["m", "12.35"]]}
    with pytest.raises(EvalkitError, match="--style must be one of mine, not 'radvlm-grpo'"):
        paper_tables(rows, "radvlm-grpo")
    paper_layouts.paper_layout.cache_clear()
