"""Published rows beside re-runs: the paper-table view (`evalkit leaderboard --style radvlm-grpo`) and the site
show the published value, the difference, the run's 95% CI and a verdict, and never rank the published rows."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from helpers import ROOT
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.published import FIELDS
from evalkit.store import Store
from evalkit.views.leaderboard import leaderboard_rows

RUNNER = CliRunner()
PAPER_NAME = "Template (paper)"


@pytest.fixture(scope="module")
def reported_db(tmp_path_factory, data_root) -> dict:
    """A full phantom-report run of a card naming a published row, and three published rows for it: the run's own
    R-L (reproduced), R-L three CI widths above (differs) and R-L under another convention (not comparable)."""
    from evalkit import evaluate

    folder = tmp_path_factory.mktemp("reported")
    card = ROOT.joinpath("evalkit/model_adapters/cards/normal-template.yaml").read_text()
    (folder / "card.yaml").write_text(card + f'published_as: ["{PAPER_NAME}"]\n')
    # phantom-report scored on R-L alone (the only column the records name): a third of the full task's time.
    task = ROOT.joinpath("tasks/phantom-report.yaml").read_text().split("metrics:\n")[0]
    (folder / "task.yaml").write_text(task + "metrics: [rouge_l]\nprimary_metric: rouge_l\n")
    db = folder / "r.duckdb"
    evaluate(str(folder / "card.yaml"), str(folder / "task.yaml"), db=db, data_root=data_root)
    with Store(db, read_only=True) as store:
        (row,) = [r for r in leaderboard_rows(store, "phantom-report") if r["metric"] == "rouge_l"]
    assert not row["partial"] and row["ci_high"] > row["ci_low"]
    width = row["ci_high"] - row["ci_low"]
    same = f"{row['value'] * 100:.1f}"
    far = f"{(row['ci_high'] + 3 * width) * 100:.1f}"
    base = dict(source="mine", citation="Me et al.", file="t.png", repository="me/paper", commit="abc1234",
                model=PAPER_NAME, task="phantom-report", dataset="phantom", n="", column="R-L", scale="x100",
                metric="rouge_l", convention="radvlm-grpo", training_reward="no", note="")  # fmt: skip
    records = [
        {**base, "table": "T1", "printed": same, "value": same},
        {**base, "table": "T2", "printed": far, "value": far},
        {**base, "table": "T3", "printed": same, "value": same, "convention": "rexrank"},
    ]
    path = folder / "mine.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(records)
    result = RUNNER.invoke(app, ["published", "add", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output
    return {"db": db, "row": row, "far": float(far), "width": width}


@pytest.mark.slow  # the fixture runs and scores a phantom task (~4 s, shared by the three tests)
def test_paper_table_shows_published_rows_with_the_three_verdicts(reported_db):
    db, row = reported_db["db"], reported_db["row"]
    out = RUNNER.invoke(app, ["leaderboard", "--db", str(db), "--task", "phantom-report", "--style", "radvlm-grpo",
                              "--json"])  # fmt: skip
    assert out.exit_code == 0, out.output
    (table,) = json.loads(out.output)
    assert [r[0] for r in table["rows"]] == ["normal-template"]  # the published rows are not among the runs
    reported = table["reported"]
    by_table = {c["record"]["table"]: c for c in reported["comparisons"]}
    assert {t: c["verdict"] for t, c in by_table.items()} == {
        "T1": "reproduced", "T2": "differs", "T3": "not comparable",
    }  # fmt: skip
    far = by_table["T2"]
    assert far["gap_ci_widths"] == pytest.approx((reported_db["far"] / 100 - row["value"]) / reported_db["width"])
    assert far["gap_ci_widths"] > 3
    assert far["ci_low"] == pytest.approx(row["ci_low"] * 100) and far["ci_high"] == pytest.approx(row["ci_high"] * 100)
    assert by_table["T3"]["reason"] == "convention: published rexrank, run radvlm-grpo"
    labels = [r[0] for r in reported["rows"]]
    assert labels == [
        f"{PAPER_NAME} (mine, T1)", f"  normal-template vs {PAPER_NAME}",
        f"{PAPER_NAME} (mine, T2)", f"  normal-template vs {PAPER_NAME}",
        f"{PAPER_NAME} (mine, T3)", f"  normal-template vs {PAPER_NAME}",
    ]  # fmt: skip
    assert reported["rows"][1][1].startswith("✓") and reported["rows"][3][1].startswith("✗")
    assert reported["rows"][5][1] == "n/c"
    text = RUNNER.invoke(app, ["leaderboard", "--db", str(db), "--task", "phantom-report", "--style", "radvlm-grpo"])
    assert text.exit_code == 0 and f"{PAPER_NAME} (mine, T2)" in text.output
    assert "n/c: normal-template vs Template (paper) R-L: convention: published rexrank" in text.output


@pytest.mark.slow
def test_site_task_page_lists_published_rows_outside_the_leaderboard(reported_db, tmp_path):
    out = tmp_path / "site"
    result = RUNNER.invoke(app, ["site", "build", "--db", str(reported_db["db"]), "--out", str(out), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    page = (out / "tasks" / "phantom-report.html").read_text()
    section = page.split('id="published"', 1)[1]
    verdicts = re.findall(r'<tr class="verdict-([a-z-]+)">', section)
    assert sorted(verdicts) == ["differs", "not-comparable", "reproduced"]
    leaderboard = page.split('class="sortable leaderboard"', 1)[1].split("</table>", 1)[0]
    assert PAPER_NAME not in leaderboard
    assert "convention: published rexrank, run radvlm-grpo" in section


@pytest.mark.slow
@pytest.mark.browser
def test_browser_shows_the_three_verdicts_beside_the_run(reported_db, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    out = tmp_path / "site"
    result = RUNNER.invoke(app, ["site", "build", "--db", str(reported_db["db"]), "--out", str(out), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--headless", "--disable-gpu"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((out / "tasks" / "phantom-report.html").resolve().as_uri())
        page.wait_for_load_state("load")
        table = page.locator("table.published")
        assert table.is_visible()
        badges = table.locator(".badge.verdict")
        assert sorted(badges.all_text_contents()) == ["differs", "not comparable", "reproduced"]
        colours = {t: badges.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i, t in
                   enumerate(badges.all_text_contents())}  # fmt: skip
        assert len(set(colours.values())) == 3  # each verdict styled apart
        # The published rows sort like every site table, and never enter the ranked leaderboard.
        table.locator("thead th").nth(6).locator("button").click()
        assert table.locator("tbody tr td.verdict").all_text_contents()[0].strip().startswith("differs")
        ranked = page.locator("table.leaderboard tbody tr td.model").all_inner_texts()
        assert ranked == ["normal-template"]
        assert errors == []
        browser.close()


def test_paper_tables_put_table_1_and_3_rows_beside_a_run_without_ranking_them():
    """Stored-row dicts as leaderboard_rows gives them; the ledger as shipped (RadVLM+RL is 29.9 R-L in Table 1)."""
    from evalkit.published import bundled_records
    from evalkit.views.leaderboard import paper_tables

    task = "mimic-cxr-report-radvlm-filtered"
    base = dict(task=task, kind="report_generation", model="radvlm-grpo", n=3314, task_size=3314, partial=False,
                status="ok", run_id="r1", run_profile="radvlm-grpo", published_as=["RadVLM+RL", "+RCQ"])  # fmt: skip
    rows = [
        {**base, "metric": "rouge_l", "value": 0.2985, "ci_low": 0.292, "ci_high": 0.305},
        {**base, "metric": "radcliq_v1", "value": 0.95, "ci_low": 0.94, "ci_high": 0.96},
        {**base, "metric": "response_chars", "value": 171.2, "ci_low": 168.0, "ci_high": 174.0},
    ]
    (table,) = paper_tables(rows, published=bundled_records())
    assert [r[0] for r in table["rows"]] == ["radvlm-grpo"]
    reported = table["reported"]
    assert [r[0] for r in reported["rows"]] == [
        "RadVLM+RL (radvlm-grpo, Table 1)", "  radvlm-grpo vs RadVLM+RL",
        "+RCQ (radvlm-grpo, Table 3)", "  radvlm-grpo vs +RCQ",
    ]  # fmt: skip
    columns = table["columns"][1:]
    t1_values, t1_verdicts = reported["rows"][0][1:], reported["rows"][1][1:]
    assert t1_values[columns.index("R-L")] == "29.9" and t1_verdicts[columns.index("R-L")] == "✓ -0.1"
    assert t1_verdicts[columns.index("RCQ↓")] == "✗ +0.09 (4.5 CI)"  # 0.95 vs 0.86: 0.09 / 0.02 wide CI
    assert t1_values[columns.index("ANC")] == ""  # Table 1 prints no ANC; Table 3 does
    t3_values, t3_verdicts = reported["rows"][2][1:], reported["rows"][3][1:]
    assert t3_values[columns.index("ANC")] == "171" and t3_verdicts[columns.index("ANC")] == "✓ +0.2"
    assert t3_values[columns.index("RCQ↓")] == "0.86*"
    assert t1_verdicts[columns.index("B-S")] == "n/c"  # no bertscore in this run
    assert "radvlm-grpo vs RadVLM+RL B-S: the run has no value (missing)" in reported["notes"]
