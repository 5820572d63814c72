"""What a run reads and writes: image headers only for adapters that never look at pixels; few, large writes."""

from __future__ import annotations

import evalkit.runner
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.runner import Runner, build_adapter, load_samples
from evalkit.store import Store


def _run(db, data_root, model: str, task: str, **kwargs):
    card, spec = resolve_model(model), resolve_tasks(task)[0]
    adapter = build_adapter(card)
    adapter.prepare(spec, lambda: load_samples(spec, data_root, split="train"))
    with Store(db) as store:
        summary = Runner(store, spec, card, adapter, data_root=data_root, progress=False, **kwargs).run()
        rows = store.query("SELECT sample_id, text, parsed FROM generations ORDER BY sample_id")
    return summary, rows


def test_a_prior_baseline_reads_headers_only_and_answers_the_same(tmp_path, data_root, monkeypatch):
    card = resolve_model("prior-box")
    assert not build_adapter(card).reads_pixels and build_adapter(resolve_model("nn-retrieval")).reads_pixels
    decoded = _run(tmp_path / "a.duckdb", data_root, "prior-box", "phantom-anatomy-grounding")
    calls = []
    real = evalkit.runner.load_image
    monkeypatch.setattr(evalkit.runner, "load_image", lambda p: calls.append(p) or real(p))
    headers = _run(tmp_path / "b.duckdb", data_root, "prior-box", "phantom-anatomy-grounding")
    assert calls == []
    assert headers[1] == decoded[1] and headers[0].metrics == decoded[0].metrics
    _run(tmp_path / "c.duckdb", data_root, "nn-retrieval", "phantom-anatomy-grounding", limit=3)
    assert len(calls) == 3


def test_generations_of_fast_batches_are_written_together(tmp_path, data_root, monkeypatch):
    writes = []
    real = Runner._write_generations

    def counting(self):
        writes.append(len(self._unwritten[1]))
        real(self)

    monkeypatch.setattr(Runner, "_write_generations", counting)
    monkeypatch.setattr(evalkit.runner, "WRITE_SECONDS", 60.0)  # a loaded CI machine must not split the write
    summary, rows = _run(tmp_path / "a.duckdb", data_root, "prior-box", "phantom-anatomy-grounding", batch_size=2)
    assert len(rows) == summary.n_samples > 2
    assert [w for w in writes if w] == [summary.n_samples]  # one write, not one per batch of 2
