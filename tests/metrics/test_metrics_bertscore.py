"""BERTScore: our metric (bert-score underneath, pair cache on top) against bert-score's own BERTScorer."""

from __future__ import annotations

import pytest
from helpers.clinical import all_options

from evalkit.metrics import get_metric
from evalkit.metrics._annotations import clear_memory
from evalkit.sample import Parsed, Sample

REFS = [
    "No acute cardiopulmonary process.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "",
    "Lungs are clear.  No effusion.",
    "Right upper lobe nodule, likely granuloma.",
]
PREDS = ["No acute process.", "Heart size normal.", "stable", "", "right upper lobe nodule " * 200]


def _samples(refs):
    return [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]


def test_matches_bert_score():
    from bert_score import BERTScorer

    options = all_options()["bertscore"]
    metric = get_metric("bertscore", **options)
    assert metric.available() is None
    scores = metric.score([Parsed(answer=p) for p in PREDS], _samples(REFS))
    scorer = metric.client.scorer()  # the patched bert-score scorer (empty sentences on transformers 5)
    direct = BERTScorer(
        model_type=options["model_path"],
        num_layers=5,
        lang="en",
        rescale_with_baseline=True,
        baseline_path=options["baseline_path"],
    )
    direct._tokenizer = scorer._tokenizer
    precision, recall, f1 = direct.score(PREDS, REFS)
    assert [s.value for s in scores] == pytest.approx(f1.tolist(), abs=1e-6)
    assert [s.stats["precision"] for s in scores] == pytest.approx(precision.tolist(), abs=1e-6)
    assert [s.stats["recall"] for s in scores] == pytest.approx(recall.tolist(), abs=1e-6)
    # bert-score's rules for empty sentences and long inputs (truncated to the model's maximum length).
    assert scores[2].value == scores[3].value
    assert scores[4].value is not None


def test_pairs_are_cached(monkeypatch, tmp_path):
    from evalkit.metrics.bertscore import BertScoreClient
    from evalkit.store import Store

    options = all_options()["bertscore"]
    clear_memory()
    with Store(tmp_path / "b.duckdb") as store:
        metric = get_metric("bertscore", **options)
        metric.cache = store
        first = [s.value for s in metric.score([Parsed(answer=p) for p in PREDS], _samples(REFS))]
        clear_memory()
        monkeypatch.setattr(BertScoreClient, "scorer", lambda self: pytest.fail("BERTScore ran on a cached pair"))
        again = get_metric("bertscore", **options)
        again.cache = store
        assert [s.value for s in again.score([Parsed(answer=p) for p in PREDS], _samples(REFS))] == first


def test_unavailable_and_refused_options(monkeypatch, tmp_path):
    import evalkit.metrics._weights as weights

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setattr(weights, "hf_cached_snapshot", lambda repo: None)
    assert "distilbert-base-uncased" in get_metric("bertscore").available()
    options = all_options()["bertscore"]
    assert "idf" in get_metric("bertscore", **options, idf=True).available()
    no_baseline = {**options, "baseline_path": str(tmp_path / "missing.tsv")}
    assert "baseline" in get_metric("bertscore", **no_baseline).available()
