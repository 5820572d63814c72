"""The static site: pages, escaping, privacy of credentialed tasks; in a real headless Chromium where present."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import ROOT
from typer.testing import CliRunner

from evalkit.cli import app

XSS_REPORT = "<script>alert(1)</script> <img src=x onerror=alert(2)> The lungs are clear."
XSS_MODEL = "<img src=x onerror=alert(3)>"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _run(db: Path, data_root: Path, model: str, task: str, limit: int | None = None) -> None:
    from evalkit import evaluate

    evaluate(model, task, db=db, data_root=data_root, limit=limit)


def _build(db: Path, out: Path, *extra: str):
    result = CliRunner().invoke(app, ["site", "build", "--db", str(db), "--out", str(out), "--n-boot", "200", *extra])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def public_db(tmp_path_factory, data_root) -> Path:
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    db = tmp_path_factory.mktemp("site") / "results.duckdb"
    for model in ("nn-retrieval", "normal-template"):
        _run(db, data_root, model, "phantom-report")
    for model in ("prior-box", "whole-image"):
        _run(db, data_root, model, "phantom-abnormality-grounding", limit=8)
    samples = load_samples(resolve_tasks("phantom-report")[0], data_root)
    predictions = db.parent / "xss.jsonl"
    predictions.write_text(
        "".join(json.dumps({"sample_id": s.sample_id, "prediction": XSS_REPORT}) + "\n" for s in samples[:4])
    )
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--task",
            "phantom-report",
            "--predictions",
            str(predictions),
            "--model-name",
            XSS_MODEL,
            "--db",
            str(db),
            "--data-root",
            str(data_root),
        ],
    )
    assert result.exit_code == 0, result.output
    return db


VIEWER_PART_SIZE = 5  # small parts in the shared site, so the browser tests walk across several of them


@pytest.fixture(scope="module")
def public_site(public_db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("public-site") / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("evalkit.views.site_data.PART_SIZE", VIEWER_PART_SIZE)
        _build(public_db, out)
    return out


@pytest.fixture(scope="module")
def credentialed(tmp_path_factory, data_root):
    """A credentialed copy of the report task (as MIMIC-CXR would be), run by two baselines."""
    folder = tmp_path_factory.mktemp("cred")
    tasks = folder / "tasks"
    tasks.mkdir()
    text = ROOT.joinpath("tasks/phantom-report.yaml").read_text()
    text = text.replace("name: phantom-report", "name: cred-report").replace("access: public", "access: credentialed")
    (tasks / "cred-report.yaml").write_text(text)
    db = folder / "results.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EVALKIT_TASKS_PATH", str(tasks))
        for model in ("nn-retrieval", "normal-template"):
            _run(db, data_root, model, "cred-report")
        public, private = folder / "public", folder / "private"
        _build(db, public)
        _build(db, private, "--private")
    from evalkit.store import Store

    with Store(db, read_only=True) as store:
        texts = store.query("SELECT reference_text AS t, sample_id FROM samples WHERE task = 'cred-report'")
        generations = store.query("SELECT text AS t FROM generations")
    secrets = {r["t"] for r in texts if r["t"]} | {r["sample_id"] for r in texts}
    secrets |= {r["t"] for r in generations if r["t"] and len(r["t"]) > 8}
    return {"db": db, "public": public, "private": private, "secrets": secrets}


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def _sample_data(site: Path, task: str) -> tuple[dict, list[dict]]:
    """A task's sample index and every sample record, read back from the data scripts as the browser would."""
    from evalkit.views.site_data import read_index, read_part

    folder = site / "data" / task
    index = read_index((folder / "index.js").read_text())
    parts = sorted(folder.glob("part-*.js"), key=lambda p: int(p.stem.split("-")[1]))
    return index, [sample for part in parts for sample in read_part(part.read_text())]


