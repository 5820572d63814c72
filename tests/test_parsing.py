import math

import pytest

from evalkit.answers import format_boxes, parse_boxes, parse_output, smart_resize, split_thinking


def test_split_thinking_tags():
    answer, thinking, complete = split_thinking("<think>look at the base</think> Effusion [0.1, 0.2, 0.3, 0.4]")
    assert (answer, thinking, complete) == ("Effusion [0.1, 0.2, 0.3, 0.4]", "look at the base", True)


def test_unclosed_thinking_is_a_parse_failure():
    parsed = parse_output("<think>still thinking [0.1, 0.1, 0.2, 0.2]", "boxes", "unit01", thinking="tags")
    assert parsed.boxes == [] and "thinking not closed" in parsed.parse_error


def test_suffix_mode_answer_after_close_tag():
    answer, thinking, complete = split_thinking("reasoning here</think>No effusion.", "suffix")
    assert complete and answer == "No effusion." and thinking == "reasoning here"


def test_unit01_several_boxes():
    boxes, error = parse_boxes("left [0.12, 0.30, 0.55, 0.80] and (0.6 0.1 0.9 0.4)", "unit01")
    assert error is None
    assert boxes == [[0.12, 0.30, 0.55, 0.80], [0.6, 0.1, 0.9, 0.4]]


def test_qwen1000_json():
    text = '```json\n[{"bbox_2d": [100, 250, 500, 750], "label": "nodule"}]\n```'
    boxes, error = parse_boxes(text, "qwen1000")
    assert error is None and boxes == [[0.1, 0.25, 0.5, 0.75]]


def test_pixels_need_and_use_image_size():
    assert parse_boxes("[10, 20, 110, 220]", "pixels")[1] is not None
    boxes, error = parse_boxes("[10, 20, 110, 220]", "pixels", image_size=(200, 400))
    assert error is None and boxes == [[0.05, 0.05, 0.55, 0.55]]


def test_pixels_resized_uses_resized_size():
    w, h = smart_resize(1000, 800, factor=28, min_pixels=3136, max_pixels=200704)
    assert w % 28 == 0 and h % 28 == 0 and w * h <= 200704
    boxes, error = parse_boxes(f"[0, 0, {w}, {h}]", "pixels_resized", image_size=(1000, 800), resized_size=(w, h))
    assert error is None and boxes == [[0.0, 0.0, 1.0, 1.0]]


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("no box here", "no box"),
        ("[0.1, 0.2, 0.3]", "four numbers"),
        ("[-0.1, 0.2, 0.3, 0.4]", "outside"),
        ("[0.5, 0.2, 0.3, 0.4]", "x2 <= x1"),
        ("[0.1, 0.2, 1.3, 0.4]", "outside"),
    ],
)
def test_malformed_unit01_answers_are_parse_failures(text, fragment):
    boxes, error = parse_boxes(text, "unit01")
    assert boxes == [] and fragment in error


def test_qwen1000_above_1000_is_failure():
    assert parse_boxes('{"bbox_2d": [10, 10, 1200, 500]}', "qwen1000")[1] is not None


def test_report_parser_keeps_text_and_flags_empty():
    assert parse_output("  No acute findings. ", "report").answer == "No acute findings."
    assert parse_output("   ", "report").parse_error == "empty answer"


@pytest.mark.parametrize("fmt", ["unit01", "qwen1000", "pixels"])
def test_format_then_parse_round_trips(fmt):
    box = [0.1, 0.2, 0.5, 0.9]
    parsed, error = parse_boxes(format_boxes([box], fmt, (1000, 1000)), fmt, image_size=(1000, 1000))
    assert error is None
    assert all(math.isclose(a, b, abs_tol=0.005) for a, b in zip(parsed[0], box, strict=True))


def test_answer_pattern_takes_the_last_match():
    text = "<think>a, b</think>Reasoning done. \\boxed{No acute findings.} and finally \\boxed{Small left effusion.}"
    parsed = parse_output(text, "report", thinking="tags", answer_pattern=r"\\boxed\{(.*?)\}")
    assert parsed.answer == "Small left effusion."
    unmatched = parse_output("Plain answer.", "report", answer_pattern=r"\\boxed\{(.*?)\}")
    assert unmatched.answer == "Plain answer."
