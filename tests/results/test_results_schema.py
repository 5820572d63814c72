"""The results schema: version, migration of a file written by the previous release, one-line extensions."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import FIXTURES, ROOT

from evalkit.errors import EvalkitError
from evalkit.results import schema
from evalkit.results.schema import SCHEMA_VERSION, TABLES, Table, stored_version
from evalkit.results.store import Store
from evalkit.views.leaderboard import leaderboard_rows

COMPARED = ("value", "n", "ci_low", "ci_high", "higher_is_better", "status", "primary")


@pytest.fixture()
def legacy_db(tmp_path: Path) -> Path:
    """A copy of the file written by evalkit 040a36b (tests/fixtures/make_legacy_db.py)."""
    path = tmp_path / "legacy.duckdb"
    with gzip.open(FIXTURES / "legacy_v0.duckdb.gz", "rb") as source, path.open("wb") as target:
        shutil.copyfileobj(source, target)
    return path


def _version(path: Path) -> int | None:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return stored_version(con)
    finally:
        con.close()


def test_old_format_database_opens_after_migration_and_renders_as_before(legacy_db):
    assert _version(legacy_db) == 0
    with Store(legacy_db, read_only=True) as store:  # a reader migrates once, then reads
        rows = leaderboard_rows(store, n_boot=500)
        keys = store.query("SELECT DISTINCT score_key FROM scores ORDER BY 1")
    assert _version(legacy_db) == SCHEMA_VERSION
    expected = json.loads((FIXTURES / "legacy_v0_leaderboard.json").read_text())
    got = {(r["task"], r["model"], r["metric"]): {k: r[k] for k in COMPARED} for r in rows}
    want = {(r["task"], r["model"], r["metric"]): {k: r[k] for k in COMPARED} for r in expected}
    assert got == want
    assert all(k["score_key"].startswith("legacy:") for k in keys)
    assert all(r["task_size"] == 6 and not r["partial"] for r in rows)


def test_a_new_run_on_a_migrated_file_rescores_legacy_scores_and_generates_nothing(legacy_db, tmp_path):
    from evalkit.data.phantom import generate_phantom
    from evalkit.metrics import get_metric
    from evalkit.model_adapters.registry import build_adapter
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.runner import Runner, load_samples

    root = tmp_path / "data"
    generate_phantom(root / "phantom", n_train=12, n_validate=2, n_test=6)  # the fixture's data, made again
    with Store(legacy_db, read_only=True) as store:
        before = {
            (r["metric"]): r["value"] for r in leaderboard_rows(store, "phantom-report", "nn-retrieval", ci=False)
        }
    # The fixture's runs are of phantom-report version 1; the run of that version continues (today's YAML is newer).
    card = resolve_model("nn-retrieval")
    spec = resolve_tasks("phantom-report")[0].model_copy(update={"version": "1"})
    adapter = build_adapter(card)
    adapter.prepare(spec, lambda: load_samples(spec, root, split="train"))
    with Store(legacy_db) as store:
        summary = Runner(store, spec, card, adapter, data_root=root, progress=False).run()
        legacy = store.query("SELECT count(*) AS n FROM scores WHERE score_key LIKE 'legacy:%'")[0]["n"]
        old_versions = {
            r["metric"]: r["metric_version"]
            for r in store.query("SELECT DISTINCT metric, metric_version FROM scores WHERE score_key LIKE 'legacy:%'")
        }
        fresh = store.query("SELECT count(*) AS n FROM scores WHERE score_key NOT LIKE 'legacy:%'")[0]["n"]
    assert summary.generated == 0 and summary.from_cache == 0  # the legacy generations are the run's
    assert fresh == 6 * len(summary.metrics) and legacy > 0  # old identities kept, never reused
    # Metrics whose code version is unchanged since the fixture give the legacy values again (BLEU moved to v2).
    same = [k for k in summary.metrics if old_versions.get(k) == str(get_metric(k).version)]
    assert "rouge_l" in same
    assert {k: summary.metrics[k] for k in same} == pytest.approx({k: before[k] for k in same})


def test_merge_takes_a_legacy_source_without_touching_it(legacy_db, tmp_path):
    from evalkit.results.merge import merge_databases

    report = merge_databases([legacy_db], tmp_path / "merged.duckdb")
    assert report.written and not report.conflicts
    assert _version(legacy_db) == 0
    with Store(tmp_path / "merged.duckdb", read_only=True) as store:
        assert len(leaderboard_rows(store, ci=False)) == 42


def test_a_file_from_a_newer_evalkit_is_refused(tmp_path):
    path = tmp_path / "new.duckdb"
    Store(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_info SET value = ? WHERE key = 'version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    with pytest.raises(EvalkitError, match="newer evalkit"):
        Store(path, read_only=True)


def test_adding_a_column_is_one_line_and_old_files_gain_it(tmp_path, monkeypatch):
    path = tmp_path / "r.duckdb"
    with Store(path) as store:
        store.con.execute("INSERT INTO samples (task, sample_id) VALUES ('t', 's1')")
    samples = TABLES["samples"]
    wider = Table(samples.name, (*samples.columns, ("cluster_key", "VARCHAR")), samples.primary_key)
    monkeypatch.setitem(schema.TABLES, "samples", wider)
    with Store(path) as store:
        assert store.query("SELECT sample_id, cluster_key FROM samples") == [{"sample_id": "s1", "cluster_key": None}]
        store.con.execute("UPDATE samples SET cluster_key = 'patient-1'")
    # Code that does not declare the column (an older branch) keeps it rather than dropping its data.
    monkeypatch.setitem(schema.TABLES, "samples", samples)
    with Store(path) as store:
        assert store.query("SELECT cluster_key FROM samples") == [{"cluster_key": "patient-1"}]


def test_no_positional_inserts_outside_the_results_package():
    root = ROOT / "evalkit"
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "results" not in p.parts and "VALUES (?, ?" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []
