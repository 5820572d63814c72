"""RadCliQ-v1 and RadGraph F1 on texts that radgraph's preprocessing empties (whitespace only, longer than the
worker's 5 characters; only escape sequences radgraph-xl blanks): issue 20 item 3.

Fixture: tests/fixtures/radvlm_whitespace_reference.json (make_radvlm_whitespace_reference.py: the seed's
`radcliq_score` -> `worker_radcliq.score` and `calcF1RadGraph` on the tiny random models). The seed's worker
answers -3 (RadCliQ 3.0) where radgraph raises; the seed's RGF1 raises (AssertionError) for the whole corpus,
where evalkit's F1 is 0 and the pair is counted (`no_words`).
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES
from helpers.clinical import all_options, radgraph_folder

from evalkit.metrics import get_metric
from evalkit.metrics.radcliq import worker_text
from evalkit.metrics.radgraph import preprocess
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_whitespace_reference.json").read_text())
PAIRS = FIXTURE["pairs"]


def _inputs():
    samples = [Sample(f"s{i}", "t", [], reference_text=p["reference"]) for i, p in enumerate(PAIRS)]
    return [Parsed(answer=p["prediction"]) for p in PAIRS], samples


def _empty(text: str) -> bool:
    return not preprocess(worker_text(text), "radgraph-xl")


def test_the_fixture_holds_the_cases_the_worker_rule_alone_missed():
    long_blank = [p for p in PAIRS if min(len(p["reference"]), len(p["prediction"])) > 5]
    assert any(_empty(p["prediction"]) for p in long_blank) and any(_empty(p["reference"]) for p in long_blank)
    for pair, value, rgf1 in zip(PAIRS, FIXTURE["radcliq"], FIXTURE["rgf1_per_pair"], strict=True):
        blank = _empty(pair["reference"]) or _empty(pair["prediction"])
        assert (value == 3.0) == blank and ("error" in rgf1) == blank
    assert FIXTURE["rgf1_corpus"] == {"error": "AssertionError"}


def test_radcliq_worker_gives_3_where_radgraph_would_raise_without_loading_a_model():
    """The worker rule decides these pairs before any feature (so no weights are needed here)."""
    radcliq = get_metric("radcliq_v1", **get_profile("radvlm-grpo").options_for("radcliq_v1"))
    predictions, samples = _inputs()
    blank = [i for i, v in enumerate(FIXTURE["radcliq"]) if v == 3.0]
    scores = radcliq.score([predictions[i] for i in blank], [samples[i] for i in blank])
    assert [s.value for s in scores] == [FIXTURE["radcliq"][i] for i in blank]
    assert all(s.stats["worker_rule"] == "no word left for RadGraph" for s in scores)


@pytest.mark.slow  # loads three tiny models (~15 s on a shared CPU)
def test_score_pairs_under_the_profile_equals_the_seed_on_tiny_weights():
    """`score_reports(profile="radvlm-grpo")` (what `score --pairs --profile radvlm-grpo` runs) with only the weight
    paths written: RadCliQ-v1 equals the seed's worker on these pairs and on three of the RadCliQ fixture's; RGF1
    equals calcF1RadGraph where the seed gives a number, and is 0 and counted where it raises."""
    from evalkit.run.pairs import score_reports

    radgraph = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
    radcliq = {**all_options()["radcliq_v1"], "radgraph": radgraph}
    assert "convention" not in radcliq  # the profile supplies it
    others = json.loads(FIXTURES.joinpath("radvlm_radcliq_reference.json").read_text())
    pairs = PAIRS + others["pairs"][:3]
    result = score_reports(
        [p["reference"] for p in pairs],
        [p["prediction"] for p in pairs],
        ["radcliq_v1", "radgraph_f1_complete"],
        options={"radcliq_v1": radcliq, "radgraph_f1_complete": radgraph},
        profile="radvlm-grpo",
    )
    got = [row["radcliq_v1"] for row in result.per_sample]
    assert got == pytest.approx(FIXTURE["radcliq"] + others["radcliq"][:3], abs=1e-5)
    rgf1 = result.per_sample[: len(PAIRS)]
    for row, stats, seed in zip(rgf1, result.stats["radgraph_f1_complete"], FIXTURE["rgf1_per_pair"], strict=False):
        if "error" in seed:  # the seed raises: evalkit's F1 is 0, counted
            assert row["radgraph_f1_complete"] == 0.0 and stats["no_words"]
        else:
            assert row["radgraph_f1_complete"] == pytest.approx(seed["value"][2], abs=1e-12)
            assert "no_words" not in stats