# --- without a browser ------------------------------------------------------------------------------------------
def test_site_has_every_page_kind(public_site):
    assert (public_site / "index.html").exists()
    assert (public_site / "tasks" / "phantom-report.html").exists()
    assert (public_site / "models" / "nn-retrieval.html").exists()
    # One viewer page per task, the samples as data: every sample is there, with every model's output.
    assert sorted(p.name for p in (public_site / "samples").iterdir()) == [
        "phantom-abnormality-grounding.html",
        "phantom-report.html",
    ]
    for task, n, models in (("phantom-report", 16, 3), ("phantom-abnormality-grounding", 8, 2)):
        index, samples = _sample_data(public_site, task)
        assert index["ids"] == sorted(index["ids"]) and len(index["ids"]) == n
        assert len(list((public_site / "data" / task).glob("part-*.js"))) == -(-n // VIEWER_PART_SIZE)
        assert [s["id"] for s in samples] == index["ids"]
        assert max(len(s["out"]) for s in samples) == models
    assert list((public_site / "images").glob("*.png"))
    index = (public_site / "index.html").read_text()
    assert "rouge_l" in index and "primary" in index and "↑" in index
    model = (public_site / "models" / "nn-retrieval.html").read_text()
    for field in ("task version", "decoding", "evalkit version", "git hash", "started", "model fingerprint"):
        assert field in model
    for page in _pages(public_site):
        html = page.read_text()
        assert "https://" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        assert "Private build" not in html


def test_model_text_is_escaped_in_the_html(public_site):
    for page in _pages(public_site):
        html = page.read_text()
        assert "<script>alert" not in html and "<img src=x" not in html, page
    # In the data scripts a model's text is a JSON string with < and > escaped: it cannot end the script.
    for script in (public_site / "data").rglob("*.js"):
        assert "<" not in script.read_text() and ">" not in script.read_text(), script
    _, samples = _sample_data(public_site, "phantom-report")
    assert sum(o["a"] == XSS_REPORT for s in samples for o in s["out"]) == 4
    assert "&lt;img src=x onerror=alert(3)&gt;" in (public_site / "index.html").read_text()


def test_public_build_of_a_credentialed_task_has_no_sample_text(credentialed):
    public = credentialed["public"]
    # No data folder at all: its parts are compressed, so the byte search below could not see text inside them.
    assert not (public / "samples").exists() and not (public / "images").exists() and not (public / "data").exists()
    blobs = [p.read_bytes() for p in public.rglob("*") if p.is_file()]
    assert blobs
    for secret in credentialed["secrets"]:
        needle = secret.encode()
        assert not any(needle in blob for blob in blobs), f"sample text leaked: {secret[:60]!r}"
    task_page = (public / "tasks" / "cred-report.html").read_text()
    assert "withheld" in task_page and "rouge_l" in task_page


def test_private_build_includes_samples_and_says_so_on_every_page(credentialed):
    private = credentialed["private"]
    pages = _pages(private)
    assert len(_sample_data(private, "cred-report")[1]) == 16
    for page in pages:
        assert "Private build." in page.read_text(), page
    joined = "".join(p.read_text() for p in pages) + json.dumps(_sample_data(private, "cred-report"))
    assert any(secret in joined for secret in credentialed["secrets"])


def test_part_scripts_hold_compressed_json_that_reads_back():
    from evalkit.views.site_data import part_script, read_part

    data = [{"id": "s-1", "out": [{"m": 0, "a": XSS_REPORT + " \u00e9\u2028", "b": [[0.1, 0.2, 0.3, 0.4]]}]}] * 50
    text = part_script("task/0", data)
    assert read_part(text) == data
    assert part_script("task/0", data) == text  # same data, same bytes (no timestamp in the gzip header)
    assert text.startswith('(window.EVALKIT_PARTS = window.EVALKIT_PARTS || {})["task/0"] = "')
    assert "<" not in text and ">" not in text and "&" not in text
    assert len(text) < len(json.dumps(data)) / 5  # repeated output compresses
    with pytest.raises(ValueError, match="not a part script"):
        read_part("window.x = 1;")


def test_build_refuses_a_foreign_folder_and_replaces_its_own(public_db, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    result = CliRunner().invoke(app, ["site", "build", "--db", str(public_db), "--out", str(foreign)])
    assert result.exit_code == 2 and "not made by `evalkit site build`" in result.output
    assert (foreign / "notes.txt").exists()
    out = tmp_path / "site"
    _build(public_db, out)
    (out / "stale.html").write_text("from an earlier build")
    _build(public_db, out)
    assert not (out / "stale.html").exists()


# --- in a real headless Chromium --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need the Python package playwright (pip install -e '.[dev]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A page with its console errors, uncaught exceptions and dialogs (alerts) recorded."""

    def __init__(self, browser, path: Path, fragment: str | None = None) -> None:
        from urllib.parse import quote

        self.page = browser.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(path.resolve().as_uri() + ("" if fragment is None else "#" + quote(fragment)))
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.page.close()


def _column(page, table, index: int) -> list[str]:
    return table.locator("tbody tr").evaluate_all(
        f"rows => rows.map(r => r.cells[{index}].getAttribute('data-sort') ?? r.cells[{index}].textContent.trim())"
    )


@pytest.mark.browser
def test_pages_load_without_console_errors(browser, public_site):
    pages = [public_site / "index.html", *sorted((public_site / "tasks").glob("*.html"))]
    pages += sorted((public_site / "models").glob("*.html"))
    pages += sorted((public_site / "samples").glob("*.html"))
    for path in pages:
        visit = Visit(browser, path)
        assert visit.errors == [], (path, visit.errors)
        assert visit.dialogs == [], (path, visit.dialogs)
        assert visit.page.locator("link[rel=stylesheet]").count() == 1
        # The stylesheet really applied (file:// and the page's CSP allow it).
        assert visit.page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor") != (
            "rgba(0, 0, 0, 0)"
        )
        visit.close()


@pytest.mark.browser
def test_tables_sort_on_header_click(browser, public_site):
    visit = Visit(browser, public_site / "index.html")
    table = visit.page.locator("#phantom-report table.sortable")
    headers = table.locator("thead th")
    names = [headers.nth(i).inner_text() for i in range(headers.count())]
    model_col = names.index("model")
    rouge_col = next(i for i, n in enumerate(names) if n.startswith("rouge_l"))
    headers.nth(model_col).locator("button").click()
    models = _column(visit.page, table, model_col)
    assert models == sorted(models)
    headers.nth(model_col).locator("button").click()
    assert _column(visit.page, table, model_col) == sorted(models, reverse=True)
    headers.nth(rouge_col).locator("button").click()  # higher is better: best first
    values = [float(v) for v in _column(visit.page, table, rouge_col)]
    assert values == sorted(values, reverse=True)
    assert headers.nth(rouge_col).get_attribute("aria-sort") == "descending"
    headers.nth(rouge_col).locator("button").click()
    assert [float(v) for v in _column(visit.page, table, rouge_col)] == sorted(values)
    assert visit.errors == []
    visit.close()


def _viewer(browser, site: Path, task: str, sample_id: str | None = None) -> Visit:
    path = site / "samples" / f"{task}.html"
    visit = Visit(browser, path, sample_id)
    visit.page.wait_for_selector("#sample-view article.output")
    return visit


@pytest.mark.browser
def test_script_in_a_report_renders_as_text(browser, public_site):
    _, samples = _sample_data(public_site, "phantom-report")
    hit = [s["id"] for s in samples if any(o["a"] == XSS_REPORT for o in s["out"])]
    assert len(hit) == 4
    for sample_id in hit[:2]:
        visit = _viewer(browser, public_site, "phantom-report", sample_id)
        assert visit.page.locator("h1").inner_text() == sample_id
        assert visit.dialogs == [] and visit.errors == []
        assert any("<script>alert(1)</script>" in t for t in visit.page.locator("pre.generated").all_text_contents())
        assert any(XSS_MODEL in t for t in visit.page.locator("article.output h3").all_text_contents())
        assert visit.page.locator("main script").count() == 0 and visit.page.locator("main img").count() == 0
        visit.close()
    for path in (public_site / "index.html", public_site / "tasks" / "phantom-report.html"):
        visit = Visit(browser, path)
        assert visit.dialogs == [] and visit.errors == []
        assert XSS_MODEL in visit.page.locator("main").inner_text()
        assert visit.page.locator("main img").count() == 0
        visit.close()


@pytest.mark.browser
def test_box_layers_toggle(browser, public_site):
    index, samples = _sample_data(public_site, "phantom-abnormality-grounding")
    visit = _viewer(browser, public_site, "phantom-abnormality-grounding")
    sample = samples[0]
    assert visit.page.locator("h1").inner_text() == index["ids"][0]  # no id in the URL: the first sample
    reference = visit.page.locator("svg.overlay g[data-layer=ref]")
    # The boxes are drawn as the server-side pages drew them: x = x1 * width, ... in the image's own pixels.
    width, height = sample["image"]["width"], sample["image"]["height"]
    drawn = visit.page.locator("svg.overlay rect.box.ref").evaluate_all(
        "rs => rs.map(r => ['x', 'y', 'width', 'height'].map(a => Number(r.getAttribute(a))))"
    )
    expected = [[b[0] * width, b[1] * height, (b[2] - b[0]) * width, (b[3] - b[1]) * height] for b in sample["boxes"]]
    assert drawn and [pytest.approx(d) for d in expected] == drawn
    predicted = visit.page.locator("svg.overlay g[data-layer=m0] rect.box.pred").count()
    assert predicted == len(next(o for o in sample["out"] if o["m"] == 0).get("b", []))
    assert reference.is_visible()
    visit.page.locator("input[data-toggle=ref]").uncheck()
    assert reference.evaluate("g => getComputedStyle(g).display") == "none"
    visit.page.locator("input[data-toggle=ref]").check()
    assert reference.evaluate("g => getComputedStyle(g).display") != "none"
    assert visit.page.evaluate("document.querySelector('svg.overlay image').getBBox().width") > 0
    assert visit.errors == []
    visit.close()


@pytest.mark.browser
def test_every_sample_is_reachable_from_the_task_page(browser, public_site):
    index, samples = _sample_data(public_site, "phantom-report")
    visit = Visit(browser, public_site / "tasks" / "phantom-report.html")
    table = visit.page.locator("table.samples")
    links = table.locator("tbody tr td:first-child a")
    assert links.all_text_contents() == index["ids"]
    scores = _column(visit.page, table, 1)
    assert [float(v) if v else None for v in scores] == [row[0] for row in index["primary_scores"]]
    # Sorting works on the drawn table too.
    table.locator("thead th").nth(1).locator("button").click()
    values = [float(v) for v in _column(visit.page, table, 1) if v]
    assert values == sorted(values, reverse=True)
    # A link opens the viewer on that sample; previous/next walk through all of them in order.
    target = index["ids"][3]
    table.locator(f"a:text-is('{target}')").click()
    visit.page.wait_for_selector("#sample-view article.output")
    assert visit.page.locator("h1").inner_text() == target
    reference = next(s for s in samples if s["id"] == target)["text"]
    assert visit.page.locator("pre.reference").inner_text() == reference
    seen = [target]  # the walk crosses parts (VIEWER_PART_SIZE): each is loaded and inflated on the way
    while visit.page.locator("a[data-nav=next]").is_visible():
        visit.page.locator("a[data-nav=next]").click()
        visit.page.wait_for_function("id => document.querySelector('h1').textContent !== id", arg=seen[-1])
        seen.append(visit.page.locator("h1").inner_text())
    assert seen == index["ids"][3:]
    visit.page.locator("a[data-nav=prev]").click()
    visit.page.wait_for_function("id => document.querySelector('h1').textContent !== id", arg=seen[-1])
    assert visit.page.locator("h1").inner_text() == seen[-2]
    # Jumping back to the first part (already inflated) and to the last one drew what the data says.
    for position in (0, len(index["ids"]) - 1):
        there = index["ids"][position]
        visit.page.evaluate("id => { location.hash = encodeURIComponent(id); }", there)
        visit.page.wait_for_function("id => document.querySelector('h1').textContent === id", arg=there)
        assert visit.page.locator("pre.reference").inner_text() == samples[position]["text"]
        generated = visit.page.locator("pre.generated").all_text_contents()
        assert generated == [o["a"] for o in samples[position]["out"]]
    assert visit.errors == []
    visit.close()


@pytest.mark.browser
def test_viewer_says_when_a_sample_or_the_decoder_is_missing(browser, public_site):
    visit = Visit(browser, public_site / "samples" / "phantom-report.html", "no-such-sample")
    visit.page.wait_for_selector("[data-field=missing]:not(.hidden)")
    assert visit.page.locator("article.output").count() == 0 and visit.errors == []
    visit.close()
    page = browser.new_page()
    page.add_init_script("delete window.DecompressionStream")
    page.goto((public_site / "samples" / "phantom-report.html").resolve().as_uri())
    page.wait_for_selector("[data-field=unsupported]:not(.hidden)")
    assert "DecompressionStream" in page.locator("[data-field=unsupported]").inner_text()
    page.close()


def test_site_size_does_not_grow_with_pages(public_db, tmp_path):
    """Files per task are a fixed handful plus one data part per PART_SIZE samples, not one page per sample."""
    from evalkit.views.site_data import PART_SIZE

    out = tmp_path / "site"
    _build(public_db, out)
    per_task = {t.name: len(list(t.iterdir())) for t in (out / "data").iterdir()}
    assert per_task == {"phantom-report": 1 + -(-16 // PART_SIZE), "phantom-abnormality-grounding": 2}
    assert len(list(out.rglob("*.html"))) == 1 + 2 + 2 + 5  # index, tasks, viewers, models


# --- the pairwise significance map --------------------------------------------------------------------------------
def test_pairwise_map_holds_every_pair_with_holm_across_pairs(public_db, public_site):
    from evalkit.results.scores import compare_runs
    from evalkit.stats import holm
    from evalkit.store import Store
    from evalkit.views.leaderboard import latest_runs
    from evalkit.views.site_pairwise import pairwise_map

    html = (public_site / "tasks" / "phantom-report.html").read_text()
    assert html.count('class="pairwise-map"') == 1  # leaderboard order; site.js draws the name order from it
    assert XSS_MODEL not in html  # the model name is escaped in the SVG and the table too
    with Store(public_db, read_only=True) as store:
        runs = {r["model"]: r for r in latest_runs(store, "phantom-report")}
        models = sorted(runs)
        pmap = pairwise_map(
            store, "phantom-report", [(m, runs[m]) for m in models], "rouge_l", True, n_boot=300, seed=4
        )
        pairs = pmap.pairs()
        assert len(pairs) == len(models) * (len(models) - 1) // 2
        raw = []
        for cell in pairs:
            _, _, (c,) = compare_runs(
                store, "phantom-report", cell.row, cell.col, ["rouge_l"], n_boot=300, n_perm=0, seed=4
            )
            assert (cell.delta, cell.low, cell.high, cell.n) == pytest.approx(
                (c.delta, c.ci_low, c.ci_high, c.n_shared)
            )
            mirror = pmap.cells[(cell.col, cell.row)]
            assert (mirror.delta, mirror.low, mirror.high) == pytest.approx((-c.delta, -c.ci_high, -c.ci_low))
            raw.append(c.p_bootstrap)
            assert cell.unit.startswith("by image")
        assert [c.p_adjusted for c in pairs] == pytest.approx(holm(raw))


def test_difference_to_the_leader_is_the_paired_bootstrap_with_holm_across_models(public_db, tmp_path):
    """The task page's Δ vs #1 column, read from the pairwise map, equals each model's own paired bootstrap
    against the leader (`compare_runs`), with Holm over those comparisons only."""
    from evalkit.results.scores import compare_runs
    from evalkit.stats import holm
    from evalkit.store import Store
    from evalkit.views.leaderboard import latest_runs
    from evalkit.views.site import SiteBuilder, _stored_spec

    with Store(public_db, read_only=True) as store:
        runs = latest_runs(store, "phantom-report")
        builder = SiteBuilder(store, tmp_path / "site", n_boot=300, seed=4)
        builder.out.mkdir()
        view = builder._task_view("phantom-report", runs, _stored_spec(runs))
        leader, others = view.rows[0], view.rows[1:]
        assert len(others) >= 2 and leader.vs_leader is None
        expected = []
        for row in others:
            _, _, (c,) = compare_runs(
                store, "phantom-report", row.model, leader.model, ["rouge_l"], n_boot=300, n_perm=0, seed=4
            )
            expected.append(c)
        for row, c, p_adj in zip(others, expected, holm([c.p_bootstrap for c in expected]), strict=True):
            got = row.vs_leader
            assert (got["delta"], got["low"], got["high"], got["p"]) == pytest.approx(
                (c.delta, c.ci_low, c.ci_high, p_adj)
            )
            assert got["n"] == c.n_shared and got["tied"] == (p_adj >= 0.05)


def _row_order(svg) -> list[str]:
    """The matrix's row models, top to bottom (from each cell's data-row, in document order)."""
    rows = svg.locator("g.pair").evaluate_all("gs => gs.map(g => g.dataset.row)")
    return list(dict.fromkeys(rows))


@pytest.mark.browser
def test_pairwise_map_follows_the_leaderboard_and_reorders_by_name(browser, public_site):
    visit = Visit(browser, public_site / "tasks" / "phantom-report.html")
    page = visit.page
    leaderboard = _column(page, page.locator("table.leaderboard"), 1)
    by_rank = page.locator("svg.pairwise-map[data-order=leaderboard]")
    by_name = page.locator("svg.pairwise-map[data-order=name]")
    assert by_rank.is_visible() and not by_name.is_visible()
    k = len(leaderboard)
    assert k >= 3 and by_rank.locator("g.pair").count() == k * (k - 1)
    assert _row_order(by_rank) == leaderboard
    assert page.locator("main").inner_text().count("resampled by image") >= 1
    first = by_rank.locator("g.pair").first
    assert re.search(r"\[[-+]\d\.\d{4}, [-+]\d\.\d{4}\], Holm p", first.locator("title").text_content())
    page.locator("button[data-pairwise-order=name]").click()
    assert by_name.is_visible() and not by_rank.is_visible()
    assert page.locator("button[data-pairwise-order=name]").get_attribute("aria-pressed") == "true"
    assert _row_order(by_name) == sorted(leaderboard, key=str.lower)
    # Significant cells are coloured, mirror cells agree in significance.
    cells = by_rank.locator("g.pair").evaluate_all(
        "gs => gs.map(g => [g.dataset.row, g.dataset.col, g.dataset.significant, "
        "g.querySelector('rect').getAttribute('fill')])"
    )
    flags = {(r, c): s for r, c, s, _ in cells}
    assert all(flags[(c, r)] == s for (r, c), s in flags.items())
    assert all((fill == "#d9d9d9") == (s == "no") for _, _, s, fill in cells)
    table = page.locator("table.pairwise-table")
    table.locator("thead th").nth(4).locator("button").click()  # Holm p, ascending
    ps = [float(v) for v in _column(page, table, 4)]
    assert ps == sorted(ps)
    assert visit.errors == [] and visit.dialogs == []
    visit.close()


# --- the data's compact form (boxes read back from the answer, the index's packed bulk) and batched reads ----------
def _raw_part(path: Path) -> list[dict]:
    """A part as stored, before read_part (or site.js) reads the boxes back from the answers."""
    import base64
    import gzip

    text = path.read_text()
    return json.loads(gzip.decompress(base64.b64decode(text[text.index('= "') + 3 : text.rindex('"')])))


def test_boxes_an_answer_states_are_stored_once():
    from evalkit.views.site_data import _output, part_script, read_part

    boxes = [[0.1, 0.25, 0.5, 0.75], [0.2, 0.3, 0.4, 0.5]]
    stated = _output(0, "[0.1, 0.25, 0.5, 0.75] [0.2, 0.3, 0.4, 0.5]", {"boxes": boxes}, None, None)
    assert stated == {"m": 0, "a": "[0.1, 0.25, 0.5, 0.75] [0.2, 0.3, 0.4, 0.5]", "bt": 1}
    # The parser read other boxes than the text's pattern gives (another format, scaled, more digits kept): as is.
    for text, boxes in (
        ("<box>0.1,0.2,0.3,0.4</box>", [[0.1, 0.2, 0.3, 0.4]]),
        ("[10, 20, 30, 40]", [[0.1, 0.2, 0.3, 0.4]]),
        ("[0.12345, 0.2, 0.3, 0.4]", [[0.12345, 0.2, 0.3, 0.4]]),  # rounded to 4 digits on the page
        ("[0.1, 0.2, 0.3, 0.4] [0.5, 0.6, 0.7, 0.8]", [[0.1, 0.2, 0.3, 0.4]]),  # the parser kept one
    ):
        item = _output(0, text, {"boxes": boxes}, None, None)
        assert "bt" not in item and item["b"] == [[round(v, 4) for v in b] for b in boxes], text
    data = [{"id": "s", "out": [stated, {"m": 1, "a": "none"}]}]
    assert read_part(part_script("t/0", data))[0]["out"][0]["b"] == [[0.1, 0.25, 0.5, 0.75], [0.2, 0.3, 0.4, 0.5]]


def test_index_bulk_is_packed_and_reads_back():
    from evalkit.views.site_data import index_script, read_index

    index = {"task": "t", "slug": "t", "ids": [f"s{i:04d}" for i in range(500)], "primary_scores": [[0.5]] * 500}
    text = index_script("t", index)
    assert read_index(text) == index
    assert '"ids"' not in text and len(text) < len(json.dumps(index)) / 4


def test_rounded_scores_equal_pythons_round():
    import numpy as np

    from evalkit.views.site_data import SCORE_DIGITS, rounded_scores

    rng = np.random.default_rng(0)
    # Halves of the last digit that binary floats hold exactly (k/16) and ones they do not (0.00005 steps).
    values = np.concatenate([rng.random(20_000), rng.normal(0, 50, 5_000), np.arange(-2, 2, 1 / 16)])
    values = np.concatenate([values, np.arange(-1, 1, 0.00005), [2.675, 0.12345, 1e12 + 0.12345, -0.00005]])
    got = rounded_scores(values).tolist()
    assert [repr(v) for v in got] == [repr(round(float(v), SCORE_DIGITS)) for v in values]


def test_site_data_holds_each_stated_box_once_and_reads_back_the_stored_boxes(public_db, public_site):
    from evalkit.store import Store

    folder = public_site / "data" / "phantom-abnormality-grounding"
    raw = [o for part in sorted(folder.glob("part-*.js")) for s in _raw_part(part) for o in s["out"]]
    assert any(o.get("bt") for o in raw) and not any("bt" in o and "b" in o for o in raw)
    _, samples = _sample_data(public_site, "phantom-abnormality-grounding")
    with Store(public_db, read_only=True) as store:
        rows = store.query(
            "SELECT g.sample_id, r.model, g.parsed FROM generations g JOIN runs r USING (run_id) "
            "WHERE r.task = 'phantom-abnormality-grounding'"
        )
    index, _ = _sample_data(public_site, "phantom-abnormality-grounding")
    names = [m["name"] for m in index["models"]]
    shown = {(s["id"], names[o["m"]]): o.get("b", []) for s in samples for o in s["out"]}
    stored = {
        (r["sample_id"], r["model"]): [[round(v, 4) for v in b] for b in json.loads(r["parsed"])["boxes"]] for r in rows
    }
    assert shown == stored


def test_batched_reads_equal_the_per_run_ones(public_db):
    from evalkit.results.intervals import run_cis, runs_cis
    from evalkit.results.queries import (
        display_runs,
        failed_samples,
        failed_samples_of,
        run_metrics,
        run_metrics_of,
    )
    from evalkit.results.scores import load_run_scores
    from evalkit.store import Store
    from evalkit.views.site_scores import task_scores

    with Store(public_db, read_only=True) as store:
        runs = display_runs(store)
        ids = [r["run_id"] for r in runs]
        assert run_metrics_of(store, ids) == {i: run_metrics(store, i) for i in ids}
        assert failed_samples_of(store, ids) == {i: failed_samples(store, i) for i in ids}
        assert runs_cis(store, runs, n_boot=200) == {r["run_id"]: run_cis(store, r, n_boot=200) for r in runs}
        for task in {r["task"] for r in runs}:
            of_task = [r["run_id"] for r in runs if r["task"] == task]
            metrics = ["miou", "radvlm_map50", "rouge_l", "cider_d"]
            assert task_scores(store, of_task, metrics) == {i: load_run_scores(store, i, metrics) for i in of_task}


@pytest.mark.browser
def test_boxes_read_back_from_the_answer_are_drawn_and_listed(browser, public_site):
    _, samples = _sample_data(public_site, "phantom-abnormality-grounding")
    folder = public_site / "data" / "phantom-abnormality-grounding"
    raw = {s["id"]: s for part in sorted(folder.glob("part-*.js")) for s in _raw_part(part)}
    sample = next(s for s in samples if any(o.get("bt") for o in raw[s["id"]]["out"]))
    output = next(o for o in sample["out"] if "bt" in next(r for r in raw[sample["id"]]["out"] if r["m"] == o["m"]))
    visit = _viewer(browser, public_site, "phantom-abnormality-grounding", sample["id"])
    width, height = sample["image"]["width"], sample["image"]["height"]
    drawn = visit.page.locator(f"svg.overlay g[data-layer=m{output['m']}] rect.box.pred").evaluate_all(
        "rs => rs.map(r => ['x', 'y', 'width', 'height'].map(a => Number(r.getAttribute(a))))"
    )
    expected = [[b[0] * width, b[1] * height, (b[2] - b[0]) * width, (b[3] - b[1]) * height] for b in output["b"]]
    assert drawn and [pytest.approx(d) for d in expected] == drawn
    listed = visit.page.locator("article.output p.boxes").all_text_contents()
    assert any(text.startswith("parsed boxes: [") for text in listed)
    assert visit.errors == []
    visit.close()


# Every element of an SVG in document order: tag, attributes (numbers compared as numbers: "246.0" is 246) and the
# text of leaf elements; `data-orders` left out (what site.js may draw, not what is drawn).
CANONICAL_SVG = """svg => Array.from([svg, ...svg.querySelectorAll('*')]).map(el => [
    el.tagName,
    Array.from(el.attributes).filter(a => a.name !== 'data-orders')
        .map(a => a.name + '=' + a.value.replace(/-?[0-9]+(\\.[0-9]+)?/g, m => String(Number(m)))).sort(),
    el.children.length ? '' : el.textContent])"""


@pytest.mark.browser
def test_name_order_drawn_by_the_script_is_the_matrix_the_server_would_draw(browser, public_db, public_site):
    from evalkit.store import Store
    from evalkit.views.leaderboard import latest_runs
    from evalkit.views.site_pairwise import matrix_svg, pairwise_map

    visit = Visit(browser, public_site / "tasks" / "phantom-report.html")
    page = visit.page
    order = page.locator("svg.pairwise-map[data-order=leaderboard]").evaluate("s => JSON.parse(s.dataset.orders)")
    with Store(public_db, read_only=True) as store:
        runs = {r["model"]: r for r in latest_runs(store, "phantom-report")}
        pmap = pairwise_map(
            store, "phantom-report", [(m, runs[m]) for m in order[""]], "rouge_l", True, n_boot=200, seed=0
        )
    assert order["name"] == sorted(order[""], key=str.lower)
    page.locator("button[data-pairwise-order=name]").click()
    drawn = page.locator("svg.pairwise-map[data-order=name]").evaluate(CANONICAL_SVG)
    served = page.evaluate(
        f"text => ({CANONICAL_SVG})(new DOMParser().parseFromString(text, 'image/svg+xml').documentElement)",
        str(matrix_svg(pmap, order["name"], "name")),
    )
    assert len(drawn) > 3 * len(order[""]) ** 2 and drawn == served
    assert visit.errors == []
    visit.close()


def test_pairwise_map_beyond_its_cap_pairs_the_leader_with_everyone_and_the_first_models_with_each_other(public_db):
    """Pairs grow linearly with the models past `max_models`: the matrix's models pair with each other, the leader
    with every model (the leaderboard's "Δ vs #1"); each cell equals the uncapped map's."""
    from evalkit.stats import holm
    from evalkit.store import Store
    from evalkit.views.leaderboard import latest_runs
    from evalkit.views.site_pairwise import pairwise_map

    with Store(public_db, read_only=True) as store:
        runs = {r["model"]: r for r in latest_runs(store, "phantom-report")}
        ranked = [(m, runs[m]) for m in sorted(runs)]
        assert len(ranked) >= 3  # so that one pair (the 2nd and 3rd model) falls outside the cap
        full = pairwise_map(store, "phantom-report", ranked, "rouge_l", True, n_boot=300, seed=4)
        capped = pairwise_map(store, "phantom-report", ranked, "rouge_l", True, n_boot=300, seed=4, max_models=2)
    names = [m for m, _ in ranked]
    assert capped.shown == names[:2] and capped.models == names and full.shown == names
    expected = {(names[0], b) for b in names[1:]}
    assert {(c.row, c.col) for c in capped.pairs()} == expected
    for cell in capped.pairs():
        same = full.cells[(cell.row, cell.col)]
        assert (cell.delta, cell.low, cell.high, cell.p, cell.n) == (same.delta, same.low, same.high, same.p, same.n)
    assert [c.p_adjusted for c in capped.pairs()] == pytest.approx(holm([c.p for c in capped.pairs()]))
