"""1/RadCliQ-v1 (ReXrank's primary score): 1 over the corpus mean of stored per-report RadCliQ-v1, higher is better,
resampled from the stored statistics; no value and no CI where the mean reaches 0."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.metrics import get_metric, metric_class
from evalkit.metrics.base import SampleScore
from evalkit.profiles import get_profile
from evalkit.results.aggregates import StoredMean
from evalkit.sample import Parsed, Sample
from evalkit.stats import MetricScores, PairedData, Resampler, compare_paired, intervals

NAME = "1/RadCliQ-v1"


def _stats(raw: list[float | None]) -> list[dict]:
    return [{"error": "feature failed"} if r is None else {"radcliq_v1": r} for r in raw]


def _scores(raw: list[float | None], name: str = NAME) -> MetricScores:
    return MetricScores(name, [f"s{i:02d}" for i in range(len(raw))], [None] * len(raw), _stats(raw))


def test_is_its_own_name_beside_the_raw_lower_is_better_radcliq():
    inverse, raw = metric_class(NAME), metric_class("radcliq_v1")
    assert inverse is not raw and inverse.corpus
    assert inverse.higher_is_better and not raw.higher_is_better


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([0.5, 1.0, 1.5], 1.0),  # mean 1.0
        ([1.0, 2.0, 3.0, 4.0], 0.4),  # mean 2.5, not mean(1/x) = 0.5208...
        ([2.0, None, 0.5], 1 / 1.25),  # a report without RadCliQ-v1 is left out, as radcliq_v1 leaves it out
        ([-1.0, 0.5], math.nan),  # mean -0.25: 1/x is no score there
        ([1.0, -1.0], math.nan),  # mean 0
    ],
)
def test_corpus_value_is_one_over_the_mean_of_stored_radcliq(raw, expected):
    metric = get_metric(NAME)
    value = metric.aggregate([None] * len(raw), _stats(raw))
    assert (math.isnan(value) and math.isnan(expected)) or value == pytest.approx(expected, abs=1e-12)


def test_resampling_uses_the_stored_sums():
    metric = get_metric(NAME)
    stats = _stats([1.0, 2.0, None, 4.0])
    matrix = metric.sufficient_matrix([None] * 4, stats)
    assert matrix.tolist() == [[1.0, 1.0], [2.0, 1.0], [0.0, 0.0], [4.0, 1.0]]
    counts = np.array([[2, 0, 1, 1], [0, 3, 0, 0], [0, 0, 4, 0]], dtype=float)  # how often each sample is drawn
    # (2*1 + 4) / 3 = 2 -> 0.5; mean 2 -> 0.5; only the failed report -> no value
    assert metric.from_sums(counts @ matrix)[:2].tolist() == pytest.approx([0.5, 0.5])
    assert math.isnan(metric.from_sums(counts @ matrix)[2])
    assert Resampler(metric, [None] * 4, stats).vectorised


def test_ci_is_the_inverse_of_the_mean_ci_when_the_mean_stays_positive():
    raw = [1.0 + 0.1 * (i % 7) for i in range(40)]
    metric = get_metric(NAME)
    inverse = intervals({NAME: _scores(raw)}, {NAME: metric}, n_boot=2000)[NAME]
    mean = intervals({"m": _values(raw)}, {"m": StoredMean("m")}, n_boot=2000)["m"]
    assert inverse.value == pytest.approx(1 / np.mean(raw))
    # 1/x is decreasing on (0, inf): the same resamples' percentiles map across (up to quantile interpolation).
    assert inverse.ci_low == pytest.approx(1 / mean.ci_high, rel=1e-3)
    assert inverse.ci_high == pytest.approx(1 / mean.ci_low, rel=1e-3)


def _values(raw: list[float]) -> MetricScores:
    return MetricScores("m", [f"s{i:02d}" for i in range(len(raw))], list(raw), [{} for _ in raw])


def test_no_ci_when_the_mean_ci_includes_zero():
    raw = [-1.0, 1.2, 0.4, -0.8, 0.6, 0.3, -0.5, 0.9]  # mean 0.0125 > 0, resampled means on both sides of 0
    interval = intervals({NAME: _scores(raw)}, {NAME: get_metric(NAME)}, n_boot=500)[NAME]
    assert interval.value == pytest.approx(1 / np.mean(raw))
    assert math.isnan(interval.ci_low) and math.isnan(interval.ci_high)
    # the raw mean keeps its CI (it includes 0), so a reader can say why 1/x has none
    mean = intervals({"m": _values(raw)}, {"m": StoredMean("m")}, n_boot=500)["m"]
    assert mean.ci_low < 0 < mean.ci_high


def test_paired_comparison_has_no_ci_when_a_resample_has_no_value():
    metric = get_metric(NAME)
    a = [-1.0, 1.2, 0.4, -0.8, 0.6, 0.3, -0.5, 0.9]
    b = [1.0 + 0.1 * i for i in range(8)]
    ids = [f"s{i:02d}" for i in range(8)]
    paired = PairedData(NAME, Resampler(metric, [None] * 8, _stats(a)), Resampler(metric, [None] * 8, _stats(b)), ids)
    (result,) = compare_paired([paired], n_boot=300, n_perm=0)
    assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
    safe = PairedData(NAME, Resampler(metric, [None] * 8, _stats(b)), Resampler(metric, [None] * 8, _stats(b)), ids)
    (same,) = compare_paired([safe], n_boot=300, n_perm=0)
    assert same.ci_low == same.ci_high == 0.0


def test_score_stores_each_report_radcliq_and_its_inverse(monkeypatch):
    metric = get_metric(NAME)
    raw = [SampleScore(0.5, {"bleu_score": 0.1}), SampleScore(None, {"error": "too long"}), SampleScore(-0.2, {})]
    monkeypatch.setattr(metric.inner, "score", lambda predictions, samples: raw)
    samples = [Sample(f"s{i}", "t", [], reference_text="r") for i in range(3)]
    out = metric.score([Parsed(answer="p")] * 3, samples)
    assert [s.value for s in out] == [2.0, None, None]
    assert [s.stats for s in out] == [{"radcliq_v1": 0.5}, {"error": "too long"}, {"radcliq_v1": -0.2}]
    assert metric.aggregate([s.value for s in out], [s.stats for s in out]) == pytest.approx(1 / 0.15)


def test_rexrank_profile_and_task_carry_it():
    profile = get_profile("rexrank")
    assert profile.options_for(NAME) == {"convention": "cxr_report_metric"}
    from evalkit.registry import all_tasks

    names = [m.name if hasattr(m, "name") else m for m in all_tasks()["iu-xray-report-rexrank"].metrics]
    assert NAME in names and "radcliq_v1" in names


def test_without_weights_it_says_what_it_needs(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert get_metric(NAME).available() == get_metric("radcliq_v1").available() != None  # noqa: E711
