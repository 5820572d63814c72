"""The text primitives both answer parsers share: the thinking split, Qwen's smart resize and evalkit's strict
coordinate-list extraction. They live below evalkit/answers.py (the named conventions) and evalkit/parsing.py
(evalkit's own rules, which re-exports them), so neither of those imports the other back."""

from __future__ import annotations

import math
import re

_THINK_RE = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
# Any bracketed list of numbers separated by commas and/or spaces: `[x1, y1, x2, y2]`, `(x1 y1 x2 y2)`, the
# `bbox_2d` lists of Qwen3-VL JSON; four numbers make a box, two or more otherwise make the answer malformed.
_LIST_RE = re.compile(rf"[\[(]\s*({_NUMBER}(?:\s*[, ]\s*{_NUMBER})*)\s*[\])]")
_NUMBER_RE = re.compile(_NUMBER)
# Qwen2-VL's corner pair `(x1,y1),(x2,y2)` (0-1000 grid), optionally inside <|box_start|>...<|box_end|>.
_POINT = rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)"
_POINT_PAIR_RE = re.compile(rf"{_POINT}\s*,?\s*{_POINT}")


def split_thinking(text: str, mode: str = "tags") -> tuple[str, str | None, bool]:
    """Split `<think>...</think>` from the answer.

    Returns (answer, thinking, complete). `complete` is False when a `<think>` was opened but never closed,
    which thinking models do when they hit the length cap; the answer is then empty. Mode `suffix` covers
    models whose template opens `<think>` in the prompt, so the output holds only the closing tag.
    """
    if mode == "none":
        return text.strip(), None, True
    if "</think>" in text:
        head, _, answer = text.rpartition("</think>")
        thinking = head.split("<think>", 1)[-1].strip()
        return answer.strip(), thinking, True
    if "<think>" in text or mode == "suffix":
        return "", text.split("<think>", 1)[-1].strip(), False
    return text.strip(), None, True


def smart_resize(
    width: int, height: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 1280
) -> tuple[int, int]:
    """Qwen2-VL/2.5-VL image resize rule (dimensions multiple of `factor`, pixel count within bounds).

    Follows `qwen_vl_utils.smart_resize`; returns (resized_width, resized_height).
    """
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return w_bar, h_bar


def coordinate_lists(answer: str) -> tuple[list[tuple[float, ...]], str | None]:
    """evalkit's strict extraction: every box-like list in `answer` in written order, or an error for a list of
    the wrong length (the `strict` convention of evalkit/answers.py, which also checks ranges)."""
    found = [(m.start(), tuple(float(v) for v in m.groups())) for m in _POINT_PAIR_RE.finditer(answer)]
    rest = _POINT_PAIR_RE.sub(lambda m: " " * len(m.group(0)), answer)
    for m in _LIST_RE.finditer(rest):
        numbers = _NUMBER_RE.findall(m.group(1))
        if len(numbers) == 4:
            found.append((m.start(), tuple(float(v) for v in numbers)))
        elif len(numbers) >= 2:
            return [], f"found a coordinate list without exactly four numbers: {m.group(0)}"
    return [numbers for _, numbers in sorted(found)], None
