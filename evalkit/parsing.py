"""Turn raw model text into an answer, an optional thinking trace and 0-1 boxes.

Box formats (a model card's `box_format`, also `evalkit score --box-format`):
- `unit01`: floats in 0-1 written in text, e.g. ``[0.12, 0.30, 0.55, 0.80]`` (RadVLM).
- `qwen1000`: integers on a 0-1000 grid, usually JSON ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` (Qwen3-VL;
  with or without a code fence, one dict or a list of them), or Qwen2-VL's corner pair ``(x1,y1),(x2,y2)``.
- `pixels_resized`: pixels of the image after the model's smart resize (Qwen2.5-VL).
- `pixels`: pixels of the original image.
Malformed answers give a `Parsed` with `parse_error` set and no boxes; parsing never raises. The named answer
conventions (RadVLM-GRPO's evaluation regex and reward parser, strict, Qwen3-VL JSON) live in evalkit/answers.py.
"""

from __future__ import annotations

import math
import re

from evalkit.sample import Box, Parsed

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


def parse_boxes(
    answer: str,
    box_format: str,
    image_size: tuple[int, int] | None = None,
    resized_size: tuple[int, int] | None = None,
) -> tuple[list[Box], str | None]:
    """All boxes in `answer` under evalkit's `strict` convention, converted to 0-1 `[x1, y1, x2, y2]`.

    Boxes are returned in the order they are written (the ranking COCO AP and RadVLM's AP use). A box outside
    its format's range (negative, > 1 for unit01, > 1000 for qwen1000, beyond the image for pixels), with
    x2 <= x1 / y2 <= y1, or a coordinate list of two, three or five+ numbers makes the whole answer a parse
    failure: silently clipping or skipping would reward a malformed answer. Other conventions:
    `evalkit.answers.extract_boxes`.
    """
    from evalkit.answers import extract_boxes

    return extract_boxes(answer, "strict", box_format, image_size, resized_size)


def format_boxes(
    boxes: list[Box], box_format: str = "unit01", image_size: tuple[int, int] | None = None, digits: int = 2
) -> str:
    """Write 0-1 boxes in a model's output format (baselines answer in it; tests round-trip through it).

    `digits`: decimals of unit01 answers (RadVLM's answers have 2; the radiologist reference writes 3, so that a
    reader's thinnest box keeps x2 > x1).
    """
    if box_format == "unit01":
        return ", ".join("[" + ", ".join(f"{v:.{digits}f}" for v in b) + "]" for b in boxes)
    if box_format == "qwen1000":
        import json

        return json.dumps([{"bbox_2d": [round(v * 1000) for v in b]} for b in boxes])
    if image_size is None:
        raise ValueError(f"box_format '{box_format}' needs image_size")
    w, h = image_size
    return ", ".join(f"[{round(b[0] * w)}, {round(b[1] * h)}, {round(b[2] * w)}, {round(b[3] * h)}]" for b in boxes)


def parse_output(
    text: str,
    parser: str,
    box_format: str = "unit01",
    thinking: str = "none",
    image_size: tuple[int, int] | None = None,
    resized_size: tuple[int, int] | None = None,
    answer_pattern: str | None = None,
) -> Parsed:
    """Parse a raw model output for a task's parser (`report` or `boxes`) with evalkit's own rules (answer rule
    `evalkit`, box convention `strict`); `evalkit.answers.parse_answer` takes the other named conventions.

    `answer_pattern` (a card's `options.answer_pattern`, e.g. DeepMedix-R1's ``\\boxed{(.*)}``) narrows the answer
    to the last match of the pattern's first group when it matches; otherwise the whole answer is kept.
    """
    from evalkit.answers import parse_answer

    return parse_answer(
        text,
        parser,
        box_format=box_format,
        thinking=thinking,
        image_size=image_size,
        resized_size=resized_size,
        answer_pattern=answer_pattern,
    )
