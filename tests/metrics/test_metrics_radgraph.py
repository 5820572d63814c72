"""RadGraph F1: our port against the radgraph package (0.1.18) on tiny random models of its real architecture.

The expected annotations and rewards were recorded by tests/fixtures/make_clinical_reference.py, running the
package itself (transformers 4.57) on weights that `evalkit.testing.tiny_clinical` rebuilds bit for bit here.
"""

from __future__ import annotations

import json

import pytest
from helpers.clinical import radgraph_folder, reference

from evalkit.metrics import get_metric
from evalkit.metrics._annotations import clear_memory
from evalkit.metrics.radgraph import RadGraphAnnotator, preprocess, rewards
from evalkit.sample import Parsed, Sample

MODEL_TYPES = ("radgraph-xl", "radgraph")


def _samples(refs):
    return [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_preprocessing_matches_radgraph(model_type):
    expected = reference()["radgraph"][model_type]["preprocessed"]
    assert [preprocess(t, model_type) for t in reference()["texts"]] == expected


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("batch_size", [1, 16])
def test_annotations_match_radgraph(model_type, batch_size):
    annotator = RadGraphAnnotator(radgraph_folder(model_type), model_type, device="cpu", batch_size=batch_size)
    expected = reference()["radgraph"][model_type]["annotations"]
    got = annotator(reference()["texts"])
    for ours, theirs in zip(got, expected, strict=True):
        assert ours == {"text": theirs["text"], "entities": theirs["entities"]}
    # Entities with and without relations, relations to non-entities dropped: the fixture exercises them all.
    assert any(e["relations"] for a in expected for e in a["entities"].values())
    assert any(not e["relations"] for a in expected for e in a["entities"].values())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_reward_function_matches_compute_reward(model_type):
    for case in reference()["radgraph"][model_type]["reward_cases"]:
        assert rewards(case["hyp"], case["ref"]) == pytest.approx(case["rewards"], abs=1e-12)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_f1radgraph_levels_match(model_type):
    fixture = reference()["radgraph"][model_type]
    refs, hyps = fixture["pairs"]["refs"], fixture["pairs"]["hyps"]
    options = {"model_dir": str(radgraph_folder(model_type)), "model_type": model_type, "device": "cpu"}
    for index, name in enumerate(("radgraph_f1_simple", "radgraph_f1_partial", "radgraph_f1_complete")):
        metric = get_metric(name, **options)
        assert metric.available() is None
        scores = metric.score([Parsed(answer=h) for h in hyps], _samples(refs))
        assert [s.value for s in scores] == pytest.approx([r[index] for r in fixture["rewards"]], abs=1e-6)
        assert metric.aggregate([s.value for s in scores], [s.stats for s in scores]) == pytest.approx(
            fixture["mean"][index], abs=1e-6
        )


def test_annotations_are_cached_and_reused(monkeypatch, tmp_path):
    from evalkit.store import Store

    clear_memory()
    options = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
    texts = reference()["texts"][:5]
    with Store(tmp_path / "r.duckdb") as store:
        metric = get_metric("radgraph_f1_partial", **options)
        metric.cache = store
        first = metric.score([Parsed(answer=t) for t in texts[::-1]], _samples(texts))
        stored = store.query("SELECT count(*) AS n FROM annotation_cache WHERE annotator = 'radgraph:radgraph-xl'")
        assert stored[0]["n"] == len(set(texts))
        clear_memory()  # only DuckDB left: the model must not run again

        def boom(self, batch):
            raise AssertionError("RadGraph ran on an already annotated text")

        monkeypatch.setattr(RadGraphAnnotator, "__call__", boom)
        again = get_metric("radgraph_f1_simple", **options)
        again.cache = store
        second = get_metric("radgraph_f1_partial", **options)
        second.cache = store
        assert [s.value for s in second.score([Parsed(answer=t) for t in texts[::-1]], _samples(texts))] == [
            s.value for s in first
        ]
        again.score([Parsed(answer=t) for t in texts], _samples(texts))


def test_empty_and_too_long_texts():
    options = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu", "max_words": 50}
    metric = get_metric("radgraph_f1_simple", **options)
    refs = ["Mild cardiomegaly.", "Mild cardiomegaly.", "Small effusion.", "   "]
    preds = ["", "effusion " * 300, "   ", "Small effusion."]
    scores = metric.score([Parsed(answer=p) for p in preds], _samples(refs))
    assert scores[0].value == 0.0  # F1RadGraph: an empty text scores 0
    assert scores[1].value is None and "max_words=50" in scores[1].stats["error"]
    assert scores[2].value == 0.0 and scores[3].value == 0.0  # no words, no entities -> 0


def test_unavailable_names_the_weights(monkeypatch, tmp_path):
    import evalkit.metrics.radgraph as radgraph

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(radgraph, "hf_cached_file", lambda *a: None)
    monkeypatch.setattr(radgraph, "user_cache_dir", lambda app: tmp_path / "none")
    reason = get_metric("radgraph_f1_partial").available()
    assert "RRG_scorers" in reason and "radgraph-xl" in reason
    assert "model_dir" in get_metric("radgraph_f1_partial", model_dir=str(tmp_path)).available()


def test_refuses_coreference_models(tmp_path):
    import shutil

    folder = tmp_path / "radgraph-xl"
    shutil.copytree(radgraph_folder("radgraph-xl"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["modules"]["coref"]["coref_prop"] = 1
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="coreference"):
        RadGraphAnnotator(folder, "radgraph-xl", device="cpu")
