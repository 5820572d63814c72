"""The shipped tiny Qwen3-VL checkpoints get a reliance table from one command, resumed correctly after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.resources import bundled
from evalkit.store import Store

pytestmark = pytest.mark.slow  # loads the tiny checkpoint in three places


def _command(db: Path, data_root: Path, task: Path) -> list[str]:
    return [
        sys.executable, "-m", "evalkit.cli", "reliance", "--task", str(task), "--model", "demo-qwen3vl-sft-grpo",
        "--db", str(db), "--data-root", str(data_root), "--limit", "4", "--device", "cpu", "--n-boot", "200",
        "--transform", "hflip", "--json",
    ]  # fmt: skip


def _has_run(db: Path, task: str) -> bool:
    if not db.exists():
        return False
    try:
        with Store(db, read_only=True) as store:
            return bool(store.query("SELECT 1 FROM runs WHERE task = ?", [task]))
    except (EvalkitError, OSError):
        return False  # the writer holds the file right now


def test_demo_checkpoint_reliance_resumes_after_sigkill(tmp_path, data_root):
    data = yaml.safe_load((bundled("tasks") / "phantom-anatomy-grounding.yaml").read_text())
    data.update(name="demo-anatomy", metrics=["miou", "soft_f1_iou"], primary_metric="miou", groups=[])
    task = tmp_path / "demo-anatomy.yaml"
    task.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed, clean = tmp_path / "killed.duckdb", tmp_path / "clean.duckdb"

    proc = subprocess.Popen(_command(killed, data_root, task), stdout=subprocess.PIPE, text=True, env=env)
    started = time.monotonic()
    while not _has_run(killed, "demo-anatomy@hflip"):  # killed once the variant's run is recorded
        assert proc.poll() is None, "the command ended before it could be killed"
        assert time.monotonic() - started < 240
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(killed, read_only=True) as store:
        done = {r["task"] for r in store.query("SELECT DISTINCT r.task FROM runs r JOIN generations g USING (run_id)")}
    assert "demo-anatomy" in done

    resumed = subprocess.run(_command(killed, data_root, task), capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    # The same command uninterrupted, in this process (a third interpreter would load torch once more).
    uninterrupted = CliRunner().invoke(app, _command(clean, data_root, task)[3:])
    assert uninterrupted.exit_code == 0, uninterrupted.output
    rows = json.loads(resumed.stdout)["rows"]
    assert rows == json.loads(uninterrupted.stdout)["rows"]
    assert {(r["transform"], r["score"]) for r in rows} == {("hflip", "drop"), ("hflip", "flip equivariance")}
    with Store(killed, read_only=True) as store:
        counts = store.query("SELECT r.task, count(*) AS n FROM generations g JOIN runs r USING (run_id) GROUP BY 1")
    assert {r["task"]: r["n"] for r in counts} == {"demo-anatomy": 4, "demo-anatomy@hflip": 4}
