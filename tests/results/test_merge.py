"""`evalkit merge`: results of separate jobs end in one database; duplicates kept once, conflicts reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.results.merge import merge_databases

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


def test_a_failed_merge_leaves_into_byte_identical(jobs: dict[str, Path], tmp_path: Path) -> None:
    """The merge is built in `<into>.merging` and replaces `into` only when complete."""
    other = _copy(jobs["report"], tmp_path, "other.duckdb")
    sample_id = _first(other)
    with duckdb.connect(str(other)) as con:
        con.execute("UPDATE generations SET text = 'Something else entirely.' WHERE sample_id = ?", [sample_id])
    into = _copy(jobs["grounding"], tmp_path, "into.duckdb")
    before = into.read_bytes()
    assert invoke("merge", jobs["report"], other, "--into", into).exit_code == 1  # a conflict: nothing written
    junk = tmp_path / "junk.duckdb"
    junk.write_text("not a database")
    assert invoke("merge", jobs["report"], junk, "--into", into).exit_code == 2  # an unreadable source
    assert into.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["into.duckdb", "junk.duckdb", "other.duckdb"]
    # The same merge that succeeds replaces it, and leaves no scratch file either.
    report = merge_databases([jobs["report"]], into)
    assert report.written and report.added["runs"] == 1
    assert not list(tmp_path.glob("into.duckdb.*"))


def test_a_pending_write_ahead_log_of_into_is_kept(jobs: dict[str, Path], tmp_path: Path) -> None:
    into = _copy(jobs["grounding"], tmp_path, "into.duckdb")
    with duckdb.connect(str(into)) as con:
        con.execute("PRAGMA disable_checkpoint_on_shutdown")
        con.execute('UPDATE runs SET summary = \'{"note": "only in the log"}\'')
    assert Path(f"{into}.wal").exists()
    assert merge_databases([jobs["report"]], into).written
    assert not Path(f"{into}.wal").exists()
    summaries = [r[0] for r in _rows(into, "SELECT summary FROM runs WHERE task = 'phantom-anatomy-grounding'")]
    assert summaries == ['{"note": "only in the log"}']


def test_a_conflict_names_the_file_a_moved_sample_came_from(jobs: dict[str, Path], tmp_path: Path) -> None:
    """Per-sample origins are kept in DuckDB: a sample the part job lacked is kept from the full job, the part
    job's own samples from the part job (the file the run came from)."""
    part_ids = {r[0] for r in _rows(jobs["report_part"], "SELECT sample_id FROM generations")}
    moved = next(
        r[0] for r in _rows(jobs["report"], "SELECT sample_id FROM generations ORDER BY 1") if r[0] not in part_ids
    )
    other = _copy(jobs["report"], tmp_path, "other.duckdb")
    with duckdb.connect(str(other)) as con:
        con.execute("UPDATE generations SET text = 'Another text.' WHERE sample_id = ?", [moved])
        con.execute("UPDATE generations SET text = 'A third text.' WHERE sample_id = ?", [min(part_ids)])
    report = merge_databases([jobs["report_part"], jobs["report"], other], tmp_path / "m.duckdb", "keep-first")
    kept = {c.key["sample_id"]: (c.table, c.columns, c.kept_from, c.source) for c in report.conflicts}
    assert kept == {
        moved: ("generations", ["text"], str(jobs["report"]), str(other)),
        min(part_ids): ("generations", ["text"], str(jobs["report_part"]), str(other)),  # the run came from there
    }


