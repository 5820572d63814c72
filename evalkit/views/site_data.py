"""Per-sample data of a task as script files that the browser renders (site/static/site.js).

One HTML page per sample made a 20-model x 4-task x 3,314-sample site 403 MB in 16,941 files, almost all of it
the same page chrome repeated. Instead each task gets one sample viewer page and its data as plain script files:
`data/<task>/index.js` (sample ids and the primary metric per model, for the task page's sample table) and
`data/<task>/part-<k>.js` (references and every model's output for `PART_SIZE` samples, loaded on demand).
They are scripts, not JSON fetched at run time, because a page opened from `file://` may not fetch files but may
load scripts from its own folder under the site's CSP (`script-src 'self'`). The index is JSON (ASCII, with < > &
as \\u escapes, so no model output can end the script early); the browser inserts all data as text, never as HTML.

A part holds its JSON gzip-compressed, as one base64 string, which site.js inflates with the browser's own
`DecompressionStream` (no fetch, so it works from `file://` under the same CSP). Every model's output stored once
is still about 11 MB of JSON per task at 20 models x 3,314 samples; compressed it is several times smaller, and the
format stays plain JSON, not a hand-made encoding that the script would have to undo field by field.
`read_part` is the inverse, for tests and for anyone inspecting a built site.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.results.queries import (
    generated_sample_ids,
    task_generation_rows,
    task_sample_rows,
    task_score_values,
)
from evalkit.results.store import Store, loads
from evalkit.views.site_svg import colour

PART_SIZE = 200
# Digits kept: scores are shown with 3 decimals; box corners with 4 are within 0.1 px of a 768 px image.
SCORE_DIGITS = 4
BOX_DIGITS = 4


def script(registry: str, key: str, data: Any) -> str:
    """A script that files `data` under `window[registry][key]`."""
    payload = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    # <, > and & only occur inside JSON strings: escaped there, no text can close a script or open a comment.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"(window.{registry} = window.{registry} || {{}})[{json.dumps(key)}] = {payload};\n"


def pack(data: Any) -> str:
    """Base64 of `data`'s gzip-compressed JSON, which site.js inflates with the browser's DecompressionStream."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    # mtime=0: the same data gives the same bytes, so rebuilding an unchanged site changes no file. Level 9: 3% fewer
    # bytes than 6 on the sample parts (the site's bulk) for about a second more per build at 60 models x 4 tasks.
    return base64.b64encode(gzip.compress(payload, compresslevel=9, mtime=0)).decode("ascii")


def part_script(key: str, data: Any) -> str:
    """A script that files `data`, as base64 of its gzip-compressed JSON, under `window.EVALKIT_PARTS[key]`."""
    return script("EVALKIT_PARTS", key, pack(data))


def index_script(key: str, index: dict[str, Any]) -> str:
    """A script that files a task's sample index under `window.EVALKIT_INDEX[key]`, its bulk (sample ids and
    primary scores: 1.4 MB of plain JSON per task at 60 models x 3,314 samples) packed as a part is, in `packed`."""
    bulk = {k: index[k] for k in INDEX_BULK}
    return script(
        "EVALKIT_INDEX", key, {**{k: v for k, v in index.items() if k not in INDEX_BULK}, "packed": pack(bulk)}
    )


INDEX_BULK = ("ids", "primary_scores")
_INDEX = re.compile(r"^\(window\.EVALKIT_INDEX = window\.EVALKIT_INDEX \|\| \{\}\)\[.*?\] = (\{.*\});\s*$", re.S)


def read_index(text: str) -> dict[str, Any]:
    """The index of an index script written by `index_script`, as site.js has it once inflated."""
    found = _INDEX.match(text)
    if found is None:
        raise ValueError("not an index script written by evalkit.views.site_data.index_script")
    index = json.loads(found.group(1))
    bulk = json.loads(gzip.decompress(base64.b64decode(index.pop("packed"))))
    return {**index, **bulk}


_PART = re.compile(r'\]\s*=\s*"([A-Za-z0-9+/=]*)";\s*$')
# Boxes an answer states as "[x1, y1, x2, y2]" (plain decimals, ", " between them), in order. site.js reads them
# back from the text with the same pattern (BOX_TEXT there), so an output whose parsed boxes are exactly these
# (compared as the floats both sides parse) says so with "bt" instead of repeating them: a third of a grounding
# task's compressed bytes were boxes written twice.
# At most BOX_DIGITS decimals: such a number is its own rounding, so the text gives exactly the rounded boxes.
_NUMBER = r"(-?[0-9]+(?:\.[0-9]{1,4})?)"
BOX_TEXT = re.compile(rf"\[{_NUMBER}, {_NUMBER}, {_NUMBER}, {_NUMBER}\]")


