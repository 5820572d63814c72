"""What a run reads: image headers only for adapters that never look at pixels."""

from __future__ import annotations

import evalkit.run.runner
from evalkit.model_adapters.registry import build_adapter
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.run.runner import Runner, load_samples
from evalkit.store import Store


def _run(db, data_root, model: str, task: str, reads_pixels: bool | None = None, **kwargs):
    card, spec = resolve_model(model), resolve_tasks(task)[0]
    adapter = build_adapter(card)
    if reads_pixels is not None:
        adapter.reads_pixels = reads_pixels
    adapter.prepare(spec, lambda: load_samples(spec, data_root, split="train"))
    with Store(db) as store:
        summary = Runner(store, spec, card, adapter, data_root=data_root, progress=False, **kwargs).run()
        rows = store.query("SELECT sample_id, text, parsed FROM generations ORDER BY sample_id")
    return summary, rows


def test_a_prior_baseline_reads_headers_only_and_answers_the_same(tmp_path, data_root, monkeypatch):
    card = resolve_model("prior-box")
    assert not build_adapter(card).reads_pixels and build_adapter(resolve_model("nn-retrieval")).reads_pixels
    calls = []
    real = evalkit.run.runner.load_image
    monkeypatch.setattr(evalkit.run.runner, "load_image", lambda p: calls.append(p) or real(p))
    decoded = _run(tmp_path / "a.duckdb", data_root, "prior-box", "phantom-anatomy-grounding", reads_pixels=True)
    assert len(calls) == decoded[0].n_samples > 0
    calls.clear()
    headers = _run(tmp_path / "b.duckdb", data_root, "prior-box", "phantom-anatomy-grounding")
    assert calls == []
    assert headers[1] == decoded[1] and headers[0].metrics == decoded[0].metrics
    _run(tmp_path / "c.duckdb", data_root, "nn-retrieval", "phantom-anatomy-grounding", limit=3)
    assert len(calls) == 3
