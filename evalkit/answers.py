"""Named answer conventions: how a model's text becomes an answer and 0-1 boxes, one definition per name.

Also evalkit's own rules as plain functions (`parse_output`, `parse_boxes`), the text primitives every convention
shares (`split_thinking`, `smart_resize`, `coordinate_lists`) and `format_boxes`, which writes boxes in a model's
output format (baselines answer in it).

Papers parse the same answer differently, and the difference moves table numbers, so each rule has a name and the
task's convention profile (evalkit/profiles.py) picks one. Every caller (the runner, `evalkit score`, the GRPO
rewards) goes through `parse_for_card`, the one place that turns a model card into parsing arguments.

Box conventions (how coordinates are found in the answer; the unit comes from the card's `box_format`: `unit01`,
`qwen1000`, `pixels_resized`, `pixels`):
- `strict` (evalkit's own): every bracketed/parenthesised list of numbers and Qwen2-VL corner pairs; a list of 2, 3
  or 5+ numbers, a value outside the unit's range or x2 <= x1 makes the whole answer a parse failure.
- `radvlm_eval`: RadVLM-GRPO's evaluation (`extract_bounding_boxes` in `radvlm/evaluation/compute_metrics_tasks.py`):
  every match of ``\\[([\\d\\.]+),\\s*([\\d\\.]+),\\s*([\\d\\.]+),\\s*([\\d\\.]+)\\]`` in order, all other text ignored,
  no range or order checks. Where the seed raises (a "number" such as ``0.4.1`` or ``..``: `float` ValueError),
  that bracket is skipped and the others are kept, the rule of the seed's own reward parser.
- `radvlm_reward`: RadVLM-GRPO's GRPO reward (`extract_bounding_boxes` in `verl/custom_rewards/grounding_reward.py`):
  ``[ a , b , c , d ]`` with signed decimals and exponents, whitespace allowed around commas and brackets, a box
  with a non-finite value skipped, no range checks.
- `qwen3vl_json`: Qwen3-VL's JSON answer (``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``, fenced or not): every
  `bbox_2d` in the JSON in order; an answer that is not JSON falls back to `strict`.

Answer rules (what part of the raw text is the answer):
- `evalkit`: text after the last `</think>`, stripped; an opened but unclosed `<think>` is a parse failure.
- `radvlm_eval`: the seed's `_extract_answer` then `answer[:4000]` (`models_loading_inference.py`): for a thinking
  model the last ``\\boxed{...}`` unless it is empty, else the text after the last `</think>` stripped, else the
  *whole* text stripped; a non-thinking model's text unchanged. The cut is `answer_max_chars` (None for the cards
  the seed ran through its transformers path, which does not cut: evalkit/profiles.py).
- `radvlm_reward`: the seed reward's `compute_score`: thinking models score the text after the first `</think>`
  (case-insensitive), stripped, and nothing when the tag is missing; non-thinking models the stripped text.

A box with a non-finite coordinate (the seed's regex reads 309+ digits as inf) is kept in its place; the grounding
metrics give it IoU 0 with every reference and count it (`nonfinite_boxes`). No answer text raises: the parser
fuzz test (tests/test_answer_robustness.py) holds every convention to that.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evalkit.sample import Box, Parsed

if TYPE_CHECKING:
    from evalkit.config import ModelCard

BOX_CONVENTIONS: tuple[str, ...] = ("strict", "radvlm_eval", "radvlm_reward", "qwen3vl_json")
ANSWER_RULES: tuple[str, ...] = ("evalkit", "radvlm_eval", "radvlm_reward")
# --- text primitives every convention shares -----------------------------------------------------------------
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


# --- the named conventions -------------------------------------------------------------------------------------
RADVLM_MAX_ANSWER_CHARS = 4000  # models_loading_inference.py: "answer = answer[:4000]"

_RADVLM_EVAL_RE = re.compile(r"\[([\d\.]+),\s*([\d\.]+),\s*([\d\.]+),\s*([\d\.]+)\]")
_REWARD_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_RADVLM_REWARD_RE = re.compile(
    rf"\[\s*({_REWARD_NUMBER})\s*,\s*({_REWARD_NUMBER})\s*,\s*({_REWARD_NUMBER})\s*,\s*({_REWARD_NUMBER})\s*\]"
)
_BOXED_OPEN_RE = re.compile(r"\s*\{")
_REWARD_THINK_RE = re.compile(r"</think>\s*(.*)\Z", re.IGNORECASE | re.DOTALL)
_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)

Coordinates = tuple[float, float, float, float]


def last_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}`` (up to its first ``}``), or None: what the seed's `extract_boxed`
    finds with ``re.findall(r"\\boxed\s*\{([\s\S]*?)\}", text)[-1]``, in one left-to-right pass (that regex is
    quadratic on a long run of unclosed ``\boxed{``: a 100 kB answer took 30 s)."""
    found, pos = None, 0
    while (start := text.find("\\boxed", pos)) >= 0:
        opened = _BOXED_OPEN_RE.match(text, start + 6)
        if not opened:
            pos = start + 1
            continue
        close = text.find("}", opened.end())
        if close < 0:
            break  # no later \boxed can close either
        found, pos = text[opened.end() : close], close + 1
    return found