def boxes_in_text(text: str) -> list[list[float]]:
    """The boxes `BOX_TEXT` finds in an answer, as site.js reads them (`Number` and `float` parse alike)."""
    return [[float(a), float(b), float(c), float(d)] for a, b, c, d in BOX_TEXT.findall(text)]


def read_part(text: str) -> Any:
    """The data of a part script written by `part_script`, as site.js has it once decoded (boxes given as "bt"
    read back from the answer into "b")."""
    found = _PART.search(text)
    if found is None:
        raise ValueError("not a part script written by evalkit.views.site_data.part_script")
    samples = json.loads(gzip.decompress(base64.b64decode(found.group(1))))
    for sample in samples if isinstance(samples, list) else []:
        for output in sample.get("out", []) if isinstance(sample, dict) else []:
            if output.pop("bt", None):
                output["b"] = boxes_in_text(output["a"])
    return samples


def write_task_data(
    store: Store,
    out: Path,
    task: str,
    task_slug: str,
    runs: Sequence[tuple[str, str, str]],
    columns: Sequence[str],
    primary: str | None,
    image: Callable[[list[str]], dict[str, Any] | None],
    max_samples: int | None = None,
) -> dict[str, Any]:
    """Write a task's index and parts; returns the index (without its score matrix) for the task page.

    Args:
        runs: (run id, model, model slug) in the task page's row order.
        columns: metric names in the task page's order; each output's scores follow it.
        image: maps a sample's image paths to its copied image (`src`, `width`, `height`) or None.
        max_samples: keep only the first samples (sorted ids); the rest are counted as truncated.
    """
    run_ids = [r[0] for r in runs]
    ids = generated_sample_ids(store, run_ids)
    truncated = 0
    if max_samples is not None and len(ids) > max_samples:
        truncated, ids = len(ids) - max_samples, ids[:max_samples]
    position = {sid: i for i, sid in enumerate(ids)}
    scores = _ScoreTable(store, run_ids, columns, position)
    outputs: list[list[dict[str, Any]]] = [[] for _ in ids]
    primary_scores: list[list[float | None]] = [[None] * len(runs) for _ in ids]
    at = columns.index(primary) if primary in columns else None
    # Every run's generations in one query, in run order: each sample's outputs are listed in the runs' order.
    rows = [r for r in task_generation_rows(store, run_ids) if r[1] in position]
    for (m, sid, text, _, error), parsed in zip(rows, _decoded([r[3] for r in rows]), strict=True):
        i = position[sid]
        found = scores.get(i, m)
        outputs[i].append(_output(m, text, parsed or {}, error, found))
        if at is not None and found is not None:
            primary_scores[i][m] = found[at]
    samples = {r[0]: r[1:] for r in task_sample_rows(store, task) if r[0] in position}
    folder = out / "data" / task_slug
    folder.mkdir(parents=True, exist_ok=True)
    for part, start in enumerate(range(0, len(ids), PART_SIZE)):
        chunk = [
            _sample(sid, samples.get(sid), outputs[start + i], image)
            for i, sid in enumerate(ids[start : start + PART_SIZE])
        ]
        (folder / f"part-{part}.js").write_text(part_script(f"{task_slug}/{part}", chunk), "utf-8")
    index = {
        "task": task,
        "slug": task_slug,
        "models": [
            {"name": model, "slug": model_slug, "colour": colour(i)} for i, (_, model, model_slug) in enumerate(runs)
        ],
        "columns": list(columns),
        "primary": primary,
        "part_size": PART_SIZE,
        "truncated": truncated,
        "ids": ids,
        "primary_scores": primary_scores,
    }
    (folder / "index.js").write_text(index_script(task_slug, index), "utf-8")
    return {k: v for k, v in index.items() if k != "primary_scores"}


def rounded_scores(values: np.ndarray) -> np.ndarray:
    """`round(v, SCORE_DIGITS)` of each finite value, vectorised, and equal to Python's round everywhere.

    Python's round is the double nearest the exactly rounded decimal, k / 10^d; numpy's `rint(v * 10^d) / 10^d`
    divides the same integer k, so both agree wherever k is the same. k can differ only where v * 10^d lands
    within rounding error of a half: those few values (and huge ones) are rounded by Python's round.
    """
    scale = 10.0**SCORE_DIGITS
    scaled = values * scale
    out = np.rint(scaled) / scale
    near_half = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6) | (np.abs(values) >= 1e9)
    for i in np.flatnonzero(near_half):
        out[i] = round(float(values[i]), SCORE_DIGITS)
    return out


