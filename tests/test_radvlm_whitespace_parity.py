"""RadCliQ-v1 and RadGraph F1 on texts that radgraph's preprocessing empties (whitespace only, longer than the
worker's 5 characters; only escape sequences radgraph-xl blanks): issue 20 item 3.

Fixture: tests/fixtures/radvlm_whitespace_reference.json (make_radvlm_whitespace_reference.py: the seed's
`radcliq_score` -> `worker_radcliq.score` and `calcF1RadGraph` on the tiny random models). The seed's worker
answers -3 (RadCliQ 3.0) where radgraph raises; the seed's RGF1 raises (AssertionError) for the whole corpus,
where evalkit's F1 is 0 and the pair is counted (`no_words`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clinical_models import all_options, radgraph_folder

from evalkit.metrics import get_metric
from evalkit.metrics.radcliq import worker_text
from evalkit.metrics.radgraph import preprocess
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

FIXTURE = json.loads(Path(__file__).with_name("fixtures").joinpath("radvlm_whitespace_reference.json").read_text())
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


@pytest.mark.slow  # loads three tiny models (~10 s on a shared CPU)
def test_radcliq_and_rgf1_follow_the_seed_or_its_documented_value():
    options = dict(all_options()["radcliq_v1"])
    options["radgraph"] = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
    radcliq = get_metric("radcliq_v1", **get_profile("radvlm-grpo").options_for("radcliq_v1", options))
    predictions, samples = _inputs()
    assert [s.value for s in radcliq.score(predictions, samples)] == pytest.approx(FIXTURE["radcliq"], abs=1e-5)
    rgf1 = get_metric(
        "radgraph_f1_complete",
        **get_profile("radvlm-grpo").options_for(
            "radgraph_f1_complete", {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
        ),
    )
    for score, seed in zip(rgf1.score(predictions, samples), FIXTURE["rgf1_per_pair"], strict=True):
        if "error" in seed:  # the seed raises: evalkit's F1 is 0, counted
            assert score.value == 0.0 and score.stats["no_words"]
        else:
            assert score.value == pytest.approx(seed["value"][2], abs=1e-12) and "no_words" not in score.stats
