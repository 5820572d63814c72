"""ReXrank's report columns under evalkit equal CXR-Report-Metric's own code (rajpurkarlab/CXR-Report-Metric at
9c9ecad, `CXRMetric/run_eval.py: calc_metric`), which ReXrank names as its scoring code.

Fixture: tests/fixtures/cxr_report_metric_reference.json, made by tests/fixtures/make_cxr_report_metric_reference.py
(their calc_metric end to end in a side environment, on the same tiny random models; their DyGIE++ inference is the
one step stood in for, by the radgraph package's annotations of clinical_reference.json).

Tolerances: BLEU-2 and the RadGraph F1 are exact arithmetic on the same tokens and sets (1e-12). BERTScore and the
CheXbert [CLS] cosine are float32 model outputs computed with other batch shapes (their batch 256 / 18 against
ours, other padding) and another transformers major (4.57 against 5): ~1e-7 apart per value, so rel 1e-5 is wide
yet far below any convention difference (idf on moves BERTScore by up to 3e-3 here). RadCliQ-v1 multiplies the
features by at most |w| / scale = 1.65, so 1e-5 absolute; evalkit's published constants are their pickle's values
rounded to 8 digits (6e-8 on the score, hence 1e-7 where the features are the same).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FIXTURES
from helpers.clinical import cxr_report_metric_models, reference

from evalkit.metrics import get_metric
from evalkit.metrics.radcliq import (
    COEFFICIENTS,
    FEATURES,
    INTERCEPT,
    SCALER_MEAN,
    SCALER_SCALE,
    radcliq_v1,
    radgraph_combined,
)
from evalkit.metrics.radgraph import preprocess
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

FIXTURE = json.loads(FIXTURES.joinpath("cxr_report_metric_reference.json").read_text())
COLUMNS = FIXTURE["columns"]


def _inputs(pairs: list[dict[str, str]]) -> tuple[list[Parsed], list[Sample]]:
    samples = [Sample(f"s{i}", "t", [], reference_text=p["reference"]) for i, p in enumerate(pairs)]
    return [Parsed(answer=p["prediction"]) for p in pairs], samples


def _rexrank_metric(name: str, **options):
    return get_metric(name, **get_profile("rexrank").options_for(name, options))


def test_fixture_is_their_code_at_the_named_commit() -> None:
    source = FIXTURE["source"]
    assert source["repository"] == "rajpurkarlab/CXR-Report-Metric"
    assert source["commit"] == "9c9ecad39be6cb2be8e75be1d1c50ef8888a3e40"
    # bert-score 0.3.13: what their pins (0.3.11 on transformers 3.0.1) do with RoBERTa, on transformers 4.57 (the
    # generator's docstring); 0.3.11 on 4.57 drops the first word's space and lands far away:
    assert source["made_with"]["bert-score"] == "0.3.13" and source["made_with"]["fast-bleu"] == "0.0.90"
    (variant,) = FIXTURE["bertscore_variants"].values()
    assert max(abs(a - b) for a, b in zip(variant, COLUMNS["bertscore"], strict=True)) > 0.1
    texts = reference()["texts"]
    assert [(p["reference"], p["prediction"]) for p in FIXTURE["pairs"]] == [
        (texts[i], texts[j]) for i, j in reference()["pairs"]
    ]


def test_bleu2_cxr_equals_add_bleu_col() -> None:
    metric = _rexrank_metric("bleu2_cxr")
    for pairs, expected in ((FIXTURE["pairs"], COLUMNS["bleu_score"]),
                            (FIXTURE["long_pairs"], FIXTURE["long_columns"]["bleu_score"])):  # fmt: skip
        got = [s.value for s in metric.score(*_inputs(pairs))]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_radgraph_combined_equals_evaluate_radgraph_on_the_same_annotations() -> None:
    # Their evaluate_radgraph + add_radgraph_col scored the radgraph package's annotations of these texts.
    annotations = reference()["radgraph"]["radgraph"]["annotations"]
    got = [radgraph_combined(annotations[i], annotations[j]) for i, j in reference()["pairs"]]
    assert got == pytest.approx(COLUMNS["radgraph_combined"], abs=1e-12)
    assert any(0 < v < 1 for v in got)  # partial overlaps, not only the trivial 0 / 1


def test_radgraph_words_equal_their_dygie_preprocessing() -> None:
    assert [preprocess(t, "radgraph") for t in reference()["texts"]] == FIXTURE["dygie_tokens"]


def test_radcliq_v1_equals_their_pickled_composite() -> None:
    composite = FIXTURE["composite"]
    assert SCALER_MEAN == pytest.approx(composite["scaler_mean"], abs=1e-8)
    assert SCALER_SCALE == pytest.approx(composite["scaler_scale"], abs=1e-8)
    assert [*COEFFICIENTS, INTERCEPT] == pytest.approx(composite["coefs"], abs=1e-8)
    assert radcliq_v1(np.array(composite["features"])) == pytest.approx(composite["predict"], abs=1e-7)
    # ... and on their own feature rows, in their column order (run_eval.COLS)
    features = np.array([COLUMNS[c] for c in FEATURES]).T
    assert radcliq_v1(features) == pytest.approx(COLUMNS["RadCliQ-v1"], abs=1e-7)


@pytest.mark.slow  # builds and loads tiny CheXbert, distilroberta and RadGraph models (~15 s on a shared CPU)
def test_model_columns_equal_their_code_on_tiny_models(tmp_path) -> None:
    from evalkit.store import Store

    models = cxr_report_metric_models()
    assert models["digests"] == FIXTURE["models"], "the tiny models differ from those the fixture was made with"
    store = Store(tmp_path / "cache.duckdb")
    predictions, samples = _inputs(FIXTURE["pairs"])
    radcliq = _rexrank_metric("radcliq_v1", **models["options"])
    radcliq.cache = store
    assert radcliq.available() is None
    scored = radcliq.score(predictions, samples)
    assert [s.value for s in scored] == pytest.approx(COLUMNS["RadCliQ-v1"], abs=1e-5)
    for name, column, tolerance in (("bertscore_cxr", "bertscore", 1e-5), ("semb_score", "semb_score", 1e-5),
                                    ("radgraph_combined", "radgraph_combined", 1e-12)):  # fmt: skip
        metric = _rexrank_metric(name, **models["options"])
        metric.cache = store
        got = [s.value for s in metric.score(predictions, samples)]
        assert got == pytest.approx(COLUMNS[column], rel=tolerance, abs=tolerance), name
    store.close()


@pytest.mark.slow  # the tiny CheXbert and distilroberta on three reports over 512 word pieces (~10 s)
def test_long_reports_are_cut_as_their_code_cuts_them(tmp_path) -> None:
    """CheXbert keeps 511 pieces + [SEP], bert-score the model's 512; and a report RadGraph refuses (over
    max_words) still has its BERTScore and SembScore, as in calc_metric, where every column stands alone."""
    from evalkit.store import Store

    models = cxr_report_metric_models()
    options = {**models["options"], "radgraph": {**models["options"]["radgraph"], "max_words": 20}}
    store = Store(tmp_path / "cache.duckdb")
    predictions, samples = _inputs(FIXTURE["long_pairs"])
    for name, column in (("bertscore_cxr", "bertscore"), ("semb_score", "semb_score")):
        metric = _rexrank_metric(name, **options)
        metric.cache = store
        got = [s.value for s in metric.score(predictions, samples)]
        assert got == pytest.approx(FIXTURE["long_columns"][column], rel=1e-5, abs=1e-5), name
    radcliq = _rexrank_metric("radcliq_v1", **options)
    radcliq.cache = store
    assert all(s.value is None and "RadGraph" in s.stats["error"] for s in radcliq.score(predictions, samples))
    store.close()
