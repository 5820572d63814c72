"""The harmful cases of the bad-input corpus that need more than one command to show: identity of runs under
two model names, a failed sample that must not raise a metric, a site build interrupted over an existing site,
parse failures shown wherever numbers are, read-only opens of a foreign file, Ctrl-C and broken pipes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.registry import resolve_tasks
from evalkit.results.store import Store
from evalkit.run.runner import load_samples

GROUNDING = "phantom-anatomy-grounding"
ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args])


def _predictions(path: Path, data_root: Path, answer: str = "[0.1, 0.1, 0.6, 0.6]") -> Path:
    samples = load_samples(resolve_tasks(GROUNDING)[0], data_root)
    path.write_text("".join(json.dumps({"sample_id": s.sample_id, "prediction": answer}) + "\n" for s in samples))
    return path


def _board(db: Path, *extra: str) -> list[dict]:
    result = invoke("leaderboard", "--db", db, "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# --- identity ---------------------------------------------------------------------------------------------------
def test_same_predictions_under_two_model_names_are_two_runs_and_two_rows(tmp_path, data_root):
    db, preds = tmp_path / "r.duckdb", _predictions(tmp_path / "p.jsonl", data_root)
    ids = []
    for name in ("alpha", "beta"):
        result = invoke(
            "score", "-t", GROUNDING, "--predictions", preds, "--model-name", name, "--db", db, "--data-root", data_root
        )
        assert result.exit_code == 0, result.output
        ids.append(result.output.split("(run ")[1].split(",")[0])
    assert ids[0] != ids[1]
    rows = _board(db)
    assert {r["model"] for r in rows} == {"alpha", "beta"}
    assert {r["run_id"] for r in rows if r["model"] == "alpha"} == {ids[0]}
    # The first name keeps its id on a rescore (ids of existing runs never change), and nothing is merged.
    again = invoke(
        "score", "-t", GROUNDING, "--predictions", preds, "--model-name", "alpha", "--db", db, "--data-root", data_root
    )
    assert f"(run {ids[0]}," in again.output
    with Store(db, read_only=True) as store:
        assert store.query("SELECT model, count(*) AS n FROM runs GROUP BY model ORDER BY model") == [
            {"model": "alpha", "n": 1},
            {"model": "beta", "n": 1},
        ]


def test_card_run_ids_do_not_change(tmp_path, data_root):
    """`evalkit run` with a card keeps the run id it always had: run_id_for(task, fingerprint), nothing added."""
    from evalkit.run.runner import run_id_for

    db = tmp_path / "r.duckdb"
    result = invoke("run", "-m", "prior-box", "-t", GROUNDING, "--db", db, "--data-root", data_root, "--limit", "2")
    assert result.exit_code == 0, result.output
    with Store(db, read_only=True) as store:
        (run,) = store.query("SELECT run_id, model_fingerprint FROM runs")
    assert run["run_id"] == run_id_for(resolve_tasks(GROUNDING)[0], run["model_fingerprint"])


# --- a failed sample never raises a metric ------------------------------------------------------------------------
def test_failed_grounding_sample_never_scores_above_the_answer_it_replaced(tmp_path, data_root):
    clean_db, bad_db = tmp_path / "clean.duckdb", tmp_path / "bad.duckdb"
    assert invoke("run", "-m", "prior-box", "-t", GROUNDING, "--db", clean_db, "--data-root", data_root).exit_code == 0
    clean = {r["metric"]: r["value"] for r in _board(clean_db)}
    with Store(clean_db, read_only=True) as store:
        misses = [
            r["sample_id"]
            for r in store.query("SELECT sample_id FROM scores WHERE metric = 'acc50' AND value = 0 ORDER BY sample_id")
        ]
    assert misses and clean["coco_ap"] > 0  # a wrong answer among right ones: dropping it would raise precision
    root = tmp_path / "data"
    shutil.copytree(data_root / "phantom", root / "phantom")
    bad = next(s for s in load_samples(resolve_tasks(GROUNDING)[0], root) if s.sample_id == misses[0])
    Path(bad.image_paths[0]).write_bytes(b"not an image")
    result = invoke("run", "-m", "prior-box", "-t", GROUNDING, "--db", bad_db, "--data-root", root)
    assert result.exit_code == 0 and "1 failed sample(s)" in result.output, result.output
    failed = {r["metric"]: r["value"] for r in _board(bad_db)}
    for name, value in failed.items():
        assert value <= clean[name] + 1e-12, (name, clean[name], value)


# --- site build interrupted ---------------------------------------------------------------------------------------
SITE_WRITER = """
import sys, os
from pathlib import Path
from evalkit.results.store import Store
from evalkit.views.site import build_site
import evalkit.views.site as site
real = site.SiteBuilder._render
def slow(self, *a, **k):
    print("page", flush=True)
    real(self, *a, **k)
