"""The last places where the `radvlm-grpo` profile differed from RadVLM-GRPO's own code (issue 20 items 1, 2, 4, 7).

The fixture (tests/fixtures/radvlm_divergence_reference.json) holds the seed's `_extract_answer` + 4,000-character
cut, `extract_bounding_boxes`, `evaluate_boxes(avg_iou=True)`, the GRPO reward's `compute_score` and RadVLM's
`apply_wbf`, run by tests/fixtures/make_radvlm_divergence_reference.py. Where the seed's value is NaN (a box with
an inf coordinate in `avg_iou`), evalkit's defined value is tested instead: that box has IoU 0 with every reference.
"""

from __future__ import annotations

import json
import math

import pytest
from helpers import FIXTURES

from evalkit.answers import parse_answer
from evalkit.config import ModelCard
from evalkit.data.issues import normalise
from evalkit.data.vindr_cxr import fuse_boxes
from evalkit.metrics import get_metric
from evalkit.metrics.grounding import iou_matrix
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample
from evalkit.training.rewards import build_reward

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_divergence_reference.json").read_text())
PROFILE = get_profile("radvlm-grpo")


def _number(value):
    return float(value) if isinstance(value, str) else value


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


def _corpus(name: str, parsed: Parsed, sample: Sample) -> float:
    metric = get_metric(name)
    scores = metric.score([parsed], [sample])
    return metric.aggregate([s.value for s in scores], [s.stats for s in scores])


@pytest.mark.parametrize("case", FIXTURE["grounding"], ids=lambda c: c["id"])
def test_answer_boxes_and_map50_follow_the_seed(case: dict) -> None:
    parsed = _parse(case)
    assert parsed.answer == case["eval_answer"]
    assert parsed.boxes == [[_number(v) for v in box] for box in case["eval_boxes"]]
    assert _corpus("radvlm_map50", parsed, _sample(case)) == pytest.approx(case["map50"], abs=1e-12)


@pytest.mark.parametrize("case", FIXTURE["grounding"], ids=lambda c: c["id"])
def test_avg_iou_is_the_seed_where_finite_and_defined_where_the_seed_gives_nan(case: dict) -> None:
    parsed, sample = _parse(case), _sample(case)
    value = _corpus("avg_iou", parsed, sample)
    seed = _number(case["avg_iou"])
    if seed is None:
        assert math.isnan(value)  # no pair: the seed leaves the key out
    elif math.isnan(seed):
        # evalkit: a box with an inf coordinate has IoU 0 with every reference, the other pairs count as usual
        finite = [b for b in parsed.boxes if all(math.isfinite(v) for v in b)]
        pairs = len(parsed.boxes) * len(sample.reference_boxes)
        assert value == pytest.approx(float(iou_matrix(finite, sample.reference_boxes).sum()) / pairs, abs=1e-12)
    else:
        assert value == pytest.approx(seed, abs=1e-12)


def test_a_nan_avg_iou_case_is_in_the_fixture_and_counted() -> None:
    case = next(c for c in FIXTURE["grounding"] if c["id"] == "huge_then_box")
    assert case["avg_iou"] == "nan"
    scores = get_metric("avg_iou").score([_parse(case)], [_sample(case)])
    assert scores[0].stats["nonfinite_boxes"] == 1
    assert _corpus("avg_iou", _parse(case), _sample(case)) == pytest.approx(0.25)  # (0 + 0 + 1 + 0) / 4


@pytest.mark.parametrize("case", FIXTURE["grounding"] + FIXTURE["reward"], ids=lambda c: c["id"])
def test_grounding_reward_equals_the_seed_reward(case: dict) -> None:
    thinking = case.get("thinking", True)
    card = ModelCard(name="m", adapter="transformers", checkpoint="x", thinking="tags" if thinking else "none")
    reward = build_reward("soft_f1_iou", card)
    refs = case.get("reference_boxes", [[0.10, 0.20, 0.40, 0.60], [0.55, 0.50, 0.90, 0.85]])
    columns = {"parser": ["boxes"], "reference_boxes": [refs], "reference_text": [""], "image_size": [[256, 256]]}
    assert reward([[]], [case["text"]], **columns)[0] == pytest.approx(case["reward"], abs=1e-12)


def test_vindr_fusion_rounds_as_apply_wbf() -> None:
    differ_from_python_round = 0
    for item in FIXTURE["vindr_wbf"]:
        width, height = item["size"]
        boxes = [normalise(tuple(b), width, height) for b in item["boxes"]]
        fused = fuse_boxes(boxes, iou_thr=0.1, digits=3)
        assert fused == item["fused"], item
        full = fuse_boxes(boxes, iou_thr=0.1, digits=None)
        differ_from_python_round += [[round(v, 3) for v in b] for b in full] != item["fused"]
    assert differ_from_python_round > 0  # the fixture holds the ties that the old rounding broke
