"""No answer text can stop a run: parser fuzzing per box convention, and answers whose numbers overflow a float
(the seed reads a 309+-digit number as inf) scored through the store and scored again."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

import pytest
from helpers.fuzz import megabyte_answers, random_answers

from evalkit.answers import last_boxed, parse_answer
from evalkit.config import ModelCard
from evalkit.metrics.grounding import iou_matrix, nonfinite_boxes
from evalkit.model_adapters.predictions import PredictionsAdapter
from evalkit.registry import resolve_tasks
from evalkit.run.evaluate import evaluate
from evalkit.run.runner import load_samples
from evalkit.sample import Parsed
from evalkit.store import Store, dumps, loads

# (box convention, answer rule, box format): each convention with the answer rule its profile pairs it with.
CONVENTIONS = [
    ("strict", "evalkit", "unit01"),
    ("radvlm_eval", "radvlm_eval", "unit01"),
    ("radvlm_reward", "radvlm_reward", "unit01"),
    ("qwen3vl_json", "evalkit", "qwen1000"),
]
SEED_BOXED = re.compile(r"\\boxed\s*\{([\s\S]*?)\}")  # the seed's extract_boxed (models_loading_inference.py)
HUGE = "9" * 400


@lru_cache(maxsize=2)
def _answers(n: int) -> tuple[str, ...]:
    return tuple(random_answers(n, seed=n))


def _check_all(answers, convention: str, rule: str, box_format: str) -> tuple[int, int]:
    """Parse every answer (thinking on for every other one) and store/reload it; return (boxed, failures)."""
    boxed = failures = 0
    for i, text in enumerate(answers):
        try:
            parsed = parse_answer(
                text,
                "boxes",
                box_format=box_format,
                thinking="tags" if i % 2 else "none",
                answer_rule=rule,
                box_convention=convention,
            )
            again = Parsed.from_json(loads(dumps(parsed.to_json()))) if parsed.boxes else parsed
        except Exception as exc:  # the point: report which answer escaped
            pytest.fail(f"{convention}: {type(exc).__name__}: {exc} on answer {text[:200]!r}")
        assert bool(parsed.boxes) != bool(parsed.parse_error), (convention, text[:200])
        assert all(len(b) == 4 for b in again.boxes) and len(again.boxes) == len(parsed.boxes)
        boxed += bool(parsed.boxes)
        failures += bool(parsed.parse_error)
    return boxed, failures


def _shrink(answers: list[str], size: int) -> list[str]:
    return [a[:size] for a in answers]


@pytest.mark.parametrize(("convention", "rule", "box_format"), CONVENTIONS)
def test_parser_fuzz_small(convention, rule, box_format):
    answers = list(_answers(4000)) + _shrink(megabyte_answers(), 20_000)
    boxed, failures = _check_all(answers, convention, rule, box_format)
    assert boxed + failures == len(answers) and boxed > 100 and failures > 100


@pytest.mark.slow
@pytest.mark.parametrize(("convention", "rule", "box_format"), CONVENTIONS)
def test_parser_fuzz_100k_and_megabyte_answers(convention, rule, box_format):
    answers = list(_answers(100_000)) + megabyte_answers()
    boxed, failures = _check_all(answers, convention, rule, box_format)
    assert boxed + failures == len(answers) == 100_000 + len(megabyte_answers())


def test_last_boxed_is_the_seed_regex_on_fuzzed_text():
    answers = [*_answers(4000), "\\boxed{}", "\\boxed {a} \\boxed{", "\\boxed\n{x}}", "\\boxed x{y}"]
    for text in answers:
        matches = SEED_BOXED.findall(text)
        assert last_boxed(text) == (matches[-1] if matches else None), text


def test_last_boxed_is_linear_on_unclosed_boxed_runs():
    assert last_boxed("\\boxed{" * 150_000) is None  # the regex takes about an hour on this
    assert last_boxed("\\boxed{" * 150_000 + "a}") == "\\boxed{" * 149_999 + "a"


def test_qwen3vl_json_numbers_past_a_float_and_deep_nesting_are_parse_failures():
    for text in (f'[{{"bbox_2d": [1{HUGE}, 1, 2, 3]}}]', "[" * 100_000, '{"a": ' * 50_000):
        parsed = parse_answer(text, "boxes", box_format="qwen1000", box_convention="qwen3vl_json")
        assert parsed.boxes == [] and parsed.parse_error


def test_a_nonfinite_box_overlaps_nothing_and_is_counted():
    inf, nan = math.inf, math.nan
    refs = [[0.1, 0.1, 0.4, 0.4]]
    for box in ([0.1, 0.1, 0.4, inf], [inf, 0.1, inf, 0.4], [0.1, nan, 0.4, 0.4], [-inf, -inf, inf, inf]):
        assert iou_matrix([box, [0.1, 0.1, 0.4, 0.4]], refs).tolist() == [[0.0], [1.0]]
    assert nonfinite_boxes([[0.1, 0.1, 0.4, inf], [0.1, 0.1, 0.4, 0.4]]) == 1


class _AnyTextAdapter(PredictionsAdapter):
    """Answers with any text, lone surrogates included (as a server's JSON "\\ud800" decodes)."""

    def __init__(self, card: ModelCard, predictions: dict[str, str]) -> None:
        super().__init__(card, {k: ascii(v) for k, v in predictions.items()})
        self.predictions = predictions


def test_an_answer_with_a_309_digit_number_is_scored_stored_and_scored_again(tmp_path: Path, data_root: Path):
    """The crash of issue 20 item 1: the stored box held null and every later scoring raised TypeError. A lone
    surrogate in a model's text could not be stored either (UnicodeEncodeError ended the run)."""
    (spec,) = resolve_tasks("phantom-abnormality-grounding")
    samples = load_samples(spec, data_root)[:5]
    first = samples[1].reference_boxes[0]
    texts = [
        f"[0.1, 0.1, 0.4, {HUGE}]",
        f"[{HUGE}, 0.1, {HUGE}, 0.4] " + "[" + ", ".join(f"{v:.4f}" for v in first) + "]",
        "[0.1, 0.1, 0.4, 0.4]",
        "no box",
        "[0.1, 0.1, 0.4, 0.4] \ud800 \x00 \udfff",
    ]
    card = ModelCard(name="huge-numbers", adapter="external", checkpoint="x")
    predictions = {s.sample_id: t for s, t in zip(samples, texts, strict=True)}
    db = tmp_path / "r.duckdb"

    def run():
        adapter = _AnyTextAdapter(card, predictions)
        (summary,) = evaluate(card, spec, db=db, data_root=data_root, adapter=adapter, samples=samples)
        return summary

    summary = run()
    assert summary.n_samples == 5 and summary.parse_failures == 1 and summary.errors == 0
    again = run()  # scores again from the stored generations (the path that raised)
    assert again.metrics == summary.metrics
    with Store(db, read_only=True) as store:
        rows = store.query(
            "SELECT sample_id, value, stats FROM scores WHERE run_id = ? AND metric = 'radvlm_map50'",
            [summary.run_id],
        )
    by_id = {r["sample_id"]: (r["value"], json.loads(r["stats"])) for r in rows}
    value, stats = by_id[samples[1].sample_id]
    assert stats["nonfinite_boxes"] == 1 and stats["matches"] == [-1, 0]  # the inf box is a false positive first
    assert value == pytest.approx(0.5)
    assert by_id[samples[0].sample_id] == (0.0, by_id[samples[0].sample_id][1])
