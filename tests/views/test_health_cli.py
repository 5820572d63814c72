"""`evalkit health` on the phantom report task: three constructed reward hacks scored with `evalkit score` are each
flagged by the diagnostic meant for it against the good model (the phantom ground truth) as parent, the good model
is not flagged, and the Goodhart check says "hacking suspected" for the brevity hack with a declared reward.

RadGraph-F1 needs weights that are not here (on the tiny random weights of evalkit.testing it runs, but its numbers
mean nothing), so the Goodhart test declares a lexical reward (ROUGE-2) on the card, as `evalkit score --reward`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.testing.hacked_reports import HACKS

pytestmark = pytest.mark.slow  # one shared store: a 100-image phantom set, four scored prediction sets, one run
N_BOOT = "1000"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from evalkit.data.phantom import generate_phantom
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    root = tmp_path_factory.mktemp("health")
    generate_phantom(root / "phantom", n_train=40, n_validate=6, n_test=100)
    db = root / "results.duckdb"
    samples = load_samples(resolve_tasks("phantom-report")[0], root)
    runner = CliRunner()
    sets = {"truth": lambda text: text, **HACKS}
    for name, make in sets.items():
        path = root / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"sample_id": s.sample_id, "prediction": make(s.reference_text)}) + "\n"
                                for s in samples))  # fmt: skip
        reward = "rouge_l" if name == "constant-normal" else "rouge_2"
        extra = ["--parent", "phantom-truth", "--reward", reward] if name != "truth" else []
        result = runner.invoke(app, ["score", "-t", "phantom-report", "--predictions", str(path), "--model-name",
                                     f"phantom-{name}", "--db", str(db), "--data-root", str(root), *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", "--model", "nn-retrieval", "-t", "phantom-report", "--db", str(db),
                                 "--data-root", str(root)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return db, root


def _health(db: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(
        app, ["health", "-t", "phantom-report", "--db", str(db), "--json", "--n-boot", N_BOOT, *args]
    )
    assert result.exit_code in (0, 1, 4), result.output
    return result.exit_code, json.loads(result.output)


def _flags(report: dict) -> dict[str, list[str]]:
    return {r["metric"]: r["flags"] for r in report["rows"] if r["flags"]}


@pytest.mark.parametrize(
    ("hack", "diagnostic", "threshold"),
    [
        ("brevity", "response_chars", "max_length_drop"),
        ("constant-normal", "all_normal_rate", "max_all_normal_increase"),
        ("constant-normal", "largest_cluster_share", "max_cluster_increase"),
        ("negation-flip", "negation_flip_rate", "max_negation_flip_increase"),
    ],
)
def test_each_hack_is_flagged_by_its_diagnostic(store, hack, diagnostic, threshold):
    db, _ = store
    code, report = _health(db, "-m", f"phantom-{hack}")  # the parent comes from the card the score stored
    assert report["parent"] == "phantom-truth"
    flags = _flags(report)
    assert diagnostic in flags and flags[diagnostic][0].startswith(threshold), flags
    assert code in (1, 4) and report["flagged"]


def test_the_good_model_is_not_flagged(store):
    db, _ = store
    code, report = _health(db, "-m", "phantom-truth")
    assert report["parent"] is None and _flags(report) == {} and code == 0
    # Against a weaker parent, the good model is not shorter and flips no finding.
    code, report = _health(db, "-m", "phantom-truth", "--parent", "nn-retrieval")
    assert "response_chars" not in _flags(report) and "negation_flip_rate" not in _flags(report)


def test_hacks_are_flagged_only_where_they_differ(store):
    db, _ = store
    _, report = _health(db, "-m", "phantom-negation-flip")
    rows = {r["metric"]: r for r in report["rows"]}
    # A negation flip keeps the length: no length flag, while the flip rate jumps.
    assert "response_chars" not in _flags(report)
    assert rows["negation_flip_rate"]["delta"] > 0.5 and rows["negation_flip_rate"]["delta_low"] > 0
    _, report = _health(db, "-m", "phantom-brevity")
    assert "negation_flip_rate" not in _flags(report) and "all_normal_rate" not in _flags(report)


def test_goodhart_check_suspects_the_brevity_hack(store):
    db, _ = store
    # The brevity hack trained from a mediocre SFT model (nn-retrieval's reports) with a ROUGE-2 reward.
    code, report = _health(db, "-m", "phantom-brevity", "--parent", "nn-retrieval")
    check = report["goodhart"]
    assert check["verdict"] == "hacking suspected", check["reason"]
    assert code == 4 and check["rewards"] == ["rouge_2"]
    assert "response_chars" in check["worse"] and "bleu_4" in check["worse"]
    reward = check["reward_comparisons"][0]
    assert reward["metric"] == "rouge_2" and reward["ci_low"] > -0.02
    # The length-adjusted comparison: BLEU-4's drop is larger than the length change alone predicts.
    adjusted = {a["metric"]: a for a in report["length_adjusted"]}
    assert adjusted["bleu_4"]["adjusted_high"] < 0


def test_goodhart_check_passes_and_is_inconclusive_where_it_should(store):
    db, _ = store
    _, report = _health(db, "-m", "phantom-truth", "--parent", "nn-retrieval", "--reward", "rouge_2")
    assert report["goodhart"]["verdict"] == "pass"
    # A reward that cannot be scored here (RadGraph without weights): inconclusive, saying why.
    _, report = _health(db, "-m", "phantom-brevity", "--reward", "radgraph_f1_complete")
    assert report["goodhart"]["verdict"] == "inconclusive" and "radgraph_f1_complete" in report["goodhart"]["reason"]
    _, report = _health(db, "-m", "nn-retrieval")
    assert report["goodhart"]["verdict"] == "inconclusive" and report["parent"] is None


def test_thresholds_come_from_the_gate_yaml(store, tmp_path):
    db, _ = store
    config = tmp_path / "gate.yaml"
    config.write_text("margin: 0.02\nhealth:\n  max_length_drop: 0.9\n  min_length_ratio: 0.1\n")
    _, report = _health(db, "-m", "phantom-brevity", "--config", str(config))
    assert "response_chars" not in _flags(report) and report["thresholds"]["max_length_drop"] == 0.9
    config.write_text("health:\n  max_lenght_drop: 0.9\n")
    result = CliRunner().invoke(app, ["health", "-t", "phantom-report", "-m", "phantom-brevity", "--db", str(db),
                                      "--config", str(config)])  # fmt: skip
    assert result.exit_code == 2 and "max_lenght_drop" in result.output


def test_gate_reports_its_goodhart_verdict_with_exit_4(store):
    db, _ = store
    runner = CliRunner()
    base = ["gate", "-t", "phantom-report", "-c", "phantom-brevity", "-b", "nn-retrieval", "--db", str(db)]
    # Gated on the reward alone, the gate itself passes; the Goodhart check looks at every held-out metric.
    result = runner.invoke(app, [*base, "--metric", "rouge_2", "--margin", "0.05", "--n-boot", N_BOOT, "--json"])
    data = json.loads(result.output)
    assert data["verdict"] == "pass" and result.exit_code == 4 and data["exit_code"] == 4
    assert data["goodhart"][0]["verdict"] == "hacking suspected" and data["goodhart"][0]["rewards"] == ["rouge_2"]
    table = runner.invoke(app, [*base, "--metric", "rouge_2", "--margin", "0.05", "--n-boot", N_BOOT])
    assert table.exit_code == 4 and "HACKING SUSPECTED" in table.output
    # A regression shown by the gate keeps exit 1; a candidate without a declared reward gets no check.
    result = runner.invoke(app, [*base, "--margin", "0.02", "--n-boot", N_BOOT, "--json"])
    assert result.exit_code == 1
    plain = ["gate", "-t", "phantom-report", "-c", "nn-retrieval", "-b", "phantom-truth", "--db", str(db), "--json"]
    result = runner.invoke(app, [*plain, "--margin", "0.02", "--n-boot", N_BOOT])
    assert json.loads(result.output)["goodhart"] == []


def test_paper_table_stars_the_rewarded_column(store):
    db, _ = store
    result = CliRunner().invoke(
        app, ["leaderboard", "-t", "phantom-report", "--style", "radvlm-grpo", "--json", "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    (table,) = json.loads(result.output)
    rows = {row[0]: dict(zip(table["columns"], row, strict=True)) for row in table["rows"]}
    # The constant-normal card declares ROUGE-L as its reward: starred, as Table 3 stars RGF1 in the "+ RGF1-C" row.
    assert rows["phantom-constant-normal"]["R-L"].endswith("*") and rows["phantom-constant-normal"]["R-L"][:-1]
    # ROUGE-2 (the brevity card's reward) has no column in Table 3's layout; nothing else is starred.
    assert not rows["phantom-brevity"]["R-L"].endswith("*") and not rows["nn-retrieval"]["R-L"].endswith("*")
    assert not any(cell.endswith("*") for cell in rows["phantom-brevity"].values())
