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

from evalkit.answer_text import coordinate_lists, smart_resize, split_thinking
from evalkit.sample import Box, Parsed

__all__ = ["coordinate_lists", "format_boxes", "parse_boxes", "parse_output", "smart_resize", "split_thinking"]


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
