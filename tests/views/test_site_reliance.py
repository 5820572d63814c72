"""The site's image-reliance panel and the leaderboard's reliance column, on a credentialed-marked phantom task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evalkit import evaluate
from evalkit.cli import app
from evalkit.registry import resolve_tasks
from evalkit.resources import bundled
from evalkit.store import Store
from evalkit.transforms.tasks import derive_task
from evalkit.views.site import build_site, slug

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.slow  # six runs behind one site build


@pytest.fixture(scope="module")
def reliance_db(tmp_path_factory, data_root) -> Path:
    """nn-retrieval and whole-image on a grounding task marked credentialed, and its blank and hflip variants."""
    folder = tmp_path_factory.mktemp("reliance-site")
    data = yaml.safe_load((bundled("tasks") / "phantom-anatomy-grounding.yaml").read_text())
    data.update(name="cred-anatomy", access="credentialed", metrics=["miou", "acc50"], primary_metric="miou")
    path = folder / "cred-anatomy.yaml"
    path.write_text(yaml.safe_dump(data))
    (task,) = resolve_tasks(str(path))
    db = folder / "r.duckdb"
    with Store(db) as store:
        for model in ("nn-retrieval", "whole-image"):
            tasks = [task, derive_task(task, "blank"), derive_task(task, "hflip")]
            evaluate(model, tasks, db=store, data_root=data_root, limit=8)
    return db


@pytest.fixture(scope="module")
def reliance_site(reliance_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    with Store(reliance_db, read_only=True) as store:
        build_site(store, out)
    return out


def test_panel_shows_aggregates_and_variants_stay_credentialed(reliance_site, reliance_db):
    html = (reliance_site / "tasks" / "cred-anatomy.html").read_text()
    assert 'id="image-reliance"' in html
    panel = html[html.index('id="image-reliance"') :]
    for text in ("nn-retrieval", "whole-image", "blank", "hflip", "flip equivariance", "boxes on blank"):
        assert text in panel
    with Store(reliance_db, read_only=True) as store:
        access = {r["task"]: r["access"] for r in store.query("SELECT task, access FROM runs")}
    assert access == {t: "credentialed" for t in ("cred-anatomy", "cred-anatomy@blank", "cred-anatomy@hflip")}
    # A public build: no per-sample data of the task or of its variants anywhere in the site.
    for variant in ("cred-anatomy", "cred-anatomy@blank", "cred-anatomy@hflip"):
        page = (reliance_site / "tasks" / f"{slug(variant)}.html").read_text()
        assert "Per-sample data is withheld" in page
    assert not (reliance_site / "data").exists() or not any((reliance_site / "data").rglob("*cred*"))
    assert "left lung" not in html and "right lung" not in panel  # no prompt or reference text


def test_leaderboard_reliance_column(reliance_db):
    result = CliRunner().invoke(app, ["leaderboard", "--db", str(reliance_db), "--json", "--reliance"])
    assert result.exit_code == 0, result.output
    rows = [r for r in json.loads(result.output) if r["metric"] == "image reliance"]
    assert {(r["task"], r["model"]) for r in rows} == {
        ("cred-anatomy", "nn-retrieval"),
        ("cred-anatomy", "whole-image"),
    }
    by_model = {r["model"]: r for r in rows}
    assert (
        by_model["whole-image"]["value"] == 0
        and by_model["whole-image"]["ci_low"] <= 0 <= by_model["whole-image"]["ci_high"]
    )
    assert "miou drop on cred-anatomy@blank" in by_model["nn-retrieval"]["reliance_of"]
    plain = CliRunner().invoke(app, ["leaderboard", "--db", str(reliance_db), "--json"])
    assert all(r["metric"] != "image reliance" for r in json.loads(plain.output))


@pytest.mark.browser
def test_panel_renders_and_sorts_in_chromium(reliance_site):
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((reliance_site / "tasks" / "cred-anatomy.html").resolve().as_uri())
        page.wait_for_load_state("load")
        table = page.locator("table.reliance")
        assert table.is_visible()
        models = table.locator("tbody tr td.model").all_text_contents()
        assert set(models) == {"nn-retrieval", "whole-image"}
        table.locator("thead th", has_text="model").locator("button").click()
        first = table.locator("tbody tr td.model").all_text_contents()
        table.locator("thead th", has_text="model").locator("button").click()
        second = table.locator("tbody tr td.model").all_text_contents()
        assert first == sorted(first) and second == sorted(second, reverse=True)
        assert errors == []
        browser.close()


def test_private_build_renders_the_transformed_images(reliance_db, tmp_path):
    import numpy as np
    from PIL import Image

    out = tmp_path / "private"
    with Store(reliance_db, read_only=True) as store:
        build_site(store, out, private=True)
    images = sorted((out / "images").glob("*.png"))
    assert len(images) == 3 * 8  # the original, blank and mirrored image of each of the 8 samples run
    uniform = [p for p in images if len(np.unique(np.asarray(Image.open(p)))) == 1]
    assert len(uniform) == 8  # the blank ones
