"""GRPO rewards are evalkit's metrics: same parser, same metric code, same numbers."""

from __future__ import annotations

from typing import Any

import pytest

from evalkit.answers import parse_output
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric, MetricOptions, SampleScore
from evalkit.metrics.grounding import soft_f1_iou
from evalkit.sample import Sample
from evalkit.training import rewards as rewards_module
from evalkit.training.rewards import PRESETS, MetricReward, build_reward, completion_text

REFERENCE_BOXES = [[0.10, 0.20, 0.40, 0.60], [0.55, 0.50, 0.90, 0.85]]
BOX_COMPLETIONS = [
    "[0.10, 0.20, 0.40, 0.60], [0.55, 0.50, 0.90, 0.85]",  # perfect
    "[0.12, 0.22, 0.38, 0.58]",  # one good box, one missed
    "[0.0, 0.0, 1.0, 1.0], [0.5, 0.5, 0.9, 0.9], [0.1, 0.1, 0.2, 0.2]",  # too many
    "no box here",
    "[0.5, 0.5, 0.4, 0.9]",  # x2 < x1: a parse failure, as in evaluation
    "[0.1, 0.2, 0.3]",
]
REPORTS = ["Small left pleural effusion.", "The lungs are clear. Heart size is normal.", "", "effusion effusion"]
REFERENCE_REPORT = "There is a small left pleural effusion. Heart size is normal."


def _card(**changes: Any) -> ModelCard:
    data: dict[str, Any] = {"name": "m", "adapter": "transformers", "checkpoint": "x", "box_format": "unit01"}
    data.update(changes)
    return ModelCard.model_validate(data)


def _grounding_columns(n: int) -> dict[str, list[Any]]:
    return {
        "parser": ["boxes"] * n,
        "reference_boxes": [REFERENCE_BOXES] * n,
        "reference_text": [""] * n,
        "image_size": [[256, 256]] * n,
        "sample_id": [f"s{i}" for i in range(n)],
        "task": ["phantom-abnormality-grounding"] * n,
    }


def _report_columns(n: int) -> dict[str, list[Any]]:
    return {
        "parser": ["report"] * n,
        "reference_boxes": [[]] * n,
        "reference_text": [REFERENCE_REPORT] * n,
        "image_size": [None] * n,
        "sample_id": [f"r{i}" for i in range(n)],
        "task": ["phantom-report"] * n,
    }


def _metric_values(name: str, texts: list[str], parser: str, card: ModelCard, columns: dict) -> list[float]:
    metric = get_metric(name)
    out = []
    for i, text in enumerate(texts):
        parsed = parse_output(text, parser, card.box_format, card.thinking, (256, 256))
        sample = Sample(
            sample_id="x",
            task="t",
            image_paths=[],
            reference_text=columns["reference_text"][i] or None,
            reference_boxes=columns["reference_boxes"][i],
        )
        out.append(metric.score([parsed], [sample])[0].value)
    return out


def test_soft_f1_reward_is_the_metric_and_the_function() -> None:
    card = _card()
    reward = build_reward("soft_f1_iou", card)
    columns = _grounding_columns(len(BOX_COMPLETIONS))
    values = reward([[]] * len(BOX_COMPLETIONS), BOX_COMPLETIONS, **columns)
    assert values == pytest.approx(_metric_values("soft_f1_iou", BOX_COMPLETIONS, "boxes", card, columns))
    assert values[0] == pytest.approx(1.0)
    assert 0 < values[1] < 1 and 0 < values[2] < 1
    assert values[3:] == [0.0, 0.0, 0.0]  # no boxes, malformed box, wrong arity
    expected = soft_f1_iou(parse_output(BOX_COMPLETIONS[1], "boxes", "unit01").boxes, REFERENCE_BOXES)[0]
    assert values[1] == pytest.approx(expected)


def test_box_formats_follow_the_card() -> None:
    columns = _grounding_columns(1)
    qwen = build_reward("soft_f1_iou", _card(box_format="qwen1000"))
    assert qwen([[]], ['[{"bbox_2d": [100, 200, 400, 600]}]'], **columns)[0] == pytest.approx(2 / 3)
    pixels = build_reward("soft_f1_iou", _card(box_format="pixels"))
    answer = "[26, 51, 102, 154]"  # 256-pixel image
    expected = soft_f1_iou(parse_output(answer, "boxes", "pixels", image_size=(256, 256)).boxes, REFERENCE_BOXES)[0]
    assert pixels([[]], [answer], **columns)[0] == pytest.approx(expected)


def test_thinking_mode_needs_the_closing_tag() -> None:
    card = _card(thinking="tags")
    reward = build_reward("soft_f1_iou", card)
    box = "[0.10, 0.20, 0.40, 0.60], [0.55, 0.50, 0.90, 0.85]"
    texts = [f"<think>two opacities</think>{box}", box, f"<think>two opacities {box}"]
    assert reward([[]] * 3, texts, **_grounding_columns(3)) == pytest.approx([1.0, 0.0, 0.0])
    suffix = build_reward("soft_f1_iou", _card(thinking="suffix"))
    assert suffix([[]] * 2, [f"reasoning</think>{box}", box], **_grounding_columns(2)) == pytest.approx([1.0, 0.0])


@pytest.mark.parametrize("metric", ["rouge_l", "bleu_4", "gleu"])
def test_report_rewards_are_the_metrics(metric: str) -> None:
    card = _card()
    reward = build_reward(metric, card)
    columns = _report_columns(len(REPORTS))
    values = reward([[]] * len(REPORTS), REPORTS, **columns)
    expected = _metric_values(metric, REPORTS, "report", card, columns)
    for i, (value, want) in enumerate(zip(values, expected, strict=True)):
        if REPORTS[i]:
            assert value == pytest.approx(want, abs=1e-12)
        else:
            assert value == 0.0  # empty report: the failure value