def _radvlm_eval_lists(answer: str) -> tuple[list[Coordinates], str | None]:
    found: list[Coordinates] = []
    for groups in _RADVLM_EVAL_RE.findall(answer):
        try:
            found.append(tuple(float(v) for v in groups))  # type: ignore[arg-type]
        except ValueError:
            continue  # the seed raises here ("0.4.1"); see the module docstring
    return found, None


def _radvlm_reward_lists(answer: str) -> tuple[list[Coordinates], str | None]:
    found: list[Coordinates] = []
    for m in _RADVLM_REWARD_RE.finditer(answer):
        values = tuple(float(v) for v in m.groups())
        if all(math.isfinite(v) for v in values):  # "1e999" overflows to inf: the reward drops that box
            found.append(values)  # type: ignore[arg-type]
    return found, None


def _as_float(value: Any) -> float | None:
    """A JSON number as a float (an integer too large for a float is inf, as the seed's regex reads 309+ digits);
    None for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _bbox_2d_lists(data: Any, out: list[Coordinates]) -> bool:
    """Collect every `bbox_2d` of four numbers in `data` in document order; False when one is malformed.

    Walks with an explicit stack: a deeply nested answer must not raise RecursionError."""
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "bbox_2d" in node:
                box = node["bbox_2d"]
                values = [_as_float(v) for v in box] if isinstance(box, list) and len(box) == 4 else [None]
                if any(v is None for v in values):
                    return False
                out.append(tuple(values))  # type: ignore[arg-type]
            stack.extend(reversed([v for k, v in node.items() if k != "bbox_2d"]))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return True


def _qwen3vl_json_lists(answer: str) -> tuple[list[Coordinates], str | None]:
    fenced = _FENCE_RE.search(answer)
    body = fenced.group(1) if fenced else answer
    try:
        data = json.loads(body.strip())
    except (ValueError, RecursionError):  # not JSON, a 4,300+-digit integer, or nesting deeper than the parser
        return coordinate_lists(answer)
    found: list[Coordinates] = []
    if not _bbox_2d_lists(data, found):
        return [], "a bbox_2d entry is not a list of four numbers"
    return found, None


_EXTRACTORS: dict[str, Callable[[str], tuple[list[Coordinates], str | None]]] = {
    "strict": coordinate_lists,
    "radvlm_eval": _radvlm_eval_lists,
    "radvlm_reward": _radvlm_reward_lists,
    "qwen3vl_json": _qwen3vl_json_lists,
}


def box_scale(box_format: str, image_size: tuple[int, int] | None, resized_size: tuple[int, int] | None):
    """(sx, sy) that divide a format's coordinates into 0-1, or None when the needed image size is unknown."""
    if box_format == "unit01":
        return 1.0, 1.0
    if box_format == "qwen1000":
        return 1000.0, 1000.0
    size = resized_size if box_format == "pixels_resized" else image_size
    if size is None:
        return None
    return float(size[0]), float(size[1])


def extract_boxes(
    answer: str,
    convention: str = "strict",
    box_format: str = "unit01",
    image_size: tuple[int, int] | None = None,
    resized_size: tuple[int, int] | None = None,
) -> tuple[list[Box], str | None]:
    """All boxes of `answer` under a named convention, in 0-1 units and written order, plus an error or None.

    Only `strict` validates ranges and order; the seed conventions keep inverted or out-of-range boxes, which the
    grounding metrics then score with IoU 0 (where the seed's `compute_iou` divides by a zero union, evalkit's IoU
    is 0: docs/reproducing-radvlm-grpo.md).
    """
    if convention not in _EXTRACTORS:
        raise ValueError(f"unknown box convention '{convention}'; use one of {', '.join(BOX_CONVENTIONS)}")
    if convention == "qwen3vl_json" and box_format != "qwen1000":
        box_format = "qwen1000"  # Qwen3-VL's JSON is always on the 0-1000 grid
    scale = box_scale(box_format, image_size, resized_size)
    if scale is None:
        return [], f"box_format '{box_format}' needs the image size, which the sample does not record"
    sx, sy = scale
    raw, error = _EXTRACTORS[convention](answer)
    if error:
        return [], error
    if not raw:
        return [], "no box found in the answer"
    boxes: list[Box] = []
    for x1, y1, x2, y2 in raw:
        if convention in ("strict", "qwen3vl_json"):
            if any(math.isnan(v) for v in (x1, y1, x2, y2)):
                return [], "box has NaN coordinates"
            if min(x1, y1, x2, y2) < 0 or max(x1, x2) > sx or max(y1, y2) > sy:
                return [], f"box {[x1, y1, x2, y2]} is outside the {box_format} range"
            if x2 <= x1 or y2 <= y1:
                return [], f"box {[x1, y1, x2, y2]} has x2 <= x1 or y2 <= y1"
        boxes.append([x1 / sx, y1 / sy, x2 / sx, y2 / sy])
    return boxes, None


