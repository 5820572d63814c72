"""The CPU demo's GRPO checkpoint against its SFT parent: a health table from `evalkit health` (the parent comes from
the shipped card's lineage), and the site's "RL health" panel in a real headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]

pytestmark = pytest.mark.slow  # two tiny Qwen3-VL checkpoints generate 12 reports each on the CPU
TASK = "phantom-report"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory, data_root) -> Path:
    from evalkit import evaluate

    db = tmp_path_factory.mktemp("health-demo") / "results.duckdb"
    for model in ("demo-qwen3vl-sft", "demo-qwen3vl-sft-grpo"):
        evaluate(model, TASK, db=db, data_root=data_root, limit=12, device="cpu", batch_size=12)
    return db


def test_grpo_checkpoint_gets_a_health_table_against_its_sft_parent(demo_db):
    result = CliRunner().invoke(app, ["health", "-t", TASK, "-m", "demo-qwen3vl-sft-grpo", "--db", str(demo_db),
                                      "--json", "--n-boot", "500"])  # fmt: skip
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert report["parent"] == "demo-qwen3vl-sft"  # from the shipped card's lineage, not given on the command line
    rows = {r["metric"]: r for r in report["rows"]}
    assert {"response_chars", "omission_rate", "negation_flip_rate", "largest_cluster_share"} <= set(rows)
    for row in rows.values():
        assert row["parent_value"] is not None and row["delta_low"] <= row["delta"] <= row["delta_high"]
    # The card's reward (soft-F1 IoU) belongs to the grounding tasks: on reports the check cannot run, and says so.
    assert report["goodhart"]["rewards"] == ["soft_f1_iou"]
    assert report["goodhart"]["verdict"] == "inconclusive" and "soft_f1_iou" in report["goodhart"]["reason"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_site_shows_the_rl_health_panel(demo_db, tmp_path, browser):
    out = tmp_path / "site"
    result = CliRunner().invoke(app, ["site", "build", "--db", str(demo_db), "--out", str(out), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    for path in (out / "models" / "demo-qwen3vl-sft-grpo.html", out / "tasks" / f"{TASK}.html"):
        page.goto(path.as_uri())
        panel = page.locator("section.rl-health")
        assert panel.count() == 1 and panel.is_visible()
        assert "vs parent demo-qwen3vl-sft" in panel.locator("h3").inner_text()
        assert "Goodhart check" in panel.inner_text() and "inconclusive" in panel.inner_text()
        names = panel.locator("tbody td:nth-child(2)").all_inner_texts()
        assert "response_chars" in names and "omission_rate" in names
        titles = panel.locator("svg.health-plot").evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")
        assert titles == ["answer length: candidate vs parent", "finding label rates (share of answers asserting each)"]
        assert panel.locator("svg.health-plot rect").count() >= 4  # bars of candidate and parent
    # The SFT parent declares the untrained base, which did not run here: no panel on its page.
    page.goto((out / "models" / "demo-qwen3vl-sft.html").as_uri())
    assert page.locator("section.rl-health").count() == 0
    assert errors == []
    page.close()


def test_runs_stored_before_the_lineage_field_still_render(demo_db, tmp_path):
    import shutil

    from evalkit.store import Store

    db = tmp_path / "old.duckdb"
    shutil.copy(demo_db, db)
    with Store(db) as store:  # a database written before cards had `lineage`
        for run in store.query("SELECT run_id, card FROM runs"):
            card = json.loads(run["card"])
            card.pop("lineage", None)
            store.con.execute("UPDATE runs SET card = ? WHERE run_id = ?", [json.dumps(card), run["run_id"]])
    out = tmp_path / "site"
    result = CliRunner().invoke(app, ["site", "build", "--db", str(db), "--out", str(out), "--n-boot", "200"])
    assert result.exit_code == 0, result.output
    # The GRPO card's `training.base_card` names the recipe's parent (demo-qwen3vl-sft-s0), which did not run here.
    assert "rl-health" not in (out / "models" / "demo-qwen3vl-sft-grpo.html").read_text()
