"""A fully cached rerun does no work it already did: no weights loaded, no image embedded, no re-aggregation or
re-bootstrap; anything that changed (a crash between scoring and aggregating, a missing CI) is still redone."""

from __future__ import annotations

from pathlib import Path

import pytest

import evalkit.results.intervals as stored_cis
from evalkit.errors import EvalkitError
from evalkit.run.evaluate import evaluate
from evalkit.run.runner import Runner
from evalkit.store import Store


def _intervals(db: Path) -> dict[str, tuple]:
    with Store(db, read_only=True) as store:
        rows = store.con.execute("SELECT metric, value, ci_low, ci_high, n FROM intervals ORDER BY metric").fetchall()
    return {r[0]: r[1:] for r in rows}


def _counting(monkeypatch, owner, name: str) -> dict[str, int]:
    calls = {"n": 0}
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


@pytest.mark.slow  # about 8 s: four runs of the phantom report task
def test_cached_rerun_skips_aggregation_cis_and_embedding_but_redoes_what_changed(db, data_root, monkeypatch):
    first = evaluate("nn-retrieval", "phantom-report", db=db, data_root=data_root)[0]
    cis = _intervals(db)
    assert set(cis) == set(first.metrics)

    aggregate = _counting(monkeypatch, Runner, "_aggregate")
    bootstrap = _counting(monkeypatch, stored_cis, "_compute_and_write")
    embed = _counting(monkeypatch, __import__("evalkit.model_adapters.baselines", fromlist=["x"]), "embed_image")
    again = evaluate("nn-retrieval", "phantom-report", db=db, data_root=data_root)[0]
    assert again.generated == again.from_cache == 0 and again.reused == first.n_samples
    assert again.metrics == first.metrics and _intervals(db) == cis
    assert aggregate["n"] == bootstrap["n"] == embed["n"] == 0

    # A process that died after scoring more samples and before aggregating leaves an n that does not match.
    with Store(db) as store:
        store.con.execute("UPDATE run_metrics SET n = n - 1, value = NULL WHERE metric = 'rouge_l'")
    healed = evaluate("nn-retrieval", "phantom-report", db=db, data_root=data_root)[0]
    assert aggregate["n"] == 1 and healed.metrics == first.metrics and _intervals(db) == cis

    # A CI gone missing (a file from before the table) is computed again, and only that one.
    with Store(db) as store:
        store.con.execute("DELETE FROM intervals WHERE metric = 'bleu_4'")
    before = bootstrap["n"]
    evaluate("nn-retrieval", "phantom-report", db=db, data_root=data_root)
    assert aggregate["n"] == 1 and bootstrap["n"] == before + 1 and _intervals(db) == cis


@pytest.mark.slow  # about 8 s: builds a tiny Qwen3-VL and generates with it twice
def test_local_checkpoint_loads_only_when_something_is_generated(tmp_path, db, data_root, monkeypatch):
    pytest.importorskip("transformers")
    from helpers.runs import _card

    from evalkit.model_adapters.transformers_local import TransformersAdapter
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    card = _card(build_tiny_qwen3vl(tmp_path / "tiny", seed=0))
    loads = _counting(monkeypatch, TransformersAdapter, "_load")
    first = evaluate(card, "phantom-report", db=db, data_root=data_root, limit=2, device="cpu")[0]
    assert first.generated == 2 and loads["n"] == 1
    again = evaluate(card, "phantom-report", db=db, data_root=data_root, limit=2, device="cpu")[0]
    assert again.generated == 0 and again.metrics == first.metrics and loads["n"] == 1
    more = evaluate(card, "phantom-report", db=db, data_root=data_root, limit=3, device="cpu")[0]
    assert more.generated == 1 and loads["n"] == 2


def test_a_broken_local_checkpoint_fails_the_run_before_it_is_recorded(tmp_path, db, data_root):
    pytest.importorskip("transformers")
    from helpers.runs import _card

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(EvalkitError, match="cannot load checkpoint"):
        evaluate(_card(broken), "phantom-report", db=db, data_root=data_root, limit=2, device="cpu")
    with Store(db, read_only=True) as store:
        assert store.query("SELECT count(*) AS n FROM runs")[0]["n"] == 0
        assert store.query("SELECT count(*) AS n FROM generations")[0]["n"] == 0


def test_put_samples_writes_only_new_or_changed_rows(tmp_path, data_root, monkeypatch):
    import dataclasses

    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples, sample_row

    samples = load_samples(resolve_tasks("phantom-report")[0], data_root)[:3]
    with Store(tmp_path / "s.duckdb") as store:
        store.put_samples(sample_row(s) for s in samples)
        written: list[list[str]] = []
        real = store.insert_rows
        monkeypatch.setattr(
            store, "insert_rows", lambda t, c, rows: (written.append([r[1] for r in rows]), real(t, c, rows))
        )
        store.put_samples(sample_row(s) for s in samples)
        changed = dataclasses.replace(samples[1], reference_text="A new reference.")
        store.put_samples(sample_row(s) for s in [samples[0], changed])
        rows = store.query("SELECT reference_text FROM samples ORDER BY sample_id")
    assert written == [[], [changed.sample_id]]  # the identical call wrote nothing, the second only the change
    expected = [samples[0].reference_text, "A new reference.", samples[2].reference_text]
    assert [r["reference_text"] for r in rows] == expected
