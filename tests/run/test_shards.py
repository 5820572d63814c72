"""`--shard i/N` on run and score: a partition by a hash of the sample id; merged shards equal one unsharded run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.results.store import Store
from evalkit.run.shards import parse_shard, shard_of

runner = CliRunner()
TASK = "phantom-anatomy-grounding"
SCORES = "SELECT run_id, sample_id, metric, score_key, value, stats FROM scores ORDER BY ALL"
AGGREGATES = "SELECT run_id, metric, value, n, status FROM run_metrics ORDER BY ALL"
INTERVALS = (
    "SELECT run_id, metric, n_boot, seed, level, cluster, value, ci_low, ci_high, n, unit, n_clusters "
    "FROM intervals ORDER BY ALL"
)
GENERATIONS = "SELECT run_id, sample_id, text, parsed, error FROM generations ORDER BY ALL"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def table(db: Path, sql: str):
    with Store(db, read_only=True) as store:
        return store.con.execute(sql).fetchall()


def test_partition_is_exact_and_stable_when_the_task_grows():
    ids = [f"ph-{i:05d}/region_{i % 7}" for i in range(1000)]
    shards = [shard_of(s, 4) for s in ids]
    assert all(0 <= s < 4 for s in shards)
    assert min(shards.count(k) for k in range(4)) > 200  # balanced enough
    grown = ids + [f"new-{i}" for i in range(500)]
    assert [shard_of(s, 4) for s in grown[:1000]] == shards  # old samples keep their shard
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/4", "1/0", "a/b", "2"):
        with pytest.raises(EvalkitError, match="--shard"):
            parse_shard(bad)


def run_shards(tmp_path: Path, data_root: Path, *args: str, n: int = 4) -> list[Path]:
    dbs = []
    for i in range(n):
        db = tmp_path / f"shard-{i}.duckdb"
        result = invoke(*args, "--db", db, "--data-root", data_root, "--shard", f"{i}/{n}")
        assert result.exit_code == 0, result.output
        dbs.append(db)
    return dbs


def merged(tmp_path: Path, dbs: list[Path]) -> Path:
    into = tmp_path / "merged.duckdb"
    result = invoke("merge", *dbs, "--into", into)
    assert result.exit_code == 0, result.output
    return into


@pytest.mark.slow
def test_four_merged_shards_equal_one_unsharded_run(tmp_path, data_root):
    args = ("run", "--model", "prior-box", "--task", TASK)
    whole = tmp_path / "whole.duckdb"
    assert invoke(*args, "--db", whole, "--data-root", data_root).exit_code == 0
    dbs = run_shards(tmp_path, data_root, *args)
    sizes = [table(db, "SELECT count(*) FROM generations")[0][0] for db in dbs]
    assert sum(sizes) == 16 and all(0 < s < 16 for s in sizes)
    assert len({table(db, "SELECT run_id FROM runs")[0][0] for db in [whole, *dbs]}) == 1  # one run id
    into = merged(tmp_path, dbs)
    for sql in (GENERATIONS, SCORES, AGGREGATES, INTERVALS):
        assert table(into, sql) == table(whole, sql), sql
    assert table(into, "SELECT count(*) FROM intervals")[0][0] > 0
    board = json.loads(invoke("leaderboard", "--db", into, "--json").output)
    assert {r["n"] for r in board} == {16} and not any(r["partial"] for r in board)


@pytest.mark.slow
def test_score_shards_merge_to_the_unsharded_score(tmp_path, data_root):
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    text = Path("tasks/phantom-report.yaml").read_text()
    task = tmp_path / "shard-report.yaml"  # phantom-report with lexical metrics only (no weights, fast)
    task.write_text(text.split("metrics:\n")[0] + "metrics: [rouge_l, bleu_4]\nprimary_metric: rouge_l\n")
    samples = load_samples(resolve_tasks(str(task))[0], data_root)
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        "".join(json.dumps({"sample_id": s.sample_id, "prediction": "Heart size is normal."}) + "\n" for s in samples)
    )
    args = ("score", "--task", task, "--predictions", preds, "--model-name", "mine")
    whole = tmp_path / "whole.duckdb"
    assert invoke(*args, "--db", whole, "--data-root", data_root).exit_code == 0
    partial = json.loads(invoke("leaderboard", "--db", run_shards(tmp_path, data_root, *args, n=2)[0], "--json").output)
    assert all(r["partial"] for r in partial)
    into = merged(tmp_path, [tmp_path / "shard-0.duckdb", tmp_path / "shard-1.duckdb"])
    for sql in (SCORES, AGGREGATES, INTERVALS):
        assert table(into, sql) == table(whole, sql), sql


SHARD_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import evalkit
    from evalkit.registry import resolve_model
    from evalkit.model_adapters.registry import build_adapter

    db, root, delay, shard = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    card = resolve_model("prior-box")
    adapter = build_adapter(card)
    generate = adapter.generate

    def slow(requests):
        time.sleep(delay)
        return generate(requests)

    adapter.generate = slow
    index, count = (int(x) for x in shard.split("/"))
    evalkit.evaluate(card, "phantom-phrase-grounding", db=db, data_root=root, adapter=adapter, batch_size=2,
                     shard=(index, count), on_summary=lambda s: print("done", s.n_samples, flush=True),
                     progress=False)
    """
)


@pytest.mark.slow
def test_killed_shard_resumes_alone(tmp_path, data_root):
    script = tmp_path / "shard_run.py"
    script.write_text(SHARD_WRITER)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed, clean = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), str(data_root), "0.3", "1/2"], env=env)
    # Kill once a batch or two is committed: poll the database (readers can look while a run writes).
    import time

    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.3)
        if killed.exists():
            try:
                if table(killed, "SELECT count(*) FROM generations")[0][0] >= 2:
                    break
            except Exception:
                continue
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = table(killed, "SELECT count(*) FROM generations")[0][0]
    import evalkit

    # The shard resumes alone (the same call again); a clean run of the same shard is the reference.
    for db in (killed, clean):
        evalkit.evaluate("prior-box", "phantom-phrase-grounding", db=db, data_root=data_root, shard=(1, 2))
    total = table(clean, "SELECT count(*) FROM generations")[0][0]
    assert 2 <= partial < total
    for sql in (GENERATIONS, SCORES, AGGREGATES):
        assert table(killed, sql) == table(clean, sql), sql
