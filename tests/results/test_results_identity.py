"""Score identity (metric, version, canonical typed options, weights fingerprint), typed options, run size,
visible sample errors, and a database that renders from what it holds, not from today's task YAML."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics.lexical import RougeL
from evalkit.model_adapters.registry import build_adapter
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.results.store import Store
from evalkit.run.runner import Runner, load_samples
from evalkit.views.leaderboard import leaderboard_rows

cli = CliRunner()


def invoke(*args: object):
    return cli.invoke(app, [str(a) for a in args])


def _run(db: Path, data_root: Path, model: str, spec, **kw):
    card = resolve_model(model)
    adapter = build_adapter(card)
    adapter.prepare(spec, lambda: load_samples(spec, data_root, split="train"))
    with Store(db) as store:
        return Runner(store, spec, card, adapter, data_root=data_root, progress=False, **kw).run()


def _report_task(**rouge_options):
    """phantom-report with two cheap metrics; rouge_l's options as given."""
    spec = resolve_tasks("phantom-report")[0]
    metrics = [{"name": "rouge_l", "options": rouge_options}, {"name": "bleu_4"}]
    return spec.model_validate({**spec.model_dump(), "metrics": metrics, "primary_metric": "rouge_l"})


def _count(db: Path, sql: str, params=()):
    with Store(db, read_only=True) as store:
        return store.con.execute(sql, list(params)).fetchall()[0][0]


# --- identity -------------------------------------------------------------------------------------------------
def test_identity_is_canonical_and_ignores_run_settings():
    assert RougeL().identity().key == RougeL(use_stemmer=True).identity().key
    assert RougeL(use_stemmer=False).identity().key != RougeL().identity().key
    # device and batch size change how a metric runs, not its numbers: same identity.
    a = get_metric("chexbert_micro_f1_14", checkpoint="/w/chexbert.pth")
    b = get_metric("chexbert_micro_f1_14", checkpoint="/w/chexbert.pth", device="cuda", batch_size=4)
    assert a.canonical_options() == b.canonical_options()
    assert "device" not in a.canonical_options() and a.canonical_options()["checkpoint"] == "/w/chexbert.pth"


def test_option_change_rescores_stored_generations_and_a_revert_hits_the_cache(db, data_root, monkeypatch):
    calls: list[tuple[bool, int]] = []
    original = RougeL.score

    def counting(self, predictions, samples):
        calls.append((self.typed_options.use_stemmer, len(predictions)))
        return original(self, predictions, samples)

    monkeypatch.setattr(RougeL, "score", counting)
    first = _run(db, data_root, "nn-retrieval", _report_task())
    assert first.generated == 16 and calls == [(True, 16)]
    changed = _run(db, data_root, "nn-retrieval", _report_task(use_stemmer=False))
    # Re-scored from the stored generations: nothing generated or looked up again; bleu_4 was not re-scored.
    assert changed.generated == 0 and changed.from_cache == 0
    assert calls == [(True, 16), (False, 16)]
    assert _count(db, "SELECT count(*) FROM scores WHERE metric = 'rouge_l'") == 32
    assert _count(db, "SELECT count(*) FROM scores WHERE metric = 'bleu_4'") == 16
    assert _count(db, "SELECT options FROM run_metrics WHERE metric = 'rouge_l'") == '{"use_stemmer": false}'
    reverted = _run(db, data_root, "nn-retrieval", _report_task(use_stemmer=True))
    assert calls == [(True, 16), (False, 16)], "the revert must be a cache hit"
    assert reverted.metrics == first.metrics
    assert changed.metrics["bleu_4"] == first.metrics["bleu_4"]


def test_pairs_scoring_uses_the_same_identity(tmp_path):
    from evalkit.run.pairs import score_reports

    db = tmp_path / "pairs.duckdb"
    refs, preds = ["No pleural effusions seen."], ["No pleural effusion."]
    score_reports(refs, preds, ["rouge_l"], options={"rouge_l": {"use_stemmer": False}}, db=db)
    with Store(db, read_only=True) as store:
        versions = [r[0] for r in store.con.execute("SELECT annotator_version FROM annotation_cache").fetchall()]
    assert versions == [RougeL(use_stemmer=False).identity().key]