class _ScoreTable:
    """Every output's scores in `columns`' order (rounded; None where missing or not finite), for outputs holding
    a current score of any column: all runs of the task read in one query, arranged with numpy."""

    def __init__(self, store: Store, run_ids: Sequence[str], columns: Sequence[str], position: dict[str, int]) -> None:
        found = task_score_values(store, run_ids, columns)
        n, k, c = len(position), len(run_ids), len(columns)
        self.present = np.zeros((n, k), dtype=bool)
        self.values = np.full((n, k, max(c, 1)), None, dtype=object)
        if not len(found["run"]):
            return
        # `sample` indexes every generated sample in id order, as `position` does: past --max-samples is dropped.
        at = np.asarray(found["sample"], dtype=np.int64)
        run, column, values = found["run"].astype(np.int64), found["metric"].astype(np.int64), found["value"]
        data = np.ma.getdata(values).astype(float)
        keep = at < n
        self.present[at[keep], run[keep]] = True
        ok = keep & ~np.ma.getmaskarray(values) & np.isfinite(data)
        rounded = np.empty(int(ok.sum()), dtype=object)
        rounded[:] = rounded_scores(data[ok]).tolist()
        self.values[at[ok], run[ok], column[ok]] = rounded

    def get(self, i: int, m: int) -> list[float | None] | None:
        """The scores of run `m`'s output on sample `i`, or None where it holds none."""
        return self.values[i, m].tolist() if self.present[i, m] else None


def _output(
    model: int, text: str | None, parsed: dict[str, Any], error: str | None, scores: list[float | None] | None
) -> dict[str, Any]:
    """One model's output, keys only where there is something (short keys: this is most of the site's bytes)."""
    answer = parsed.get("answer", text)
    item: dict[str, Any] = {"m": model, "a": answer or ""}
    if text != answer or parsed.get("thinking"):
        item["r"] = text or ""
    raw = parsed.get("boxes", [])
    stated = boxes_in_text(item["a"]) if isinstance(item["a"], str) else []
    # Equal floats (0.0 and -0.0 alike: a box drawn or printed at -0 shows as at 0): the browser reads these boxes
    # back from the text. The parse equal to the text's boxes is already clean and rounded (lists of four finite
    # numbers of at most BOX_DIGITS decimals), so `_boxes` would return it unchanged.
    if stated and stated == raw:
        item["bt"] = 1
    elif boxes := _boxes(raw):
        if stated == boxes:
            item["bt"] = 1
        else:
            item["b"] = boxes
    if parsed.get("parse_error"):
        item["pe"] = str(parsed["parse_error"])
    if error:
        item["e"] = error
    if scores is not None:
        item["s"] = scores
    return item


def _sample(
    sample_id: str,
    row: tuple[Any, ...] | None,
    outputs: list[dict[str, Any]],
    image: Callable[[list[str]], dict[str, Any] | None],
) -> dict[str, Any]:
    image_paths, prompt_vars, reference_text, reference_boxes, labels = row or (None,) * 5
    boxes = [_box(b) for b in loads(reference_boxes, []) or [] if _is_box(b)]
    item: dict[str, Any] = {"id": sample_id, "out": outputs}
    vars_ = loads(prompt_vars, {}) or {}
    if vars_:
        item["vars"] = {str(k): str(v) for k, v in vars_.items()}
    if reference_text:
        item["text"] = reference_text
    if boxes:
        item["boxes"] = boxes
        names = loads(labels, []) or []
        item["labels"] = [str(names[i]) if i < len(names) else "" for i in range(len(boxes))]
    found = image(loads(image_paths, []) or [])
    if found:
        item["image"] = found
    return item


def _rounded(value: Any, digits: int) -> float | None:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _decoded(texts: Sequence[str | None]) -> list[Any]:
    """Each JSON text decoded (None for NULL), in one decoder call: half the time of one `json.loads` per text."""
    return json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]") if texts else []


_NUMBERS = (int, float)


def _boxes(found: Any) -> list[list[float]]:
    """The well-formed boxes among a parse's `boxes` (`_is_box`), rounded (`_box`): the same result, unrolled
    for the site build's million boxes."""
    out = []
    isfinite = math.isfinite
    for box in found:
        if isinstance(box, list | tuple) and len(box) == 4:
            a, b, c, d = box
            if (
                isinstance(a, _NUMBERS)
                and isinstance(b, _NUMBERS)
                and isinstance(c, _NUMBERS)
                and isinstance(d, _NUMBERS)
                and isfinite(a)
                and isfinite(b)
                and isfinite(c)
                and isfinite(d)
            ):
                out.append(
                    [
                        round(float(a), BOX_DIGITS),
                        round(float(b), BOX_DIGITS),
                        round(float(c), BOX_DIGITS),
                        round(float(d), BOX_DIGITS),
                    ]
                )
    return out


def _box(box: Sequence[float]) -> list[float]:
    return [round(float(v), BOX_DIGITS) for v in box]


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, list | tuple)
        and len(box) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in box)
    )
