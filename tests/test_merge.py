"""`evalkit merge`: results of separate jobs end in one database; duplicates kept once, conflicts reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.merge import merge_databases

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Path]:
    """Three job databases: a report run, a grounding run, and the report run again limited to 5 samples."""
    folder = tmp_path_factory.mktemp("jobs")
    plan = {
        "report": ("nn-retrieval", "phantom-report", []),
        "grounding": ("prior-box", "phantom-anatomy-grounding", []),
        "report_part": ("nn-retrieval", "phantom-report", ["--limit", "5"]),
    }
    paths = {}
    for name, (model, task, extra) in plan.items():
        path = folder / f"{name}.duckdb"
        result = invoke("run", "--model", model, "--task", task, "--db", path, "--data-root", data_root, *extra)
        assert result.exit_code == 0, result.output
        paths[name] = path
    return paths


def _copy(source: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(source, target)
    return target


def _rows(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_disjoint_jobs_end_in_one_leaderboard(jobs: dict[str, Path], tmp_path: Path) -> None:
    merged = tmp_path / "all.duckdb"
    result = invoke("merge", jobs["report"], jobs["grounding"], "--into", merged)
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    runs = _rows(merged, "SELECT task, model FROM runs ORDER BY task")
    assert runs == [("phantom-anatomy-grounding", "prior-box"), ("phantom-report", "nn-retrieval")]
    for table in ("generations", "scores", "run_metrics", "samples", "generation_cache"):
        expected = sum(_rows(p, f"SELECT count(*) FROM {table}")[0][0] for p in (jobs["report"], jobs["grounding"]))
        assert _rows(merged, f"SELECT count(*) FROM {table}")[0][0] == expected, table
    board = json.loads(invoke("leaderboard", "--db", merged, "--json").stdout)
    assert {(r["task"], r["model"]) for r in board} == {
        ("phantom-report", "nn-retrieval"),
        ("phantom-anatomy-grounding", "prior-box"),
    }


def test_a_run_in_several_files_is_kept_once(jobs: dict[str, Path], tmp_path: Path) -> None:
    again = _copy(jobs["report"], tmp_path, "again.duckdb")
    merged = tmp_path / "merged.duckdb"
    report = merge_databases([jobs["report"], again], merged)
    assert report.written and not report.conflicts
    n = _rows(jobs["report"], "SELECT count(*) FROM generations")[0][0]
    assert report.duplicates["runs"] == 1 and report.duplicates["generations"] == n
    assert _rows(merged, "SELECT count(*) FROM runs")[0][0] == 1
    assert _rows(merged, "SELECT count(*) FROM generations")[0][0] == n
    assert report.recomputed_runs == []


def test_partial_and_full_copies_of_a_run_combine(jobs: dict[str, Path], tmp_path: Path) -> None:
    merged = tmp_path / "merged.duckdb"
    report = merge_databases([jobs["report_part"], jobs["report"]], merged)
    assert report.written and not report.conflicts
    full = dict(_rows(jobs["report"], "SELECT metric, value FROM run_metrics WHERE status = 'ok'"))
    n_full = _rows(jobs["report"], "SELECT count(*) FROM generations")[0][0]
    assert _rows(merged, "SELECT count(*) FROM generations")[0][0] == n_full
    # The aggregates now cover every sample: recomputed from the merged scores, equal to the full job's.
    assert len(report.recomputed_runs) == 1
    for metric, value, n in _rows(merged, "SELECT metric, value, n FROM run_metrics WHERE status = 'ok'"):
        assert n == n_full and value == pytest.approx(full[metric]), metric
    # So do the stored CIs: recomputed on every sample, equal to those the full job stored.
    query = "SELECT metric, n, ci_low, ci_high FROM intervals ORDER BY metric"
    merged_cis, full_cis = _rows(merged, query), _rows(jobs["report"], query)
    assert [r[:2] for r in merged_cis] == [r[:2] for r in full_cis] and len(full_cis) == len(full)
    assert [r[2:] for r in merged_cis] == [pytest.approx(r[2:]) for r in full_cis]


def test_conflicting_text_is_reported_and_nothing_is_written(jobs: dict[str, Path], tmp_path: Path) -> None:
    other = _copy(jobs["report"], tmp_path, "other.duckdb")
    with duckdb.connect(str(other)) as con:
        sample_id = con.execute("SELECT min(sample_id) FROM generations").fetchone()[0]
        con.execute("UPDATE generations SET text = 'Something else entirely.' WHERE sample_id = ?", [sample_id])
    merged = tmp_path / "merged.duckdb"
    result = invoke("merge", jobs["report"], other, "--into", merged)
    assert result.exit_code == 1
    assert "1 conflict" in result.output and sample_id in result.output and "text" in result.output
    assert "NOT written" in result.output and not merged.exists()

    result = invoke("merge", jobs["report"], other, "--into", merged, "--on-conflict", "keep-first", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["written"] and len(report["conflicts"]) == 1
    (conflict,) = report["conflicts"]
    assert conflict["table"] == "generations" and conflict["key"]["sample_id"] == sample_id
    assert conflict["kept_from"] == str(jobs["report"]) and conflict["source"] == str(other)
    kept = _rows(merged, f"SELECT text FROM generations WHERE sample_id = '{sample_id}'")[0][0]
    assert kept != "Something else entirely."


def test_a_successful_generation_replaces_a_failed_one(jobs: dict[str, Path], tmp_path: Path) -> None:
    failed = _copy(jobs["report"], tmp_path, "failed.duckdb")
    with duckdb.connect(str(failed)) as con:
        sample_id = con.execute("SELECT min(sample_id) FROM generations").fetchone()[0]
        con.execute("UPDATE generations SET text = '', error = 'CUDA OOM' WHERE sample_id = ?", [sample_id])
        con.execute("UPDATE scores SET value = 0 WHERE sample_id = ?", [sample_id])
    merged = tmp_path / "merged.duckdb"
    report = merge_databases([failed, jobs["report"]], merged)
    assert report.written and not report.conflicts and report.replaced_failed == 1
    row = _rows(merged, f"SELECT text, error FROM generations WHERE sample_id = '{sample_id}'")[0]
    assert row[1] is None and row[0]
    good = dict(_rows(jobs["report"], "SELECT metric, value FROM run_metrics WHERE status = 'ok'"))
    for metric, value in _rows(merged, "SELECT metric, value FROM run_metrics WHERE status = 'ok'"):
        assert value == pytest.approx(good[metric])


def test_run_identity_and_reference_conflicts(jobs: dict[str, Path], tmp_path: Path) -> None:
    other = _copy(jobs["grounding"], tmp_path, "other.duckdb")
    with duckdb.connect(str(other)) as con:
        con.execute("UPDATE runs SET decoding = '{\"temperature\": 0.7}'")
        sample_id = con.execute("SELECT min(sample_id) FROM samples").fetchone()[0]
        con.execute("UPDATE samples SET reference_boxes = '[[0, 0, 1, 1]]' WHERE sample_id = ?", [sample_id])
        # Another mount point of the same data is not a conflict.
        con.execute("UPDATE samples SET image_paths = replace(image_paths, '/', '//')")
    report = merge_databases([jobs["grounding"], other], tmp_path / "merged.duckdb")
    tables = sorted((c.table, tuple(c.columns)) for c in report.conflicts)
    assert tables == [("runs", ("decoding",)), ("samples", ("reference_boxes",))]
    assert not report.written


def test_usage_errors_exit_2(jobs: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("merge", tmp_path / "missing.duckdb", "--into", tmp_path / "x.duckdb").exit_code == 2
    into = _copy(jobs["report"], tmp_path, "into.duckdb")
    result = invoke("merge", into, jobs["grounding"], "--into", into)
    assert result.exit_code == 2 and "also the --into file" in result.output
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    result = invoke("merge", junk, "--into", tmp_path / "y.duckdb")
    assert result.exit_code == 2 and "not a readable DuckDB" in result.output
    assert not (tmp_path / "y.duckdb").exists()
    result = invoke("merge", jobs["report"], "--into", tmp_path / "z.duckdb", "--on-conflict", "newest")
    assert result.exit_code == 2


def test_merging_into_an_existing_database_adds_to_it(jobs: dict[str, Path], tmp_path: Path) -> None:
    into = _copy(jobs["report"], tmp_path, "into.duckdb")
    report = merge_databases([jobs["grounding"]], into)
    assert report.written and report.added["runs"] == 1
    assert _rows(into, "SELECT count(*) FROM runs")[0][0] == 2