def test_scores_compare_by_identity_value_and_stats(jobs: dict[str, Path], tmp_path: Path) -> None:
    """Equal scores are duplicates (stats JSON in another key order too), another value is a conflict naming
    its score identity, another identity of the same metric is a new score."""
    other = _copy(jobs["report"], tmp_path, "other.duckdb")
    sample_id = _first(other)
    with duckdb.connect(str(other)) as con:
        metric, key, stats = con.execute(
            "SELECT metric, score_key, stats FROM scores WHERE sample_id = ? AND stats LIKE '{%,%}' "
            "ORDER BY metric LIMIT 1",
            [sample_id],
        ).fetchone()
        reordered = json.dumps(dict(reversed(json.loads(stats).items())))
        assert reordered != stats
        con.execute("UPDATE scores SET stats = ? WHERE sample_id = ? AND metric = ?", [reordered, sample_id, metric])
        con.execute("UPDATE scores SET value = value + 0.5 WHERE sample_id = ? AND metric = 'rouge_l'", [sample_id])
        con.execute(
            "INSERT INTO scores SELECT run_id, sample_id, metric, metric_version, 'other-options', value, stats "
            "FROM scores WHERE metric = 'bleu_4'"
        )
    n_scores = _rows(jobs["report"], "SELECT count(*) FROM scores")[0][0]
    n_samples = _rows(jobs["report"], "SELECT count(*) FROM generations")[0][0]
    report = merge_databases([jobs["report"], other], tmp_path / "m.duckdb", "keep-first")
    (conflict,) = report.conflicts
    assert conflict.table == "scores" and conflict.columns == ["value"]
    assert conflict.key == {
        "run_id": conflict.key["run_id"],
        "sample_id": sample_id,
        "metric": "rouge_l",
        "score_key": _rows(other, "SELECT score_key FROM scores WHERE metric = 'rouge_l' LIMIT 1")[0][0],
    }
    assert report.duplicates["scores"] == n_scores - 1 and report.added["scores"] == n_scores + n_samples
    assert metric != "rouge_l" and key
    assert _rows(tmp_path / "m.duckdb", "SELECT count(*) FROM scores")[0][0] == n_scores + n_samples
    kept = _rows(
        tmp_path / "m.duckdb", f"SELECT value FROM scores WHERE sample_id = '{sample_id}' AND metric = 'rouge_l'"
    )
    assert kept == _rows(
        jobs["report"], f"SELECT value FROM scores WHERE sample_id = '{sample_id}' AND metric = 'rouge_l'"
    )


def _first(path: Path) -> str:
    return _rows(path, "SELECT min(sample_id) FROM generations")[0][0]


def test_a_run_copied_in_steps_is_the_same_merge(
    jobs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run larger than STEP_ROWS is copied in several commits (bounded memory); the merge is the same."""
    sources = [jobs["report_part"], jobs["grounding"], jobs["report"]]
    whole = merge_databases(sources, tmp_path / "whole.duckdb")
    assert _rows(jobs["report"], "SELECT count(*) FROM generations")[0][0] > 2 * 7  # so every copy takes steps
    monkeypatch.setattr("evalkit.results.merge.STEP_ROWS", 7)
    stepped = merge_databases(sources, tmp_path / "stepped.duckdb")
    assert stepped.to_json() | {"into": ""} == whole.to_json() | {"into": ""}
    for table, key in (("generations", "run_id, sample_id"), ("scores", "run_id, sample_id, metric, score_key")):
        query = f"SELECT * FROM {table} ORDER BY {key}"
        assert _rows(tmp_path / "stepped.duckdb", query) == _rows(tmp_path / "whole.duckdb", query), table
    query = "SELECT metric, value, n FROM run_metrics ORDER BY run_id, metric"
    assert _rows(tmp_path / "stepped.duckdb", query) == _rows(tmp_path / "whole.duckdb", query)


def test_running_out_of_merge_memory_says_how_to_give_more(
    jobs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    into = _copy(jobs["grounding"], tmp_path, "into.duckdb")
    before = into.read_bytes()
    monkeypatch.setenv("EVALKIT_MERGE_MEMORY_LIMIT", "1MB")
    result = invoke("merge", jobs["report"], "--into", into)
    assert result.exit_code == 2 and "ran out of its DuckDB memory (1MB)" in result.output
    assert "EVALKIT_MERGE_MEMORY_LIMIT=1GB" in result.output
    assert into.read_bytes() == before and not list(tmp_path.glob("into.duckdb.*"))
    monkeypatch.setenv("EVALKIT_MERGE_MEMORY_LIMIT", "lots")
    result = invoke("merge", jobs["report"], "--into", into)
    assert result.exit_code == 2 and "not a memory size" in result.output
