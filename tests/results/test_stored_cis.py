"""CIs are computed once when a run finishes, stored, and read back by leaderboard and site."""

from __future__ import annotations

import pytest
from helpers.runs import _run

import evalkit.results.scores
from evalkit.results.intervals import DISPLAY_N_BOOT, run_cis
from evalkit.store import Store
from evalkit.views.leaderboard import latest_runs, leaderboard_rows


@pytest.fixture()
def grounding_db(db, data_root):
    _run(db, data_root, "prior-box", "phantom-anatomy-grounding")
    return db


def test_a_finished_run_stores_its_intervals(grounding_db):
    with Store(grounding_db) as store:
        run = latest_runs(store)[0]
        rows = store.query("SELECT * FROM intervals WHERE run_id = ?", [run["run_id"]])
        metrics = {r["metric"] for r in store.query("SELECT metric FROM run_metrics WHERE status = 'ok'")}
        assert {r["metric"] for r in rows} == metrics and {"coco_ap", "coco_ap50"} <= metrics
        assert all(r["n_boot"] == DISPLAY_N_BOOT and r["seed"] == 0 for r in rows)
        # What is stored is what the bootstrap gives for these settings (COCO on all resamples: vectorised now).
        fresh = evalkit.results.scores.run_intervals(store, run, n_boot=DISPLAY_N_BOOT, seed=0)
        for r in rows:
            assert (r["ci_low"], r["ci_high"]) == pytest.approx((fresh[r["metric"]].ci_low, fresh[r["metric"]].ci_high))
        assert {r["metric"]: r["n_boot_used"] for r in rows}["coco_ap"] == DISPLAY_N_BOOT


def test_leaderboard_reads_stored_intervals_without_bootstrapping(grounding_db, monkeypatch):
    with Store(grounding_db, read_only=True) as store:
        expected = leaderboard_rows(store)
    calls = []
    real = evalkit.results.scores.run_intervals

    def counting(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("metrics"))
        return real(*args, **kwargs)

    monkeypatch.setattr("evalkit.results.intervals.run_intervals", counting)
    with Store(grounding_db, read_only=True) as store:
        assert leaderboard_rows(store) == expected
    assert calls == []


def test_stale_or_missing_intervals_are_computed_on_read(grounding_db):
    with Store(grounding_db) as store:
        run = latest_runs(store)[0]
        stored = run_cis(store, run)
        # A merge that changed the sample count makes the stored interval stale: it is recomputed, not shown.
        store.con.execute("UPDATE intervals SET ci_low = -5 WHERE metric = 'miou'")
        assert run_cis(store, run)["miou"].ci_low == -5
        store.con.execute("UPDATE intervals SET n = n + 1 WHERE metric = 'miou'")
        assert run_cis(store, run)["miou"].ci_low == pytest.approx(stored["miou"].ci_low)
        # Scores under another identity (new options or weights) make it stale too.
        store.con.execute("UPDATE intervals SET n = n - 1, ci_low = -5, score_key = 'other' WHERE metric = 'miou'")
        assert run_cis(store, run)["miou"].ci_low == pytest.approx(stored["miou"].ci_low)
        store.con.execute("DELETE FROM intervals WHERE metric = 'coco_ap'")
        assert run_cis(store, run)["coco_ap"].ci_high == pytest.approx(stored["coco_ap"].ci_high)
        # Other settings than the stored ones are computed on demand.
        other = run_cis(store, run, n_boot=300, seed=4)
        assert other["coco_ap"].n_boot == 300


def test_each_cluster_choice_has_its_own_intervals(grounding_db):
    with Store(grounding_db) as store:
        run = latest_runs(store)[0]
        assert {r["cluster"] for r in store.query("SELECT cluster FROM intervals")} == {"auto"}
        iid = run_cis(store, run, cluster="none")
        assert {b.unit for b in iid.values()} == {"sample"}
