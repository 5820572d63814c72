"""ReXrank's columns as metrics: each is the matching CXR-Report-Metric feature inside radcliq_v1 (whose features
are tested against fast_bleu and CXR-Report-Metric's definitions in test_metrics_radcliq.py), per report."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.clinical import all_options, reference

from evalkit.metrics import get_metric
from evalkit.metrics.radcliq import FEATURES
from evalkit.sample import Parsed, Sample


@pytest.mark.slow  # builds and loads the tiny RadGraph, CheXbert and distilroberta models (~20 s, shared)
def test_each_column_is_its_radcliq_feature_on_tiny_models(tmp_path):
    from evalkit.store import Store

    options = all_options()["radcliq_v1"]
    texts = reference()["texts"]
    refs, preds = texts[:6], texts[6:12]
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    parsed = [Parsed(answer=p) for p in preds]
    store = Store(tmp_path / "cache.duckdb")  # the shared annotation cache: the models run once, for radcliq_v1
    radcliq_metric = get_metric("radcliq_v1", **options)
    radcliq_metric.cache = store
    radcliq = radcliq_metric.score(parsed, samples)
    for name, feature in (("semb_score", "semb_score"), ("radgraph_combined", "radgraph_combined"),
                          ("bertscore_cxr", "bertscore"), ("bleu2_cxr", "bleu_score")):  # fmt: skip
        metric = get_metric(name, **({} if name == "bleu2_cxr" else options))
        metric.cache = store
        assert metric.available() is None and metric.higher_is_better
        values = [s.value for s in metric.score(parsed, samples)]
        assert values == pytest.approx([s.stats[feature] for s in radcliq], abs=1e-12), name
        assert metric.aggregate(values, [{}] * len(values)) == pytest.approx(float(np.mean(values)))
    assert FEATURES == ("radgraph_combined", "bertscore", "semb_score", "bleu_score")
    inverse = get_metric("1/RadCliQ-v1", **options)  # ReXrank's primary score, from the same cached features
    inverse.cache = store
    scored = inverse.score(parsed, samples)
    assert [s.stats["radcliq_v1"] for s in scored] == pytest.approx([s.value for s in radcliq], abs=1e-12)
    raw_mean = radcliq_metric.aggregate([s.value for s in radcliq], [s.stats for s in radcliq])
    expected = 1 / raw_mean if raw_mean > 0 else float("nan")
    value = inverse.aggregate([s.value for s in scored], [s.stats for s in scored])
    assert value == pytest.approx(expected, nan_ok=True)
    store.close()


def test_bleu2_cxr_is_fast_bleu_per_report():
    fixture = reference()["fast_bleu"]
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, (r, _) in enumerate(fixture["pairs"])]
    scores = get_metric("bleu2_cxr").score([Parsed(answer=p) for _, p in fixture["pairs"]], samples)
    assert [s.value for s in scores] == pytest.approx(fixture["bleu2"], abs=1e-9)
    assert get_metric("bleu2_cxr").score([Parsed(answer="")], samples[:1])[0].value == 0.0


def test_feature_metrics_say_what_they_need_without_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert get_metric("semb_score").available()  # names the missing weights
