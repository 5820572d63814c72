"""The regression gate: known-truth synthetic scores, power, exit codes, config, Markdown and JUnit reports."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.gate import noninferiority
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric
from evalkit.stats import MetricScores, pair_scores

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

    failed = _gate(report_db, "--margin", "0", "--junit", junit, "--json")
    assert failed.exit_code == 1, failed.output
    data = json.loads(failed.output)
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


def test_example_ci_workflow_is_valid_yaml():
    workflow = yaml.safe_load(Path(__file__).parents[1].joinpath("docs/ci-gate-example.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    commands = " ".join(s.get("run", "") for s in steps)
    assert "evalkit run" in commands and "evalkit gate" in commands and "--junit" in commands