def test_unknown_or_mistyped_metric_option_names_file_metric_and_option(tmp_path, db, data_root):
    path = tmp_path / "typo-task.yaml"
    data = yaml.safe_load(Path(resolve_tasks("phantom-report")[0].name and "tasks/phantom-report.yaml").read_text())
    data["name"] = "typo-task"
    data["metrics"] = [{"name": "rouge_l", "options": {"use_stemer": True}}, "bleu_4"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(EvalkitError, match=r"typo-task\.yaml: metric 'rouge_l': option 'use_stemer': unknown"):
        resolve_tasks(str(path))
    data["metrics"] = [{"name": "rouge_l", "options": {"use_stemmer": "sometimes"}}]
    path.write_text(yaml.safe_dump(data))
    result = invoke("run", "--model", "nn-retrieval", "--task", path, "--db", db, "--data-root", data_root)
    assert result.exit_code == 2
    assert "typo-task.yaml: metric 'rouge_l': option 'use_stemmer'" in result.output
    assert not db.exists() or _count(db, "SELECT count(*) FROM runs") == 0


# --- the database renders from what it holds -------------------------------------------------------------------
def _snapshot(db: Path, site: Path) -> dict:
    from evalkit.results.scores import compare_runs
    from evalkit.views.export import export_rows
    from evalkit.views.site import build_site

    with Store(db, read_only=True) as store:
        rows = leaderboard_rows(store, n_boot=300)
        _, _, comparison = compare_runs(store, "my-report", "nn-retrieval", "normal-template", n_boot=300, n_perm=300)
        exported = export_rows(store)
        build_site(store, site, n_boot=300)
    date = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d( UTC)?")
    pages = {
        str(p.relative_to(site)): date.sub("DATE", p.read_text())
        for p in sorted(site.rglob("*.html"))
        if "samples" not in p.parts
    }
    return {"rows": rows, "compare": [c.to_json() for c in comparison], "export": exported, "pages": pages}


def test_database_renders_the_same_after_its_yaml_is_edited_or_removed(tmp_path, data_root, monkeypatch):
    from evalkit.registry import _tasks_cached

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = yaml.safe_load(Path("tasks/phantom-report.yaml").read_text())
    data.update(name="my-report", metrics=["rouge_l", "bleu_4", "bleu_1"], primary_metric="rouge_l")
    (tasks / "my-report.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("EVALKIT_TASKS_PATH", str(tasks))
    _tasks_cached.cache_clear()
    db = tmp_path / "r.duckdb"
    spec = resolve_tasks("my-report")[0]
    for model in ("nn-retrieval", "normal-template"):
        _run(db, data_root, model, spec)
    before = _snapshot(db, tmp_path / "site1")
    assert before["rows"] and [r["metric"] for r in before["rows"][:3]] == ["rouge_l", "bleu_4", "bleu_1"]

    # Another primary metric, other options, another order: the old runs still mean what they meant.
    data.update(metrics=["bleu_1", {"name": "rouge_l", "options": {"use_stemmer": False}}], primary_metric="bleu_1")
    (tasks / "my-report.yaml").write_text(yaml.safe_dump(data))
    _tasks_cached.cache_clear()
    assert resolve_tasks("my-report")[0].primary_metric == "bleu_1"
    assert _snapshot(db, tmp_path / "site2") == before
    (tasks / "my-report.yaml").unlink()
    _tasks_cached.cache_clear()
    assert _snapshot(db, tmp_path / "site3") == before


# --- run size -------------------------------------------------------------------------------------------------
def test_limit_never_overwrites_a_full_run_and_values_match_their_cis(db, data_root):
    from evalkit.results.scores import run_intervals

    spec = _report_task()
    full = _run(db, data_root, "nn-retrieval", spec)
    with Store(db, read_only=True) as store:
        before = leaderboard_rows(store, n_boot=500)
    limited = _run(db, data_root, "nn-retrieval", spec, limit=5)
    assert limited.n_samples == 16 and limited.requested == 5 and not limited.partial
    assert limited.metrics == full.metrics
    with Store(db, read_only=True) as store:
        assert leaderboard_rows(store, n_boot=500) == before
        assert all(r["n"] == 16 and r["task_size"] == 16 and not r["partial"] for r in before)

    # A first, limited run is partial: n against the task's size, value and CI from the same 5 samples.
    other = db.with_name("limited.duckdb")
    _run(other, data_root, "nn-retrieval", spec, limit=5)
    with Store(other, read_only=True) as store:
        rows = leaderboard_rows(store, n_boot=500)
        run = store.query("SELECT * FROM runs")[0]
        bounds = run_intervals(store, run, n_boot=500)
    assert all(r["n"] == 5 and r["task_size"] == 16 and r["partial"] for r in rows)
    for r in rows:
        assert bounds[r["metric"]].n == 5 and bounds[r["metric"]].value == pytest.approx(r["value"], abs=1e-12)


def test_a_partial_run_never_stands_in_for_a_full_one(db, data_root, tmp_path):
    spec = resolve_tasks("phantom-anatomy-grounding")[0]
    _run(db, data_root, "prior-box", spec)
    samples = load_samples(spec, data_root)
    # A later predictions file under another name holding 4 of the 16 samples: shown, marked partial, listed last.
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(json.dumps({"sample_id": s.sample_id, "prediction": "[0, 0, 1, 1]"}) + "\n" for s in samples[:4])
    )
    args = ("--task", spec.name, "--db", db, "--data-root", data_root)
    result = invoke("score", "--predictions", preds, "--model-name", "four-of-them", *args)
    assert result.exit_code == 0, result.output
    assert "n=4/16" in result.output and "partial" in result.output
    result = invoke("leaderboard", "--db", db, "--task", spec.name)
    assert result.exit_code == 0, result.output
    # A wide table is split into parts that repeat the model column; the last part holds n. In each part the
    # full run comes first and the partial one after it.
    lines = [line for line in result.output.splitlines() if "prior-box" in line or "four-of-them" in line]
    assert len(lines) % 2 == 0 and all("prior-box" in a for a in lines[::2])
    assert all("four-of-them (partial)" in b for b in lines[1::2])
    assert "16/16" in lines[-2] and "4/16" in lines[-1]


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_below_one_is_a_usage_error(db, data_root, limit):
    result = invoke(
        "run", "-m", "nn-retrieval", "-t", "phantom-report", "--limit", limit, "--db", db, "--data-root", data_root
    )
    assert result.exit_code == 2 and "--limit" in result.output
    assert not db.exists()
    with pytest.raises(EvalkitError, match="--limit must be 1 or more"):
        _run(db, data_root, "nn-retrieval", _report_task(), limit=0)


# --- sample errors --------------------------------------------------------------------------------------------
@pytest.fixture()
def corrupt_root(tmp_path, data_root):
    root = tmp_path / "data"
    shutil.copytree(data_root / "phantom", root / "phantom")
    bad = load_samples(resolve_tasks("phantom-report")[0], root)[2]
    Path(bad.image_paths[0]).write_bytes(b"truncated")
    return root, bad


def test_corrupt_image_is_named_in_the_run_summary_leaderboard_and_site(tmp_path, corrupt_root):
    root, bad = corrupt_root
    db = tmp_path / "r.duckdb"
    result = invoke("run", "-m", "nn-retrieval", "-t", "phantom-report", "--db", db, "--data-root", root)
    assert result.exit_code == 0, result.output
    assert "1 failed sample(s)" in result.output and bad.sample_id in result.output
    assert Path(bad.image_paths[0]).name in result.output and "cannot read image" in result.output
    result = invoke("leaderboard", "--db", db)
    assert "nn-retrieval: 1 failed sample(s)" in result.output and "evalkit export" in result.output
    site = tmp_path / "site"
    assert invoke("site", "build", "--db", db, "--out", site).exit_code == 0
    assert "1 failed" in (site / "tasks" / "phantom-report.html").read_text()
    model_page = (site / "models" / "nn-retrieval.html").read_text()
    assert bad.sample_id in model_page and bad.image_paths[0] in model_page
    rows = json.loads(invoke("export", "--db", db).output.splitlines()[2])  # sorted by sample id
    assert rows["sample_id"] == bad.sample_id and rows["error_file"] == bad.image_paths[0]


def test_errored_samples_zero_by_default_or_excluded_per_task(tmp_path, corrupt_root):
    root, bad = corrupt_root
    zero = _run(tmp_path / "zero.duckdb", root, "nn-retrieval", _report_task())
    spec = _report_task()
    excluded = _run(
        tmp_path / "ex.duckdb", root, "nn-retrieval", spec.model_copy(update={"errored_samples": "exclude"})
    )
    assert [f["sample_id"] for f in zero.failed] == [bad.sample_id] == [f["sample_id"] for f in excluded.failed]
    with Store(tmp_path / "zero.duckdb", read_only=True) as store:
        n_zero = store.query("SELECT metric, n, n_errored, errored FROM run_metrics ORDER BY metric")
        bad_value = store.query("SELECT value FROM scores WHERE sample_id = ? AND metric = 'rouge_l'", [bad.sample_id])
    with Store(tmp_path / "ex.duckdb", read_only=True) as store:
        n_ex = store.query("SELECT metric, n, n_errored, errored FROM run_metrics ORDER BY metric")
    assert [(r["n"], r["n_errored"], r["errored"]) for r in n_zero] == [(16, 1, "zero")] * 2
    assert [(r["n"], r["n_errored"], r["errored"]) for r in n_ex] == [(15, 1, "exclude")] * 2
    assert bad_value == [{"value": 0.0}]
    # Leaving the zero out raises the mean by exactly the share it held.
    assert excluded.metrics["rouge_l"] == pytest.approx(zero.metrics["rouge_l"] * 16 / 15)


# --- score: nothing printed as scored that is not stored --------------------------------------------------------
def test_score_refuses_a_card_name_and_an_empty_file(tmp_path, db, data_root):
    spec = resolve_tasks("phantom-anatomy-grounding")[0]
    sample = load_samples(spec, data_root)[0]
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"sample_id": sample.sample_id, "prediction": "[0, 0, 1, 1]"}) + "\n")
    args = ("--task", spec.name, "--db", db, "--data-root", data_root)
    result = invoke("score", "--predictions", preds, "--model-name", "prior-box", *args)
    assert (
        result.exit_code == 2
        and "is the name of a model card" in result.output
        and "prior-box-external" in result.output
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = invoke("score", "--predictions", empty, "--model-name", "mine", *args)
    assert result.exit_code == 2 and "no predictions" in result.output
    assert not db.exists()
    result = invoke("score", "--predictions", preds, "--model-name", "mine", *args)
    assert result.exit_code == 0 and "stored 1 predictions" in result.output
    rows = json.loads(invoke("leaderboard", "--db", db, "--json").output)
    assert {r["model"] for r in rows} == {"mine"} and all(r["n"] == 1 and r["task_size"] == 16 for r in rows)


def test_failure_counts_of_many_runs_equal_each_runs_failed_samples(tmp_path, corrupt_root):
    from evalkit.results.queries import failed_samples, failure_counts

    root, bad = corrupt_root
    db = tmp_path / "r.duckdb"
    _run(db, root, "nn-retrieval", _report_task())
    _run(db, root, "normal-template", _report_task())
    with Store(db) as store:
        runs = [r["run_id"] for r in store.query("SELECT run_id FROM runs ORDER BY model")]
        # A metric failure on another sample of one run, and one on the sample whose generation failed, stored as
        # safe_score stores one: no value, the error in the stats.
        store.con.execute(
            "UPDATE scores SET value = NULL, stats = '{\"error\": \"boom\"}' WHERE run_id = ? AND metric = 'rouge_l' "
            "AND sample_id IN (SELECT min(sample_id) FROM scores WHERE run_id = ? AND sample_id <> ?)",
            [runs[0], runs[0], bad.sample_id],
        )
        each = {r: len({f["sample_id"] for f in failed_samples(store, r)}) for r in [*runs, "no-such-run"]}
        assert failure_counts(store, [*runs, "no-such-run"]) == each
        assert sorted(each.values()) == [0, 1, 2]
