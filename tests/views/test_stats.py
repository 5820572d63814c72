"""Resampling statistics on synthetic scores with known truth, and on stored runs (shared samples only)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from helpers.metrics import PREVALENCE, SENSITIVITY, SPECIFICITY, MicroF1, SlowMicroF1, _f1_stats
from helpers.runs import _run
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.metrics import get_metric
from evalkit.metrics.lexical import Bleu4
from evalkit.stats import (
    MetricScores,
    Resampler,
    bootstrap_distribution,
    compare_paired,
    holm,
    pair_scores,
    paired_bootstrap_distribution,
    percentile_interval,
    permutation_distribution,
)


class SlowBleu4(Bleu4):
    def sufficient_matrix(self, values, stats):
        return None


# Label prevalences, sensitivity and specificity of a simulated 14-label classifier; the population micro F1 is
# the limit of the corpus value: 2 E[tp] / (2 E[tp] + E[fp] + E[fn]).
E_TP = (PREVALENCE * SENSITIVITY).sum()
E_FN = (PREVALENCE * (1 - SENSITIVITY)).sum()
E_FP = ((1 - PREVALENCE) * (1 - SPECIFICITY)).sum()
TRUE_F1 = 2 * E_TP / (2 * E_TP + E_FP + E_FN)


def _bleu_stats(rng: np.random.Generator, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        length = int(rng.integers(8, 40))
        guess = [max(length - k, 0) for k in range(4)]
        correct = [int(rng.binomial(g, 0.6 ** (k + 1))) for k, g in enumerate(guess)]
        out.append({"testlen": length, "reflen": int(rng.integers(8, 40)), "guess": guess, "correct": correct})
    return out


def test_bleu_from_sums_equals_aggregate_on_resamples():
    rng = np.random.default_rng(1)
    stats = _bleu_stats(rng, 60)
    metric = get_metric("bleu_4")
    matrix = metric.sufficient_matrix([None] * 60, stats)
    for _ in range(20):
        index = rng.integers(0, 60, 60)
        expected = metric.aggregate([None] * 60, [stats[i] for i in index])
        assert metric.from_sums(matrix[index].sum(axis=0)) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(("fast", "slow", "make"), [(MicroF1, SlowMicroF1, _f1_stats), (Bleu4, SlowBleu4, _bleu_stats)])
def test_vectorised_and_generic_resampling_agree(fast, slow, make):
    stats = make(np.random.default_rng(2), 80)
    values = [None] * 80
    quick = Resampler(fast(), values, stats)
    generic = Resampler(slow(), values, stats)
    assert quick.vectorised and not generic.vectorised
    a, b = bootstrap_distribution([quick, generic], 300, seed=5)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    other = make(np.random.default_rng(3), 80)
    fast_perm = permutation_distribution([(quick, Resampler(fast(), values, other))], 200, seed=6)[0]
    slow_perm = permutation_distribution([(generic, Resampler(slow(), values, other))], 200, seed=6)[0]
    np.testing.assert_allclose(fast_perm, slow_perm, rtol=1e-10, atol=1e-14)


def test_mean_metric_interval_matches_normal_theory():
    rng = np.random.default_rng(3)
    values = rng.normal(0.5, 0.2, 2000)
    reps = bootstrap_distribution([Resampler(get_metric("miou"), values.tolist(), [{}] * 2000)], 4000, seed=0)[0]
    low, high = percentile_interval(reps)
    expected = 2 * 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert high - low == pytest.approx(expected, rel=0.08)
    assert low < values.mean() < high


def test_missing_values_are_left_out_like_aggregate():
    metric = get_metric("miou")
    values = [0.2, None, 0.6, None, 1.0]
    r = Resampler(metric, values, [{}] * 5)
    assert r.point() == pytest.approx(0.6)
    assert metric.from_sums(r.matrix.sum(axis=0)) == pytest.approx(0.6)


@pytest.mark.slow
def test_corpus_f1_intervals_cover_the_true_value_at_about_the_nominal_rate():
    rng = np.random.default_rng(11)
    trials, covered = 200, 0
    for trial in range(trials):
        stats = _f1_stats(rng, 300)
        reps = bootstrap_distribution([Resampler(MicroF1(), [None] * 300, stats)], 1000, seed=trial)[0]
        low, high = percentile_interval(reps)
        covered += low <= TRUE_F1 <= high
    assert 0.90 <= covered / trials <= 0.99, covered / trials


def test_holm_matches_a_hand_computation():
    # sorted: 0.005*4 = 0.02; 0.01*3 = 0.03; 0.03*2 = 0.06; max(0.06, 0.04*1) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    adjusted = holm([0.01, float("nan"), 0.02])  # NaN is not a test: m = 2
    assert adjusted[0] == pytest.approx(0.02) and np.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def _scores(name: str, ids: list[str], values: list[float]) -> MetricScores:
    return MetricScores(name, ids, values, [{}] * len(ids))


def test_paired_statistics_use_only_shared_samples():
    rng = np.random.default_rng(4)
    shared = [f"s{i:03d}" for i in range(200)]
    base = rng.random(200)
    a = _scores("miou", [*shared, "only-a-1", "only-a-2"], [*(base + 0.05).tolist(), 100.0, 100.0])
    b = _scores("miou", ["only-b", *shared], [-100.0, *base.tolist()])
    paired = pair_scores({"miou": a}, {"miou": b}, {"miou": get_metric("miou")})
    assert paired[0].sample_ids == shared
    result = compare_paired(paired, n_boot=1000, n_perm=1000, seed=0)[0]
    assert result.n_shared == 200
    assert result.delta == pytest.approx(0.05)
    assert result.ci_low == pytest.approx(0.05) and result.ci_high == pytest.approx(0.05)  # a constant shift
    assert result.p_bootstrap < 0.01 and result.p_permutation < 0.01


def test_identical_runs_have_p_one_and_a_zero_interval():
    values = np.random.default_rng(5).random(100).tolist()
    ids = [str(i) for i in range(100)]
    paired = pair_scores({"m": _scores("m", ids, values)}, {"m": _scores("m", ids, values)}, {"m": get_metric("miou")})
    result = compare_paired(paired, n_boot=500, n_perm=500)[0]
    assert result.delta == 0 and result.ci_low == 0 and result.ci_high == 0
    assert result.p_bootstrap == 1 and result.p_permutation == 1


def test_null_p_values_are_roughly_uniform_and_holm_is_applied():
    rng = np.random.default_rng(6)
    rejections = 0
    for trial in range(60):
        base = rng.random(150)
        a = base + rng.normal(0, 0.1, 150)
        b = base + rng.normal(0, 0.1, 150)
        ids = [str(i) for i in range(150)]
        metrics = {"x": get_metric("miou"), "y": get_metric("acc50")}
        paired = pair_scores(
            {"x": _scores("x", ids, a.tolist()), "y": _scores("y", ids, (a * 2).tolist())},
            {"x": _scores("x", ids, b.tolist()), "y": _scores("y", ids, (b * 2).tolist())},
            metrics,
        )
        results = compare_paired(paired, n_boot=500, n_perm=500, seed=trial)
        assert results[0].p_bootstrap_holm == pytest.approx(min(1.0, 2 * min(r.p_bootstrap for r in results)))
        rejections += results[0].p_permutation < 0.05
    assert rejections <= 9  # nominal 3 of 60


def test_paired_bootstrap_is_seeded():
    rng = np.random.default_rng(7)
    pair = [
        (
            Resampler(get_metric("miou"), rng.random(50).tolist(), [{}] * 50),
            Resampler(get_metric("miou"), rng.random(50).tolist(), [{}] * 50),
        )
    ]
    first = paired_bootstrap_distribution(pair, 200, seed=1)[0]
    np.testing.assert_array_equal(first, paired_bootstrap_distribution(pair, 200, seed=1)[0])
    assert not np.array_equal(first, paired_bootstrap_distribution(pair, 200, seed=2)[0])


def test_compare_cli_on_stored_runs_pairs_shared_samples(db, data_root):
    _run(db, data_root, "nn-retrieval", "phantom-report")
    _run(db, data_root, "normal-template", "phantom-report", limit=10)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "compare",
            "--task",
            "phantom-report",
            "--model",
            "nn-retrieval",
            "--model",
            "normal-template",
            "--db",
            str(db),
            "--json",
            "--n-boot",
            "500",
            "--n-perm",
            "500",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [m["metric"] for m in data["metrics"]]
    assert names[0] == "rouge_l" and "bleu_4" in names  # the primary metric first
    assert all(m["n_shared"] == 10 for m in data["metrics"])
    for m in data["metrics"]:
        assert m["ci_low"] <= m["delta"] <= m["ci_high"]
        assert 0 < m["p_bootstrap"] <= 1 and m["p_bootstrap"] <= m["p_bootstrap_holm"] <= 1
    table = runner.invoke(
        app, ["compare", "-t", "phantom-report", "-m", "nn-retrieval", "-m", "normal-template", "--db", str(db)]
    )
    assert table.exit_code == 0 and "rouge_l" in table.output and "p AR" in table.output
    bad = runner.invoke(app, ["compare", "-t", "phantom-report", "-m", "nn-retrieval", "--db", str(db)])
    assert bad.exit_code == 2 and "exactly twice" in bad.output
    bad = runner.invoke(app, ["compare", "-t", "phantom-report", "-m", "nn-retrieval", "-m", "nope", "--db", str(db)])
    assert bad.exit_code == 2 and "no run of model" in bad.output


def test_leaderboard_json_has_intervals(db, data_root):
    _run(db, data_root, "prior-box", "phantom-anatomy-grounding")
    result = CliRunner().invoke(app, ["leaderboard", "--db", str(db), "--json"])
    rows = json.loads(result.output)
    assert {"task", "model", "metric", "value", "n", "ci_low", "ci_high"} <= set(rows[0])
    for r in rows:
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
