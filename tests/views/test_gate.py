"""The regression gate: known-truth synthetic scores, power, exit codes, config, Markdown and JUnit reports."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import yaml
from helpers import ROOT
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric
from evalkit.stats import MetricScores, pair_scores
from evalkit.views.gate import noninferiority

N = 1000
MARGIN = 0.015  # SE of the paired difference is 0.1 / sqrt(1000) = 0.0032: about 99.7% power per metric


class LowerIsBetter(Metric):
    name = "test_lower_is_better"
    higher_is_better = False

    def score(self, predictions, samples):
        raise NotImplementedError


def _paired(rng: np.random.Generator, shift: float, metrics: dict[str, Metric]):
    ids = [f"s{i}" for i in range(N)]
    a, b = {}, {}
    for name in metrics:
        base = rng.beta(2, 2, N)
        candidate = base + shift + rng.normal(0, 0.1, N)
        a[name] = MetricScores(name, ids, candidate.tolist(), [{}] * N)
        b[name] = MetricScores(name, ids, base.tolist(), [{}] * N)
    return pair_scores(a, b, metrics)


def _two_metrics() -> dict[str, Metric]:
    return {"miou": get_metric("miou"), "acc50": get_metric("acc50")}


@pytest.mark.slow
def test_candidate_equal_to_baseline_passes_in_at_least_95_percent_of_seeds():
    passes, powers = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        paired = _paired(rng, 0.0, _two_metrics())
        verdicts = noninferiority(paired, {"miou": MARGIN, "acc50": MARGIN}, n_boot=2000, seed=seed)
        passes += all(v.passed for v in verdicts)
        powers.append(np.prod([v.power for v in verdicts]))
    assert passes >= 38, passes
    assert np.mean(powers) > 0.95


def test_candidate_worse_by_twice_the_margin_fails():
    for seed in range(5):
        paired = _paired(np.random.default_rng(100 + seed), -2 * MARGIN, _two_metrics())
        verdicts = noninferiority(paired, {"miou": MARGIN, "acc50": MARGIN}, n_boot=2000, seed=seed)
        assert not any(v.passed for v in verdicts)
        assert all(v.regression_upper > MARGIN for v in verdicts)


def test_direction_is_respected_for_lower_is_better_metrics():
    metric = {"test_lower_is_better": LowerIsBetter()}
    higher = _paired(np.random.default_rng(1), +2 * MARGIN, metric)  # candidate higher = worse
    lower = _paired(np.random.default_rng(2), -2 * MARGIN, metric)  # candidate lower = better
    (worse,) = noninferiority(higher, {"test_lower_is_better": MARGIN}, n_boot=2000)
    (better,) = noninferiority(lower, {"test_lower_is_better": MARGIN}, n_boot=2000)
    assert not worse.passed and worse.improvement < 0
    assert better.passed and better.improvement > 0


@pytest.mark.slow
def test_reported_power_predicts_the_pass_rate():
    # Margin = 1.645 SE: a one-sided 5% test of an unchanged candidate passes about half the time.
    margin = 1.645 * 0.1 / np.sqrt(N)
    metric = {"miou": get_metric("miou")}
    passes, powers = 0, []
    for seed in range(40):
        (v,) = noninferiority(_paired(np.random.default_rng(seed), 0.0, metric), {"miou": margin}, n_boot=2000)
        passes += v.passed
        powers.append(v.power)
    assert 0.25 <= passes / 40 <= 0.75
    assert np.mean(powers) == pytest.approx(0.5, abs=0.1)


def test_holm_uses_the_step_down_levels():
    paired = _paired(np.random.default_rng(3), 0.0, _two_metrics())
    holm = noninferiority(paired, {"miou": MARGIN, "acc50": MARGIN}, n_boot=2000)
    plain = noninferiority(paired, {"miou": MARGIN, "acc50": MARGIN}, n_boot=2000, correction="none")
    assert sorted(v.level for v in holm) == pytest.approx([0.95, 0.975])
    assert all(v.level == pytest.approx(0.95) for v in plain)
    assert all(h.p_adjusted >= p.p_adjusted for h, p in zip(holm, plain, strict=True))


# --- the command on a stored database ----------------------------------------------------------------------------
@pytest.fixture()
def report_db(db, data_root):
    from evalkit import evaluate

    for model in ("nn-retrieval", "normal-template"):
        evaluate(model, "phantom-report", db=db, data_root=data_root)
    return db


def _gate(db, *args: str):
    base = ["gate", "--task", "phantom-report", "--candidate", "nn-retrieval", "--baseline", "normal-template"]
    return CliRunner().invoke(app, [*base, "--db", str(db), "--n-boot", "1000", *map(str, args)])


def test_gate_exit_codes_and_reports(report_db, tmp_path):
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    passed = _gate(report_db, "--margin", "1.0", "--junit", junit, "--markdown", markdown)
    assert passed.exit_code == 0, passed.output
    suite = ElementTree.parse(junit).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests")) >= 2 and suite.get("failures") == "0"
    assert {"rouge_l non-inferiority", "bleu_4 non-inferiority"} <= {c.get("name") for c in suite.iter("testcase")}
    assert "evalkit gate: ✅ PASS" in markdown.read_text()

    strict = _gate(report_db, "--margin", "0", "--junit", junit, "--json")
    data = json.loads(strict.output)
    # A margin of 0 can never be shown met: each metric is either shown worse or inconclusive, never passed.
    assert data["verdict"] in ("regression", "inconclusive") and strict.exit_code == {"regression": 1}.get(
        data["verdict"], 3
    )
    assert data["passed"] is False and {"rouge_l", "bleu_4"} <= {v["metric"] for v in data["verdicts"]}
    suite = ElementTree.parse(junit).getroot()
    assert int(suite.get("failures")) >= 1 and suite.find("testcase/failure") is not None

    missing = _gate(report_db)
    assert missing.exit_code == 2 and "no margin for metric" in missing.output
    unknown = _gate(report_db, "--margin", "0.1", "--metric", "radgraph_f1")
    assert unknown.exit_code == 2 and "radgraph_f1" in unknown.output


def test_gate_config_file(report_db, tmp_path):
    config = tmp_path / "gate.yaml"
    config.write_text(yaml.safe_dump({"metrics": ["rouge_l"], "margins": {"rouge_l": 1.0}, "alpha": 0.1, "seed": 3}))
    result = _gate(report_db, "--config", config, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [v["metric"] for v in data["verdicts"]] == ["rouge_l"] and data["alpha"] == 0.1 and data["seed"] == 3
    assert 0 <= data["power"] <= 1 and data["verdicts"][0]["n"] == 16

    config.write_text("margins: {rouge_l: 0.01}\nalpah: 0.05\n")
    typo = _gate(report_db, "--config", config)
    assert typo.exit_code == 2 and str(config) in typo.output and "alpah" in typo.output


# --- three verdicts on constructed cases ---------------------------------------------------------------------------
TASK = "phantom-anatomy-grounding"


def _case_db(db: Path, candidate_shift: float, noise: float, clusters: int, size: int, task: str = TASK) -> Path:
    from helpers.clustered import cluster_keys, planted, write_runs

    rng = np.random.default_rng(int(1000 * abs(candidate_shift)) + clusters)
    baseline = planted(rng, clusters, size, 0.5)
    candidate = baseline + candidate_shift + rng.normal(0, noise, baseline.size)
    write_runs(db, task, {"cand": candidate, "base": baseline}, cluster_keys(clusters, size))
    return db


def _gate_case(db: Path, *args: str, task: str = TASK):
    base = ["gate", "--task", task, "--candidate", "cand", "--baseline", "base", "--db", str(db), "--n-boot", "2000"]
    return CliRunner().invoke(app, [*base, *map(str, args)])


def test_three_verdicts_with_exit_codes_0_1_3(tmp_path):
    cases = {
        # equal on average, precise: non-inferiority shown
        "pass": _case_db(tmp_path / "pass.duckdb", 0.0, 0.02, 100, 4),
        # worse by four margins: inferiority shown
        "regression": _case_db(tmp_path / "regression.duckdb", -0.2, 0.05, 100, 4),
        # better on average, but 8 images of 2 samples and noisy: neither can be shown
        "inconclusive": _case_db(tmp_path / "inconclusive.duckdb", 0.02, 0.3, 8, 2),
    }
    for expected, db in cases.items():
        result = _gate_case(db, "--margin", "0.05", "--json")
        assert result.exit_code == {"pass": 0, "regression": 1, "inconclusive": 3}[expected], result.output
        data = json.loads(result.output)
        (verdict,) = data["verdicts"]
        assert data["verdict"] == verdict["verdict"] == expected
        assert verdict["unit"] == "image" and verdict["n_clusters"] == {"inconclusive": 8}.get(expected, 100)
        if expected == "pass":
            assert verdict["regression_upper"] < 0.05
        if expected == "regression":
            assert verdict["regression_lower"] > 0.05 and verdict["p_inferiority_adjusted"] < 0.05
        if expected == "inconclusive":
            assert verdict["improvement"] > 0  # better on average: "not enough data", not "worse"
            assert verdict["regression_lower"] < 0.05 < verdict["regression_upper"]
            assert verdict["n_for_80"] > verdict["n"] and verdict["clusters_for_80"] > 8
            assert verdict["margin_for_80"] > 0.05

    db = cases["inconclusive"]
    assert _gate_case(db, "--margin", "0.05", "--inconclusive", "pass").exit_code == 0
    junit, markdown = tmp_path / "gate.xml", tmp_path / "gate.md"
    shown = _gate_case(db, "--margin", "0.05", "--junit", junit, "--markdown", markdown)
    assert shown.exit_code == 3 and "INCONCLUSIVE" in shown.output and "80% power needs" in shown.output
    assert "by image (8 clusters)" in shown.output
    text = markdown.read_text()
    assert "evalkit gate: ⚠️ INCONCLUSIVE" in text and "**inconclusive**" in text and "80% power needs" in text
    assert "resampled by image (8 clusters)" in text
    failure = ElementTree.parse(junit).getroot().find("testcase/failure")
    assert failure is not None and failure.get("type") == "inconclusive" and "80% power needs" in failure.get("message")
    _gate_case(db, "--margin", "0.05", "--junit", junit, "--inconclusive", "pass")
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("failures") == "0" and suite.get("skipped") == "1" and suite.find("testcase/skipped") is not None
    bad = _gate_case(db, "--margin", "0.05", "--inconclusive", "maybe")
    assert bad.exit_code == 2 and "inconclusive" in bad.output


def test_clustering_widens_the_gate_bounds_and_none_restores_iid(tmp_path):
    db = _case_db(tmp_path / "c.duckdb", 0.0, 0.0, 60, 5)  # identical per-sample noise: only clusters vary
    from helpers.clustered import cluster_keys, planted, write_runs

    rng = np.random.default_rng(5)
    base = planted(rng, 60, 5, 0.0, sd=0.01)
    shift = np.repeat(rng.normal(0, 0.05, 60), 5)  # the candidate's difference is shared within each image
    write_runs(db, "phantom-phrase-grounding", {"cand": base + shift, "base": base}, cluster_keys(60, 5))
    clustered = json.loads(_gate_case(db, "--margin", "0.02", "--json", task="phantom-phrase-grounding").output)
    iid = json.loads(
        _gate_case(db, "--margin", "0.02", "--json", "--cluster", "none", task="phantom-phrase-grounding").output
    )
    (c,), (i,) = clustered["verdicts"], iid["verdicts"]
    assert c["unit"] == "image" and i["unit"] == "sample"
    # The difference is constant within an image: deff = 5, the clustered SE about sqrt(5) times the iid one.
    assert c["se"] / i["se"] == pytest.approx(np.sqrt(5), rel=0.15)
    assert c["power"] < i["power"]


def test_task_group_gives_one_table_with_holm_within_tasks_or_bh_across_the_grid(tmp_path):
    db = tmp_path / "grid.duckdb"
    _case_db(db, 0.0, 0.02, 50, 4, task="phantom-anatomy-grounding")
    _case_db(db, -0.2, 0.05, 50, 4, task="phantom-phrase-grounding")
    holm_result = _gate_case(db, "--margin", "0.05", "--json", task="phantom")
    assert holm_result.exit_code == 1, holm_result.output
    data = json.loads(holm_result.output)
    assert data["tasks"] == ["phantom-anatomy-grounding", "phantom-phrase-grounding"]
    verdicts = {v["task"]: v for v in data["verdicts"]}
    assert verdicts["phantom-anatomy-grounding"]["verdict"] == "pass"
    assert verdicts["phantom-phrase-grounding"]["verdict"] == "regression"
    assert all(v["level"] == pytest.approx(0.95) for v in data["verdicts"])  # Holm within each one-metric task
    bh = json.loads(_gate_case(db, "--margin", "0.05", "--json", "--correction", "bh", task="phantom").output)
    assert bh["correction"] == "bh" and {v["verdict"] for v in bh["verdicts"]} == {"pass", "regression"}
    shown = _gate_case(db, "--margin", "0.05", "--correction", "bh", task="phantom")
    assert "phantom-anatomy-grounding" in shown.output and "phantom-phrase-grounding" in shown.output
    none = _gate_case(db, "--margin", "0.05", task="grounding-nothing")
    assert none.exit_code == 2


def test_benjamini_hochberg_matches_a_hand_computation():
    from evalkit.views.gate import benjamini_hochberg

    # m = 4, sorted p: 0.01, 0.02, 0.03, 0.2 -> 0.04, 0.04, 0.04, 0.2 (step-up minimum from the top)
    assert benjamini_hochberg([0.03, 0.2, 0.01, 0.02]) == pytest.approx([0.04, 0.2, 0.04, 0.04])
    assert np.isnan(benjamini_hochberg([float("nan"), 0.5])[0])


def test_example_ci_workflow_is_valid_yaml():
    workflow = yaml.safe_load(ROOT.joinpath("docs/ci-gate-example.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    commands = " ".join(s.get("run", "") for s in steps)
    assert "evalkit run" in commands and "evalkit gate" in commands and "--junit" in commands