def test_negated_reward_with_failure_value_as_for_radcliq() -> None:
    # RadCliQ-v1 is lower-is-better and stays raw in the metric; the reward is its negation, -3 when it fails.
    reward = build_reward({"name": "neg_rouge", "metric": "rouge_l", "negate": True, "failure_value": -3}, _card())
    values = reward([[]] * len(REPORTS), REPORTS, **_report_columns(len(REPORTS)))
    expected = _metric_values("rouge_l", REPORTS, "report", _card(), _report_columns(len(REPORTS)))
    assert values[0] == pytest.approx(-expected[0])
    assert values[2] == -3.0
    preset = PRESETS["neg_radcliq"]
    assert preset.metric == "radcliq_v1" and preset.negate and preset.failure_value == -3.0


def test_mixed_batches_score_only_their_kind_and_log_failures() -> None:
    texts = ["[0.10, 0.20, 0.40, 0.60]", "Small pleural effusion.", "garbage", ""]
    columns = {k: _grounding_columns(2)[k] + _report_columns(2)[k] for k in _grounding_columns(2)}
    columns["parser"] = ["boxes", "report", "boxes", "report"]
    columns["reference_boxes"] = [REFERENCE_BOXES, [], REFERENCE_BOXES, []]
    columns["reference_text"] = ["", REFERENCE_REPORT, "", REFERENCE_REPORT]
    logged: list[tuple[str, float]] = []
    grounding = build_reward("soft_f1_iou", _card())
    report = build_reward("rouge_l", _card())
    g = grounding([[]] * 4, texts, log_metric=lambda k, v: logged.append((k, v)), **columns)
    r = report([[]] * 4, texts, log_metric=lambda k, v: logged.append((k, v)), **columns)
    assert g[1] is None and g[3] is None and g[0] > 0 and g[2] == 0.0
    assert r[0] is None and r[2] is None and r[1] > 0 and r[3] == 0.0
    assert ("soft_f1_iou/failure_rate", 0.5) in logged and ("rouge_l/failure_rate", 0.5) in logged


def test_conversational_completions() -> None:
    message = [{"role": "assistant", "content": "[0.10, 0.20, 0.40, 0.60], [0.55, 0.50, 0.90, 0.85]"}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "[0.10, 0.20, 0.40, 0.60]"}]}]
    assert completion_text(message) == message[0]["content"]
    assert completion_text(parts) == "[0.10, 0.20, 0.40, 0.60]"
    reward = build_reward("soft_f1_iou", _card())
    values = reward([[]] * 2, [message, parts], **_grounding_columns(2))
    assert values[0] == pytest.approx(1.0) and 0 < values[1] < 1


class _Flaky(Metric):
    name = "flaky"
    kind = "report"

    class Options(MetricOptions):
        why: str | None = None  # the reason `available()` gives; metric options are typed

    def available(self) -> str | None:
        return self.options.get("why")

    def score(self, predictions, samples):
        if any("boom" in p.answer for p in predictions):
            raise RuntimeError("boom")
        return [SampleScore(float(len(p.answer))) for p in predictions]


def test_metric_errors_and_unavailable_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rewards_module, "get_metric", lambda name, **options: _Flaky(**options))
    reward = MetricReward("flaky", _card(), failure_value=-1.0)
    values = reward([[]] * 3, ["abc", "boom", "abcdef"], **_report_columns(3))
    assert values == [3.0, -1.0, 6.0]  # one failing sample does not sink the batch
    with pytest.raises(EvalkitError, match="unavailable here: no weights"):
        MetricReward("flaky", _card(), options={"why": "no weights"})


def test_build_reward_errors() -> None:
    with pytest.raises(EvalkitError, match="not a preset"):
        build_reward("made_up", _card())
    with pytest.raises(EvalkitError, match="unknown metric"):
        build_reward({"name": "x", "metric": "no_such_metric"}, _card())
    custom = build_reward({"name": "rl", "metric": "rouge_l", "options": {"use_stemmer": False}, "weight": 2}, _card())
    assert custom.__name__ == "rl" and custom.weight == 2.0 and custom.metric.options == {"use_stemmer": False}


@pytest.mark.parametrize("preset", ["neg_radcliq", "radgraph_f1_complete", "bertscore"])
def test_clinical_rewards_are_the_metrics_on_tiny_models(preset: str) -> None:
    from helpers.clinical import all_options

    from evalkit.profiles import get_profile

    metric_name = PRESETS[preset].metric
    options = all_options()[metric_name]
    # Rewards parse and score under the radvlm-grpo profile by default (RadCliQ: the seed worker's convention).
    metric = get_metric(metric_name, **get_profile("radvlm-grpo").options_for(metric_name, options))
    if metric.available():
        pytest.skip(f"{metric_name}: {metric.available()}")
    reward = build_reward({"name": preset, "options": options}, _card())
    columns = _report_columns(len(REPORTS))
    values = reward([[]] * len(REPORTS), REPORTS, **columns)
    for i, text in enumerate(REPORTS):
        if not text:
            assert values[i] == PRESETS[preset].failure_value  # -3 for RadCliQ, 0 otherwise
            continue
        sample = Sample(sample_id="x", task="t", image_paths=[], reference_text=REFERENCE_REPORT)
        expected = metric.score([parse_output(text, "report")], [sample])[0].value
        assert values[i] == pytest.approx(-expected if PRESETS[preset].negate else expected, abs=1e-6)
