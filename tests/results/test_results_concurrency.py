"""Looking at results while a run writes: real processes, one writing, others reading or writing too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers.fakes import TASK, WRITER

from evalkit.errors import EvalkitError
from evalkit.model_adapters.registry import build_adapter
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.results.store import Store
from evalkit.run.runner import Runner, load_samples

READER = textwrap.dedent(
    """
    import json, sys
    from typer.testing import CliRunner
    from evalkit.cli import app

    db, out, TASK = sys.argv[1], sys.argv[2], sys.argv[3]
    cli = CliRunner()
    results = {}
    for name, args in {
        "leaderboard": ["leaderboard", "--db", db, "--json"],
        "export": ["export", "--db", db],
        "compare": ["compare", "-t", TASK, "-m", "prior-box", "-m", "whole-image", "--db", db, "--json",
                    "--n-boot", "200", "--n-perm", "200"],
        "site": ["site", "build", "--db", db, "--out", out, "--n-boot", "200"],
    }.items():
        r = cli.invoke(app, args)
        results[name] = {"code": r.exit_code, "output": r.output}
    print(json.dumps(results))
    """
)


def _seed(db: Path, data_root: Path) -> None:
    spec = resolve_tasks(TASK)[0]
    for model in ("prior-box", "whole-image"):
        card = resolve_model(model)
        adapter = build_adapter(card)
        adapter.prepare(spec, lambda: load_samples(spec, data_root, split="train"))
        with Store(db) as store:
            Runner(store, spec, card, adapter, data_root=data_root, progress=False).run()


def _start_writer(
    tmp_path: Path, db: Path, data_root: Path, model: str, delay: float, task: str = TASK, pause: Path | None = None
):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(db),
            str(data_root),
            model,
            str(delay),
            task,
            *([str(pause)] if pause else []),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_batches(proc: subprocess.Popen, n: int) -> None:
    seen = 0
    while seen < n:
        line = proc.stdout.readline()
        assert line, f"writer ended early: {proc.stderr.read()}"
        seen += line.startswith("batch")


@pytest.mark.slow
def test_readers_succeed_while_a_run_writes(tmp_path, data_root):
    db = tmp_path / "r.duckdb"
    _seed(db, data_root)
    pause = tmp_path / "pause"
    pause.touch()
    # 0.3 s a batch: a model slow enough that the runner generates with the file closed.
    writer = _start_writer(tmp_path, db, data_root, "nn-retrieval", 0.3, pause=pause)
    try:
        _wait_batches(writer, 1)  # one batch committed; the second is generating
        script = tmp_path / "reader.py"
        script.write_text(READER)
        reader = subprocess.run(
            [sys.executable, str(script), str(db), str(tmp_path / "site"), TASK],
            capture_output=True,
            text=True,
            timeout=300,
        )
        still_writing = writer.poll() is None
    finally:
        pause.unlink()
        rest, errors = writer.communicate(timeout=300)
    assert reader.returncode == 0, reader.stderr
    assert still_writing, "the writer finished before the reader: the test proved nothing"
    results = json.loads(reader.stdout)
    for name, r in results.items():
        assert r["code"] == 0, (name, r["output"])
    exported = [json.loads(line) for line in results["export"]["output"].splitlines()]
    written = [r for r in exported if r["model"] == "nn-retrieval"]
    assert len(written) == 2  # exactly what the writer had committed: its first batch
    size = len(load_samples(resolve_tasks(TASK)[0], data_root))
    assert writer.returncode == 0 and "done" in rest, errors
    with Store(db, read_only=True) as store:
        assert (
            store.query(
                "SELECT count(*) AS n FROM generations WHERE run_id IN "
                "(SELECT run_id FROM runs WHERE model = 'nn-retrieval')"
            )[0]["n"]
            == size
        )


@pytest.mark.slow
def test_a_second_writer_waits_its_turn(tmp_path, data_root):
    db = tmp_path / "r.duckdb"
    first = _start_writer(tmp_path, db, data_root, "nn-retrieval", 0.4)
    _wait_batches(first, 1)
    second = _start_writer(tmp_path, db, data_root, "prior-box", 0.4, "phantom-anatomy-grounding")
    out_first, err_first = first.communicate(timeout=300)
    out_second, err_second = second.communicate(timeout=300)
    assert first.returncode == 0 and "done" in out_first, err_first
    assert second.returncode == 0 and "done" in out_second, err_second
    with Store(db, read_only=True) as store:
        runs = store.query("SELECT model, status, n_samples FROM runs ORDER BY model")
    size = len(load_samples(resolve_tasks(TASK)[0], data_root))
    assert runs == [
        {"model": "nn-retrieval", "status": "finished", "n_samples": size},
        {"model": "prior-box", "status": "finished", "n_samples": 16},
    ]


@pytest.mark.slow
def test_a_held_file_names_the_process_holding_it(tmp_path):
    db = tmp_path / "r.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        with pytest.raises(EvalkitError, match=rf"held by process {holder.pid}\b.*for more than 0.5s"):
            Store(db, read_only=True, wait_s=0.5)
        assert time.monotonic() - start < 10
    finally:
        holder.kill()
        holder.wait()
    with Store(db, read_only=True, wait_s=5) as store:  # released: the next open succeeds
        assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
