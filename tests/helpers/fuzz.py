"""Random and hostile model answers for the parser fuzz tests (tests/test_answer_robustness.py).

Answers are built by joining fragments drawn with a fixed seed: box-like lists (well-formed, inverted, huge, signed,
exponent, dotted), NaN/inf words in every spelling JSON and Python accept, think tags (also the dotless-i
`</thınk>`), `\\boxed{}`, Qwen3-VL JSON (fenced, pretty-printed, malformed), deep nesting, lone surrogates and
control characters. A few answers are about 1 MB each, built from the fragments most likely to make a regular
expression or a JSON parser slow.
"""

from __future__ import annotations

import random

HUGE = "9" * 400  # a float overflows past 308 digits: the seed reads it as inf
FRAGMENTS: tuple[str, ...] = (
    "[0.1, 0.2, 0.4, 0.6]",
    "[0.55,0.5,0.9,0.85]",
    f"[0.1, 0.1, 0.4, {HUGE}]",
    f"[{HUGE}, 0.1, {HUGE}, 0.4]",
    f"[{HUGE}.{HUGE}, 1, 2, 3]",
    "[1e999, 0.2, 0.4, 0.6]",
    "[-1e999, -0.2, 0.4, 0.6]",
    "[0.4.1, 0.2, 0.4, 0.6]",
    "[.., ., ..., 1.]",
    "[0.5, 0.5, 0.4, 0.3]",
    "[0.1, 0.2, 0.4]",
    "[0.1, 0.2, 0.4, 0.6, 0.7]",
    "(0.1, 0.2, 0.4, 0.6)",
    "(10,20),(400,600)",
    "[ 1 , 2 , 3 , 4 ]",
    "[1 2 3 4]",
    "[[[[0.1, 0.2, 0.4, 0.6]]]]",
    "NaN",
    "nan",
    "-nan",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "[NaN, 0.1, 0.2, 0.3]",
    "[Infinity, 0, 1, 2]",
    '{"bbox_2d": [NaN, 1, 2, 3]}',
    '{"bbox_2d": [Infinity, -Infinity, 1, 2]}',
    f'{{"bbox_2d": [1{HUGE}, 1, 2, 3]}}',
    '[{"bbox_2d": [100, 200, 400, 600], "label": "opacity"}]',
    '```json\n[\n  {"bbox_2d": [100, 200, 400, 600], "label": "a"},\n  {"bbox_2d": [500, 500, 900, 850]}\n]\n```',
    '{"bbox_2d": [1, 2, 3]}',
    '{"bbox_2d": "1, 2, 3, 4"}',
    '{"bbox_2d": [true, false, null, 1]}',
    '{"bbox_2d": [1, 2, 3, 4]',
    "```",
    "```json",
    "<think>",
    "</think>",
    "</THINK>",
    "</th\u0131nk>",
    "<think>reasoning [0.0, 0.0, 1.0, 1.0]</think>",
    "\\boxed{}",
    "\\boxed{[0.1, 0.2, 0.4, 0.6]}",
    "\\boxed{",
    "\\boxed {  }",
    "[" * 50,
    "]" * 50,
    "{" * 50,
    '{"a": ' * 40,
    "\ud800",
    "\udfff",
    "\x00\x01\x7f",
    "\u202e\u200b\ufeff",
    "\u80ba \u00e9 \u2192",
    "\U0001f600",
    "0" * 5000,
    "1." * 300,
    "-" * 100,
    " " * 200,
    "\n\t\r",
    "",
)
SEPARATORS: tuple[str, ...] = ("", " ", ", ", "\n", "; ")


def random_answers(n: int, seed: int = 0) -> list[str]:
    """`n` answers, each 1-6 fragments (and occasionally random printable noise) joined by random separators."""
    rng = random.Random(seed)
    pick = rng.choice
    noise = [chr(c) for c in range(32, 127)]
    answers = []
    for _ in range(n):
        parts = [pick(FRAGMENTS) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.2:
            parts.append("".join(rng.choices(noise, k=rng.randint(1, 40))))
        answers.append(pick(SEPARATORS).join(parts))
    return answers


def megabyte_answers() -> list[str]:
    """About 1 MB each: long runs of the fragments a backtracking regex or a recursive parser handles worst."""
    size = 1_000_000
    units = ("[0.1, ", "[" + "9" * 60, "\\boxed{", '{"bbox_2d": [', "( 1 , 2 ", "```json\n[")
    answers = [(unit * (size // len(unit) + 1))[:size] for unit in units]
    answers.append("[0.1, 0.2, 0.4, 0.6] " * (size // 21))
    return answers