site.SiteBuilder._render = slow
with Store(sys.argv[1], read_only=True) as store:
    build_site(store, Path(sys.argv[2]), n_boot=100, max_samples=2)
print("done", flush=True)
"""


@pytest.fixture(scope="module")
def site_db(tmp_path_factory, data_root) -> Path:
    db = tmp_path_factory.mktemp("site") / "r.duckdb"
    for model in ("prior-box", "whole-image"):
        assert invoke("run", "-m", model, "-t", GROUNDING, "--db", db, "--data-root", data_root).exit_code == 0
    return db


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("pages", [0, 1, 3, 5])
def test_site_build_killed_leaves_the_old_site_whole_and_the_next_build_works(tmp_path, site_db, pages):
    out = tmp_path / "site"
    assert invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100").exit_code == 0
    before = _snapshot(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SITE_WRITER, str(site_db), str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    seen = 0
    while seen < pages:
        line = proc.stdout.readline()
        if not line or line.startswith("done"):
            break
        seen += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _snapshot(out) == before
    result = invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100")
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site.")] == []


@pytest.mark.slow
def test_site_build_killed_at_ten_random_times(tmp_path, site_db):
    """The issue's check: SIGKILL at 10 random moments of a rebuild; each time the old site is whole and the
    next build succeeds."""
    import random

    out = tmp_path / "site"
    assert invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100").exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(21)
    for attempt in range(10):
        before = _snapshot(out)
        proc = subprocess.Popen(
            [sys.executable, "-c", SITE_WRITER, str(site_db), str(out)], stdout=subprocess.DEVNULL, env=env
        )
        time.sleep(rng.uniform(0.3, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _snapshot(out)
        # Either the old site, untouched, or (killed after the swap) a complete new one.
        assert after == before or (".evalkit-site" in after and "index.html" in after)
        if attempt % 5 == 4:  # the next build works (a build per kill would double the test's time)
            result = invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100")
            assert result.exit_code == 0, result.output
            assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_site_build_killed_between_the_two_renames_keeps_the_old_site(tmp_path, site_db, monkeypatch):
    from evalkit.views import site_swap

    out = tmp_path / "site"
    assert invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100").exit_code == 0
    before = _snapshot(out)
    real_rename = Path.rename

    def crash_after_parking(self, target):
        result = real_rename(self, target)
        if ".old-" in str(target):
            raise KeyboardInterrupt  # as SIGINT would land between the two renames
        return result

    monkeypatch.setattr(Path, "rename", crash_after_parking)
    with pytest.raises(KeyboardInterrupt):
        with Store(site_db, read_only=True) as store:
            from evalkit.views.site import build_site

            build_site(store, out, n_boot=100)
    monkeypatch.setattr(Path, "rename", real_rename)
    assert not out.exists()
    site_swap._recover(out, ".evalkit-site")
    assert _snapshot(out) == before
    assert invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100").exit_code == 0


def test_site_build_interrupted_in_process_keeps_old_site(tmp_path, site_db, monkeypatch):
    import evalkit.views.site as site

    out = tmp_path / "site"
    assert invoke("site", "build", "--db", site_db, "--out", out, "--n-boot", "100").exit_code == 0
    before = _snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(site.SiteBuilder, "_render", interrupted)
    with pytest.raises(KeyboardInterrupt), Store(site_db, read_only=True) as store:
        site.build_site(store, out, n_boot=100)
    assert _snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


# --- parse failures are shown wherever numbers are ------------------------------------------------------------------
def test_parse_failures_are_counted_in_score_leaderboard_json_and_site(tmp_path, data_root):
    db, preds = tmp_path / "r.duckdb", _predictions(tmp_path / "p.jsonl", data_root, answer="42")
    result = invoke(
        "score",
        "-t",
        GROUNDING,
        "--predictions",
        preds,
        "--model-name",
        "unparsed",
        "--db",
        db,
        "--data-root",
        data_root,
    )
    assert result.exit_code == 0
    assert "16 of 16 answer(s) failed to parse" in result.output
    assert {r["parse_failures"] for r in _board(db)} == {16}
    table = invoke("leaderboard", "--db", db)
    assert "unparsed: 16 answer(s) failed to parse" in table.output
    assert invoke("site", "build", "--db", db, "--out", tmp_path / "site", "--n-boot", "100").exit_code == 0
    for page in ("index.html", f"tasks/{GROUNDING}.html"):
        assert "16 unparsed" in (tmp_path / "site" / page).read_text()


# --- read-only commands and foreign files ----------------------------------------------------------------------------
def test_leaderboard_on_a_foreign_duckdb_changes_nothing(tmp_path):
    other = tmp_path / "other-app.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.close()
    before = other.read_bytes()
    result = invoke("leaderboard", "--db", other)
    assert result.exit_code == 2 and "not an evalkit results database" in result.output
    assert other.read_bytes() == before


# --- Ctrl-C, pipes, missing extras ---------------------------------------------------------------------------
def test_export_into_a_closed_pipe_is_quiet(tmp_path, data_root):
    """`evalkit export | head`: the reader is gone before export writes (its end of the pipe closed at once)."""
    db = tmp_path / "r.duckdb"
    assert invoke("run", "-m", "prior-box", "-t", GROUNDING, "--db", db, "--data-root", data_root).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evalkit.cli", "export", "--db", str(db), "--format", "csv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait() == 0, stderr
    assert "Broken pipe" not in stderr and "error" not in stderr.lower() and "Traceback" not in stderr, stderr


def test_demo_interrupted_between_runs_says_what_was_stored(tmp_path, data_root, monkeypatch):
    import evalkit.cli._demo

    db = tmp_path / "r.duckdb"
    assert invoke("run", "-m", "prior-box", "-t", GROUNDING, "--db", db, "--data-root", data_root).exit_code == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evalkit.cli._demo, "run_demo", interrupted)
    result = invoke("demo", "--db", db, "--data-root", data_root)
    assert result.exit_code == 130
    assert "holds 1 run(s), 16 samples" in result.output and "nothing to resume" not in result.output


def test_train_without_the_train_extra_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # as if TRL were not installed
    config = ROOT / "evalkit" / "training" / "configs"
    recipe = next(p for p in sorted(config.glob("*.yaml")) if "sft" in p.name)
    result = invoke("train", "sft", "--config", recipe, "--output-dir", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "'train' extra" in result.output and "Traceback" not in result.output


def test_two_merges_into_one_target_at_once_is_a_clear_error(tmp_path, data_root):
    from evalkit.results.merge import _MergeLock

    source = tmp_path / "a.duckdb"
    assert (
        invoke(
            "run", "-m", "prior-box", "-t", GROUNDING, "--db", source, "--data-root", data_root, "--limit", "2"
        ).exit_code
        == 0
    )
    into = tmp_path / "all.duckdb"
    held = _MergeLock(into)  # as a merge running in another process holds it
    try:
        result = invoke("merge", source, "--into", into)
    finally:
        held.release()
    assert result.exit_code == 2 and "another `evalkit merge` into this file is running" in result.output
    assert not into.exists()
    assert invoke("merge", source, "--into", into).exit_code == 0


def test_ctrl_c_during_merge_leaves_the_target_unchanged(tmp_path, data_root, monkeypatch):
    import evalkit.results.merge

    source = tmp_path / "a.duckdb"
    assert (
        invoke(
            "run", "-m", "prior-box", "-t", GROUNDING, "--db", source, "--data-root", data_root, "--limit", "2"
        ).exit_code
        == 0
    )

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evalkit.results.merge._Merger, "merge_source", interrupted)
    into = tmp_path / "all.duckdb"
    result = invoke("merge", source, "--into", into)
    assert result.exit_code == 130 and "nothing was merged" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not into.exists() and not (tmp_path / "all.duckdb.merging").exists()


def test_demo_summary_line_counts_parse_failures(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import evalkit.cli._demo
    from evalkit.run.runner import RunSummary

    def fake_evaluate(card, tasks, *, on_summary, **kwargs):
        on_summary(RunSummary("r", "phantom-report", "ckpt[step=1]", 16, 16, 16, generated=16, parse_failures=3))
        return []

    monkeypatch.setattr(evalkit.cli._demo, "evaluate", fake_evaluate)
    monkeypatch.setattr(
        evalkit.cli._demo, "demo_cards", lambda tiny_model: [evalkit.cli._demo.resolve_model("prior-box")]
    )
    out = io.StringIO()
    evalkit.cli._demo.run_demo(tmp_path / "r.duckdb", None, console=Console(file=out, width=200))
    line = out.getvalue().splitlines()[0]
    assert "ckpt[step=1]" in line and "3 answer(s) failed to parse" in line
