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

from evalkit.results.queries import generated_sample_ids, run_generation_rows, sample_values, task_sample_rows
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


def part_script(key: str, data: Any) -> str:
    """A script that files `data`, as base64 of its gzip-compressed JSON, under `window.EVALKIT_PARTS[key]`."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    # mtime=0: the same data gives the same bytes, so rebuilding an unchanged site changes no file.
    packed = base64.b64encode(gzip.compress(payload, compresslevel=6, mtime=0)).decode("ascii")
    return script("EVALKIT_PARTS", key, packed)


_PART = re.compile(r'\]\s*=\s*"([A-Za-z0-9+/=]*)";\s*$')


def read_part(text: str) -> Any:
    """The data of a part script written by `part_script` (what site.js decodes in the browser)."""
    found = _PART.search(text)
    if found is None:
        raise ValueError("not a part script written by evalkit.views.site_data.part_script")
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


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
    outputs: list[list[dict[str, Any]]] = [[] for _ in ids]
    primary_scores: list[list[float | None]] = [[None] * len(runs) for _ in ids]
    column_index = {name: i for i, name in enumerate(columns)}
    for m, run_id in enumerate(run_ids):
        scores: dict[str, list[float | None]] = {}
        for sid, metric, value in sample_values(store, run_id):  # current scores only (their identity)
            if sid in position and metric in column_index:
                scores.setdefault(sid, [None] * len(columns))[column_index[metric]] = _rounded(value, SCORE_DIGITS)
        for sid, text, parsed, error in run_generation_rows(store, run_id):
            if sid not in position:
                continue
            outputs[position[sid]].append(_output(m, text, loads(parsed, {}) or {}, error, scores.get(sid)))
            if primary in column_index and sid in scores:
                primary_scores[position[sid]][m] = scores[sid][column_index[primary]]
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
    (folder / "index.js").write_text(script("EVALKIT_INDEX", task_slug, index), "utf-8")
    return {k: v for k, v in index.items() if k != "primary_scores"}


def _output(
    model: int, text: str | None, parsed: dict[str, Any], error: str | None, scores: list[float | None] | None
) -> dict[str, Any]:
    """One model's output, keys only where there is something (short keys: this is most of the site's bytes)."""
    answer = parsed.get("answer", text)
    item: dict[str, Any] = {"m": model, "a": answer or ""}
    if text != answer or parsed.get("thinking"):
        item["r"] = text or ""
    boxes = [_box(b) for b in parsed.get("boxes", []) if _is_box(b)]
    if boxes:
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


def _box(box: Sequence[float]) -> list[float]:
    return [round(float(v), BOX_DIGITS) for v in box]


def _is_box(box: Any) -> bool:
    return (
        isinstance(box, list | tuple)
        and len(box) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in box)
    )