def extract_answer(
    text: str, rule: str = "evalkit", thinking: str = "none", max_chars: int | None = RADVLM_MAX_ANSWER_CHARS
) -> tuple[str, str | None, str | None]:
    """(answer, thinking trace, error) of a raw output under a named answer rule (see the module docstring).

    `max_chars`: the `radvlm_eval` rule's cut (None: no cut, the seed's transformers path)."""
    text = text or ""
    if rule == "evalkit":
        answer, trace, complete = split_thinking(text, "tags" if thinking == "none" else thinking)
        return answer, trace, None if complete else "thinking not closed: no </think> in the output"
    if rule == "radvlm_eval":
        if thinking == "none":
            return text[:max_chars], None, None
        head, mark, tail = text.rpartition("</think>")
        trace = head.split("<think>", 1)[-1].strip() if mark else None
        boxed = last_boxed(text)
        if boxed:  # an empty last \boxed{} counts as none, as the seed's `if boxed_match:`
            answer = boxed
        elif mark:
            answer = tail.strip()
        else:
            answer = text.strip()  # the seed scores the whole text when </think> is missing
        return answer[:max_chars], trace, None
    if rule == "radvlm_reward":
        if thinking == "none":
            return text.strip(), None, None
        m = _REWARD_THINK_RE.search(text)
        if not m:
            return "", None, "no </think> in the output"
        answer = (m.group(1) or "").strip()
        return answer, text[: m.start()].split("<think>", 1)[-1].strip(), None if answer else "empty answer"
    raise ValueError(f"unknown answer rule '{rule}'; use one of {', '.join(ANSWER_RULES)}")


def parse_answer(
    text: str,
    parser: str,
    *,
    box_format: str = "unit01",
    thinking: str = "none",
    image_size: tuple[int, int] | None = None,
    resized_size: tuple[int, int] | None = None,
    answer_pattern: str | None = None,
    answer_rule: str = "evalkit",
    box_convention: str = "strict",
    answer_max_chars: int | None = RADVLM_MAX_ANSWER_CHARS,
) -> Parsed:
    """Parse a raw model output for a task's parser (`report` or `boxes`) under an answer rule and box convention.

    `answer_pattern` (a card's `options.answer_pattern`, e.g. DeepMedix-R1's ``\\boxed{(.*)}``) narrows an
    `evalkit`-rule answer to the last match of the pattern's first group when it matches. Never raises on text.
    """
    answer, trace, error = extract_answer(text, answer_rule, thinking, answer_max_chars)
    if error and not answer:
        return Parsed(answer="", thinking=trace, parse_error=error)
    if answer_pattern and answer_rule == "evalkit":
        matches = re.findall(answer_pattern, answer, flags=re.DOTALL)
        if matches:
            last = matches[-1]
            answer = (last[0] if isinstance(last, tuple) else last).strip()
    if parser == "report":
        return Parsed(answer=answer, thinking=trace, parse_error=None if answer.strip() else "empty answer")
    boxes, error = extract_boxes(answer, box_convention, box_format, image_size, resized_size)
    return Parsed(answer=answer, thinking=trace, boxes=boxes, parse_error=error)


def resized_size_for(card: ModelCard, image_size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The image size a `pixels_resized` card's coordinates refer to (the model's smart resize), else None."""
    if image_size is None or card.box_format != "pixels_resized":
        return None
    limits = {k: v for k, v in card.image.model_dump().items() if v is not None}
    factor = int(card.options.get("resize_factor", 28))
    return smart_resize(image_size[0], image_size[1], factor=factor, **limits)


def parse_for_card(
    text: str,
    parser: str,
    card: ModelCard,
    image_size: tuple[int, int] | None = None,
    *,
    answer_rule: str = "evalkit",
    box_convention: str = "strict",
    answer_max_chars: int | None = RADVLM_MAX_ANSWER_CHARS,
) -> Parsed:
    """The one card-to-parser translation (box unit, thinking mode, resize, answer pattern) for every caller."""
    return parse_answer(
        text,
        parser,
        box_format=card.box_format,
        thinking=card.thinking,
        image_size=image_size,
        resized_size=resized_size_for(card, image_size),
        answer_pattern=card.options.get("answer_pattern"),
        answer_rule=answer_rule,
        box_convention=box_convention,
        answer_max_chars=answer_max_chars,
    )


# --- evalkit's own rules (answer rule `evalkit`, box convention `strict`), and writing boxes ----------------------
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
    return parse_answer(
        text,
        parser,
        box_format=box_format,
        thinking=thinking,
        image_size=image_size,
        resized_size=resized_size,
        answer_pattern=answer_pattern,
    )
