"""The runner end to end on phantoms: signal in baselines, caching, resume after SIGKILL, per-sample errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.fakes import TASK, WRITER

from evalkit.registry import resolve_model, resolve_tasks
from evalkit.run.evaluate import build_quietly, evaluate
from evalkit.run.runner import load_samples
from evalkit.store import Store


def _run(db: Path, data_root: Path, model: str, task: str, **kw):
    return evaluate(model, task, db=db, data_root=data_root, **kw)[0]


def test_nn_retrieval_beats_normal_template_on_reports(db, data_root):
    nn = _run(db, data_root, "nn-retrieval", "phantom-report")
    normal = _run(db, data_root, "normal-template", "phantom-report")
    assert nn.metrics["rouge_l"] > normal.metrics["rouge_l"]
    assert nn.errors == 0 and nn.n_samples == 16


@pytest.mark.parametrize(
    "task", ["phantom-abnormality-grounding", "phantom-anatomy-grounding", "phantom-phrase-grounding"]
)
def test_prior_box_beats_whole_image(db, data_root, task):
    prior = _run(db, data_root, "prior-box", task)
    whole = _run(db, data_root, "whole-image", task)
    assert prior.metrics["miou"] > whole.metrics["miou"]
    assert prior.parse_failures == 0


def test_second_run_generates_nothing(db, data_root):
    first = _run(db, data_root, "nn-retrieval", "phantom-report")
    second = _run(db, data_root, "nn-retrieval", "phantom-report")
    assert first.generated == 16 and second.generated == 0 and second.from_cache == 0
    assert second.metrics == first.metrics
    with Store(db, read_only=True) as store:
        assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 16
        # One score per sample and metric that could run, written once.
        assert store.query("SELECT count(*) AS n FROM scores")[0]["n"] == 16 * len(first.metrics)


def test_generation_cache_is_shared_across_runs(tmp_path, data_root):
    # A new run (new db row) of the same model+prompts+images answers from the content cache.
    db = tmp_path / "r.duckdb"
    _run(db, data_root, "prior-box", "phantom-abnormality-grounding", limit=5)
    with Store(db) as store:
        store.con.execute("DELETE FROM generations")
        store.con.execute("DELETE FROM scores")
    again = _run(db, data_root, "prior-box", "phantom-abnormality-grounding", limit=5)
    assert again.generated == 0 and again.from_cache == 5


def test_corrupt_image_is_a_per_sample_error(tmp_path, data_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_root / "phantom", root / "phantom")
    spec = resolve_tasks("phantom-report")[0]
    bad = load_samples(spec, root)[2]
    Path(bad.image_paths[0]).write_bytes(b"not a png at all")
    summary = _run(tmp_path / "r.duckdb", root, "nn-retrieval", "phantom-report")
    assert summary.errors == 1 and summary.n_samples == 16
    with Store(tmp_path / "r.duckdb", read_only=True) as store:
        rows = store.query("SELECT sample_id, error FROM generations WHERE error IS NOT NULL")
    assert rows[0]["sample_id"] == bad.sample_id and "cannot read image" in rows[0]["error"]
    assert bad.image_paths[0] in rows[0]["error"]


def _kill_after(proc: subprocess.Popen, prefix: str, count: int) -> None:
    """SIGKILL the child once it has printed `count` lines starting with `prefix` (batches, scored chunks)."""
    seen = 0
    while seen < count:
        line = proc.stdout.readline()
        assert line, "run ended before it could be killed"
        seen += line.startswith(prefix)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _table(db: Path, sql: str):
    with Store(db, read_only=True) as store:
        return store.con.execute(sql).fetchall()


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, data_root):
    script = tmp_path / "slow_run.py"
    script.write_text(WRITER)  # a nn-retrieval run of the phrase task, one sleep per batch
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_db, clean_db = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"

    proc = subprocess.Popen(
        [sys.executable, str(script), str(killed_db), str(data_root), "nn-retrieval", "0.3", TASK],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    _kill_after(proc, "batch", 3)
    partial = _table(killed_db, "SELECT count(*) FROM generations")[0][0]
    assert 6 <= partial < 40, partial

    resumed = subprocess.run(
        [sys.executable, str(script), str(killed_db), str(data_root), "nn-retrieval", "0", TASK],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    subprocess.run(
        [sys.executable, str(script), str(clean_db), str(data_root), "nn-retrieval", "0", TASK],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )

    gen_sql = "SELECT run_id, sample_id, text, parsed, error FROM generations ORDER BY sample_id"
    score_sql = "SELECT run_id, sample_id, metric, value, stats FROM scores ORDER BY sample_id, metric"
    agg_sql = "SELECT run_id, metric, value, n FROM run_metrics ORDER BY metric"
    for sql in (gen_sql, score_sql, agg_sql):
        assert _table(killed_db, sql) == _table(clean_db, sql)
    dup = "SELECT count(*) - count(DISTINCT (run_id, sample_id)) FROM generations"
    assert _table(killed_db, dup)[0][0] == 0
    assert _table(killed_db, "SELECT status FROM runs")[0][0] == "finished"


def test_adapter_exception_isolated_to_one_sample(tmp_path, data_root):
    card = resolve_model("prior-box")
    spec = resolve_tasks("phantom-abnormality-grounding")[0]
    adapter = build_quietly(card)
    samples = load_samples(spec, data_root)[:6]
    bad_id = samples[3].sample_id
    generate = adapter.generate

    def flaky(requests):
        if any(r.sample.sample_id == bad_id for r in requests):
            raise RuntimeError("CUDA out of memory (simulated)")
        return generate(requests)

    adapter.generate = flaky
    with Store(tmp_path / "r.duckdb") as store:
        (summary,) = evaluate(card, spec, db=store, adapter=adapter, samples=samples, batch_size=4)
        errors = store.query("SELECT sample_id, error FROM generations WHERE error IS NOT NULL")
    assert summary.errors == 1
    assert errors[0]["sample_id"] == bad_id and "out of memory" in errors[0]["error"]
    # On the next run the failed sample is retried (and now succeeds); the others are not regenerated.
    adapter.generate = generate
    with Store(tmp_path / "r.duckdb") as store:
        (again,) = evaluate(card, spec, db=store, adapter=adapter, samples=samples, batch_size=4)
    assert again.errors == 0 and again.generated + again.from_cache == 1


def test_image_less_answers_are_cached_per_sample_not_per_prompt(db, data_root):
    """Stored predictions for two samples with the same prompt: each keeps its own (the cache key is the sample)."""
    from evalkit.config import ModelCard
    from evalkit.model_adapters.predictions import PredictionsAdapter
    from evalkit.run.prompts import render_prompt

    spec = resolve_tasks("phantom-report")[0]
    card = ModelCard(name="elsewhere", adapter="external", checkpoint="file")
    samples = load_samples(spec, data_root)
    by_prompt: dict[str, list] = {}
    for sample in samples:
        by_prompt.setdefault(render_prompt(spec, card, sample)[1], []).append(sample)
    twins = next(group for group in by_prompt.values() if len(group) > 1)[:2]
    predictions = {s.sample_id: f"Report number {i}." for i, s in enumerate(twins)}
    with Store(db) as store:
        evaluate(card, spec, db=store, adapter=PredictionsAdapter(card, predictions), samples=twins, batch_size=1)
        stored = {r["sample_id"]: r["text"] for r in store.query("SELECT sample_id, text FROM generations")}
    assert stored == predictions


SCORE_RUN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import evalkit.run.runner as runner_module
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.runner import Runner, load_samples
    from evalkit.model_adapters.registry import build_adapter
    from evalkit.store import Store

    db, root, delay, stemmer = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "stem"
    card, base = resolve_model("nn-retrieval"), resolve_tasks("phantom-report")[0]
    metrics = [{"name": "rouge_l", "options": {"use_stemmer": stemmer}}, {"name": "bleu_4"}]
    task = base.model_validate({**base.model_dump(), "metrics": metrics, "primary_metric": "rouge_l"})
    adapter = build_adapter(card)
    adapter.prepare(task, lambda: load_samples(task, root, split="train"))
    runner_module.SCORE_CHUNK = 2  # many scoring transactions, so a kill lands between them
    score = runner_module.safe_score

    def slow(metric, predictions, samples):
        time.sleep(delay)
        out = score(metric, predictions, samples)
        print("scored", metric.name, flush=True)
        return out

    runner_module.safe_score = slow
    with Store(db) as store:
        Runner(store, task, card, adapter, data_root=root, batch_size=4, progress=False).run()
    print("done", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["kill during scoring", "kill during a re-score after an option change"])
def test_sigkill_while_scoring_then_resume_equals_uninterrupted(tmp_path, data_root, case):
    script = tmp_path / "score_run.py"
    script.write_text(SCORE_RUN)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_db, clean_db = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"

    def run(db: Path, option: str) -> None:
        done = subprocess.run(
            [sys.executable, str(script), str(db), str(data_root), "0", option],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr

    rescore = case.endswith("option change")
    if rescore:  # a finished run with the stemmer on; then the option flips and the re-score is killed
        run(killed_db, "stem")
        run(clean_db, "stem")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(killed_db), str(data_root), "0.3", "nostem"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    _kill_after(proc, "scored", 3)
    scored = _table(killed_db, "SELECT count(*) FROM scores")[0][0]
    before = 32 if rescore else 0  # rouge_l (stemmer on) + bleu_4 of the first run
    assert before + 4 <= scored < before + 16 + 16, scored

    run(killed_db, "nostem")
    run(clean_db, "nostem")
    gen_sql = "SELECT run_id, sample_id, text, parsed, error FROM generations ORDER BY sample_id"
    score_sql = "SELECT run_id, sample_id, metric, score_key, value, stats FROM scores ORDER BY ALL"
    agg_sql = "SELECT run_id, metric, score_key, options, value, n FROM run_metrics ORDER BY metric"
    for sql in (gen_sql, score_sql, agg_sql):
        assert _table(killed_db, sql) == _table(clean_db, sql)
    assert _table(killed_db, "SELECT count(DISTINCT score_key) FROM scores WHERE metric = 'rouge_l'")[0][0] == (
        2 if rescore else 1
    )
    assert _table(killed_db, "SELECT status FROM runs")[0][0] == "finished"
