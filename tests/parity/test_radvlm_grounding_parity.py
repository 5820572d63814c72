"""Grounding under the `radvlm-grpo` profile equals RadVLM-GRPO's own code on adversarial answers.

The fixture (tests/fixtures/radvlm_grounding_reference.json) holds the outputs of the seed's `_extract_answer` +
4,000-character cut, `extract_bounding_boxes`, `evaluate_boxes(avg_iou=True)` and the GRPO reward's
`compute_score`, run by tests/fixtures/make_radvlm_grounding_reference.py. IoUs are float64 with the same
operation order as the seed, so values agree to 1e-12; the corpus sums differ from the seed's only by summation
order (a few ulp), hence 1e-12 there too.
"""

from __future__ import annotations

import json

import pytest
from helpers import FIXTURES

from evalkit.answers import extract_boxes, parse_answer
from evalkit.config import ModelCard
from evalkit.metrics import get_metric
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample
from evalkit.training.rewards import build_reward

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_grounding_reference.json").read_text())
CASES = {c["id"]: c for c in FIXTURE["cases"]}
SCORABLE = [c for c in FIXTURE["cases"] if c["eval_error"] is None]
PROFILE = get_profile("radvlm-grpo")


def _parse(case: dict) -> Parsed:
    return parse_answer(
        case["text"],
        "boxes",
        thinking="tags" if case["thinking"] else "none",
        answer_rule=PROFILE.answer_rule,
        box_convention=PROFILE.box_convention,
    )


def _sample(case: dict) -> Sample:
    return Sample(sample_id=case["id"], task="t", image_paths=[], reference_boxes=case["reference_boxes"])


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["id"])
def test_answer_and_boxes_follow_the_seed_evaluation(case: dict) -> None:
    parsed = _parse(case)
    assert parsed.answer == case["eval_answer"]
    if case["eval_boxes_error"] is None:
        assert parsed.boxes == case["eval_boxes"]


@pytest.mark.parametrize("case", SCORABLE, ids=lambda c: c["id"])
def test_radvlm_map50_and_avg_iou_equal_evaluate_boxes(case: dict) -> None:
    parsed, sample = _parse(case), _sample(case)
    assert get_metric("radvlm_map50").score([parsed], [sample])[0].value == pytest.approx(case["map50"], abs=1e-12)
    avg = get_metric("avg_iou")
    scores = avg.score([parsed], [sample])
    value = avg.aggregate([s.value for s in scores], [s.stats for s in scores])
    if case["avg_iou"] is None:  # the seed leaves the key out when no pair exists
        assert value != value
    else:
        assert value == pytest.approx(case["avg_iou"], abs=1e-12)


def test_corpus_values_equal_evaluate_boxes() -> None:
    parsed = [_parse(c) for c in SCORABLE]
    samples = [_sample(c) for c in SCORABLE]
    assert [c["id"] for c in SCORABLE] == FIXTURE["corpus"]["ids"]
    for name, key in (("radvlm_map50", "map50"), ("avg_iou", "avg_iou")):
        metric = get_metric(name)
        scores = metric.score(parsed, samples)
        value = metric.aggregate([s.value for s in scores], [s.stats for s in scores])
        assert value == pytest.approx(FIXTURE["corpus"][key], abs=1e-12)
        matrix = metric.sufficient_matrix([s.value for s in scores], [s.stats for s in scores])
        if matrix is not None:  # the bootstrap's path gives the same number
            assert float(metric.from_sums(matrix.sum(axis=0))) == pytest.approx(value, abs=1e-12)


def test_where_the_seed_crashes_evalkit_gives_the_documented_result() -> None:
    # "0.4.1": the seed's float() raises ValueError for the whole run; evalkit skips that bracket only.
    case = CASES["three_dots_number"]
    assert case["eval_error"] == "ValueError"
    assert _parse(case).boxes == [[0.10, 0.20, 0.40, 0.60]]
    assert _parse(CASES["dots_only_number"]).boxes == []
    # A zero union: the seed raises ZeroDivisionError; evalkit's IoU is 0 there.
    case = CASES["zero_union"]
    assert case["eval_error"] == "ZeroDivisionError"
    parsed, sample = _parse(case), _sample(case)
    assert get_metric("radvlm_map50").score([parsed], [sample])[0].value == 0.0
    assert get_metric("avg_iou").score([parsed], [sample])[0].value == 0.0


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=lambda c: c["id"])
def test_soft_f1_reward_equals_the_seed_reward(case: dict) -> None:
    card = ModelCard(name="m", adapter="transformers", checkpoint="x", thinking="tags" if case["thinking"] else "none")
    reward = build_reward("soft_f1_iou", card)
    columns = {
        "parser": ["boxes"],
        "reference_boxes": [case["reference_boxes"]],
        "reference_text": [""],
        "image_size": [[256, 256]],
    }
    value = reward([[]], [case["text"]], **columns)[0]
    # The same float64 IoU matrix and scipy assignment as the seed: identical to the last bit in practice.
    assert value == pytest.approx(case["reward"], abs=1e-12)
    assert extract_boxes(case["text"], "radvlm_reward")[0] == case["reward_boxes"]
