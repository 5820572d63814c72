"""RadCliQ-v1: the published normaliser and coefficients, and each feature as CXR-Report-Metric computes it."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from helpers.clinical import all_options, reference
from sklearn.preprocessing import StandardScaler

from evalkit.metrics import get_metric
from evalkit.metrics.radcliq import (
    COEFFICIENTS,
    FEATURES,
    INTERCEPT,
    bleu2,
    bleu_tokens,
    entities_and_relations,
    radcliq_v1,
    radgraph_combined,
)
from evalkit.sample import Parsed, Sample


def test_composite_is_the_published_linear_model():
    # CXR-Report-Metric: CompositeMetric.predict = concat(scaler.transform(x), 1) @ coefs (RadEval's transcription).
    scaler = StandardScaler()
    scaler.mean_ = np.array([0.53792312, 0.61757256, 0.76479421, 0.44738335])
    scaler.scale_ = np.array([0.30282584, 0.22430938, 0.25394391, 0.29892717])
    scaler.var_ = scaler.scale_**2
    scaler.n_features_in_ = 4
    features = np.random.default_rng(0).random((50, 4))
    expected = np.hstack([scaler.transform(features), np.ones((50, 1))]) @ np.append(COEFFICIENTS, INTERCEPT)
    assert radcliq_v1(features) == pytest.approx(expected, abs=1e-12)
    assert FEATURES == ("radgraph_combined", "bertscore", "semb_score", "bleu_score")


def test_bleu2_matches_fast_bleu():
    fixture = reference()["fast_bleu"]
    got = [bleu2(bleu_tokens(r), bleu_tokens(p)) for r, p in fixture["pairs"]]
    assert got == pytest.approx(fixture["bleu2"], abs=1e-9)


def test_radgraph_combined_is_entity_and_relation_f1():
    annotations = reference()["radgraph"]["radgraph"]["annotations"]
    for ref, pred in itertools.pairwise(annotations):
        ref_e, ref_r = entities_and_relations(ref)
        pred_e, pred_r = entities_and_relations(pred)

        def f1(a, b):
            tp = len(a & b)
            return 0.0 if tp == 0 else 2 * tp / (len(a) + len(b))

        assert radgraph_combined(ref, pred) == pytest.approx((f1(ref_e, pred_e) + f1(ref_r, pred_r)) / 2, abs=1e-12)
        assert radgraph_combined(ref, ref) == (1.0 if ref_r else 0.5 if ref_e else 0.0)


def test_end_to_end_on_tiny_models():
    options = all_options()
    metric = get_metric("radcliq_v1", **options["radcliq_v1"])
    assert metric.available() is None and metric.higher_is_better is False
    texts = reference()["texts"]
    refs, preds = texts[:6], texts[6:12]
    samples = [Sample(f"s{i}", "t", [], reference_text=r) for i, r in enumerate(refs)]
    scores = metric.score([Parsed(answer=p) for p in preds], samples)
    features = np.array([[s.stats[f] for f in FEATURES] for s in scores])
    assert [s.value for s in scores] == pytest.approx(radcliq_v1(features).tolist(), abs=1e-12)
    # The BERTScore feature is bert-score on distilroberta with runs of spaces squeezed (CXR-Report-Metric).
    bert = get_metric("bertscore", **options["radcliq_v1"]["bertscore"])
    squeezed = [re.sub(r" +", " ", r) for r in refs]
    direct = bert.score([Parsed(answer=p) for p in preds], [Sample("x", "t", [], reference_text=r) for r in squeezed])
    assert features[:, 1] == pytest.approx([s.value for s in direct], abs=1e-6)
    assert np.all(np.abs(features[:, 2]) <= 1 + 1e-6)  # a cosine
    mean = metric.aggregate([s.value for s in scores], [s.stats for s in scores])
    assert mean == pytest.approx(float(np.mean([s.value for s in scores])))
