"""Any evalkit task's split as a TRL dataset: the same loaders, prompts and box formats as evaluation.

Samples come from `evalkit.run.runner.load_samples` (phantom, MIMIC-CXR and the grounding sets alike), prompts from
`evalkit.run.prompts.render_prompt` with the model card, and SFT targets for grounding from
`evalkit.answers.format_boxes` in the card's box format, so a model is trained on exactly the text it is later
evaluated on. Each row holds:

- `prompt`: chat messages (system if any, then the user turn; TRL inserts the image placeholders before the
  user text, which is where the evaluation adapters put them);
- `images`: the sample's image paths, decoded lazily to RGB by `datasets`;
- `completion` (SFT only): one assistant message with the target answer;
- reference columns that reward functions receive as keyword arguments: `sample_id`, `task`, `parser`,
  `reference_text`, `reference_boxes`, `image_size`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit.answers import format_boxes, smart_resize
from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.registry import resolve_tasks
from evalkit.run.prompts import render_prompt
from evalkit.run.runner import data_root_default, load_samples
from evalkit.sample import Sample

REFERENCE_COLUMNS: tuple[str, ...] = ("sample_id", "task", "parser", "reference_text", "reference_boxes", "image_size")


@dataclass
class Source:
    """One task's split in a training mix.

    Args:
        task: Task name or task YAML path (a task group is expanded by `expand_sources`).
        split: Split to read (`train` for training; `validate`/`test` for evaluation).
        limit: Keep only the first N samples.
        repeat: Repeat the samples N times (up-weights a small task in a mix).
        dataset: For a task group, keep the member tasks of this data set (loader name, e.g. `phantom`).
    """

    task: str
    split: str = "train"
    limit: int | None = None
    repeat: int = 1
    dataset: str | None = None


def image_size_of(sample: Sample) -> tuple[int, int] | None:
    """(width, height) from the loader's metadata, else from the first image's header."""
    if sample.image_size is not None:
        return sample.image_size
    if not sample.image_paths:
        return None
    from PIL import Image

    try:
        with Image.open(sample.image_paths[0]) as image:
            return image.size
    except OSError as exc:
        raise EvalkitError(f"sample {sample.sample_id}: cannot read image {sample.image_paths[0]}: {exc}") from exc


def resized_size_for(card: ModelCard, size: tuple[int, int] | None) -> tuple[int, int] | None:
    """The model-side image size for `pixels_resized` boxes, as the runner computes it."""
    if size is None or card.box_format != "pixels_resized":
        return None
    limits = {k: v for k, v in card.image.model_dump().items() if v is not None}
    return smart_resize(size[0], size[1], factor=int(card.options.get("resize_factor", 28)), **limits)


def answer_text(task: TaskSpec, card: ModelCard, sample: Sample) -> str:
    """The answer a perfect model would give: the report, or the reference boxes in the card's box format."""
    if task.parser == "report":
        if not (sample.reference_text or "").strip():
            raise EvalkitError(f"task '{task.name}': sample {sample.sample_id} has no reference text to train on")
        return sample.reference_text or ""
    if not sample.reference_boxes:
        raise EvalkitError(f"task '{task.name}': sample {sample.sample_id} has no reference boxes to train on")
    size = image_size_of(sample)
    if card.box_format == "pixels_resized":
        size = resized_size_for(card, size)
    return format_boxes(sample.reference_boxes, card.box_format, size)


def with_thinking(card: ModelCard, thinking: str, answer: str) -> str:
    """A completion with its reasoning trace, in the card's thinking convention."""
    if card.thinking == "suffix":  # the chat template already opened <think> in the prompt
        return f"{thinking.strip()}\n</think>\n\n{answer}"
    return f"<think>\n{thinking.strip()}\n</think>\n\n{answer}"


def read_thinking_traces(path: Path) -> dict[str, dict[str, str]]:
    """Cold-start traces: JSONL with `sample_id`, `thinking` and optionally `answer` (default: the reference).

    Keys are `task/sample_id` when a line names its `task`, else the bare `sample_id`.
    """
    traces: dict[str, dict[str, str]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read thinking traces: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise EvalkitError(f"{path}:{number}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict) or not row.get("sample_id") or not isinstance(row.get("thinking"), str):
            raise EvalkitError(f"{path}:{number}: each line needs 'sample_id' and 'thinking' (a string)")
        key = f"{row['task']}/{row['sample_id']}" if row.get("task") else str(row["sample_id"])
        traces[key] = {"thinking": row["thinking"], **({"answer": row["answer"]} if "answer" in row else {})}
    if not traces:
        raise EvalkitError(f"{path}: no thinking traces in the file")
    return traces


def task_rows(
    task: TaskSpec,
    card: ModelCard,
    samples: Sequence[Sample],
    *,
    with_completion: bool = False,
    thinking_traces: dict[str, dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Dataset rows for one task's samples (see the module docstring for the columns).

    Args:
        task: The task the samples belong to (prompt, parser).
        card: The model card being trained (box format, thinking mode, prompt suffix, system prompt).
        samples: Samples from `load_samples`.
        with_completion: Add the SFT target as `completion`.
        thinking_traces: Cold-start traces (`read_thinking_traces`); samples without one are skipped.
    """
    rows = []
    for sample in samples:
        system, prompt = render_prompt(task, card, sample)
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        size = image_size_of(sample) if task.parser == "boxes" else sample.image_size
        row: dict[str, Any] = {
            "prompt": messages,
            "images": list(sample.image_paths),
            "sample_id": sample.sample_id,
            "task": task.name,
            "parser": task.parser,
            "reference_text": sample.reference_text or "",
            "reference_boxes": [[float(v) for v in box] for box in sample.reference_boxes],
            "image_size": list(size) if size else None,
        }
        if with_completion or thinking_traces is not None:
            answer = answer_text(task, card, sample)
            if thinking_traces is not None:
                trace = thinking_traces.get(f"{task.name}/{sample.sample_id}") or thinking_traces.get(sample.sample_id)
                if trace is None:
                    continue
                answer = with_thinking(card, trace["thinking"], trace.get("answer", answer))
            row["completion"] = [{"role": "assistant", "content": answer}]
        rows.append(row)
    return rows


def expand_sources(sources: Sequence[Source]) -> list[tuple[Source, TaskSpec]]:
    """Resolve task names, groups and paths; a group becomes one source per member task."""
    out: list[tuple[Source, TaskSpec]] = []
    for source in sources:
        for task in resolve_tasks(source.task, source.dataset):
            out.append((source, task))
    return out


def build_rows(
    sources: Sequence[Source],
    card: ModelCard,
    data_root: Path | None = None,
    *,
    with_completion: bool = False,
    thinking_traces: dict[str, dict[str, str]] | None = None,
    shuffle_seed: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of every source, concatenated (and shuffled with `shuffle_seed`, if given)."""
    root = Path(data_root) if data_root is not None else data_root_default()
    rows: list[dict[str, Any]] = []
    for source, task in expand_sources(sources):
        samples = load_samples(task, root, split=source.split)
        if source.limit is not None:
            samples = samples[: source.limit]
        if not samples:
            raise EvalkitError(f"task '{task.name}': split '{source.split}' has no samples under {root}")
        task_part = task_rows(task, card, samples, with_completion=with_completion, thinking_traces=thinking_traces)
        rows.extend(task_part * max(1, source.repeat))
    if not rows:
        raise EvalkitError("the training data is empty (no samples, or no sample has a thinking trace)")
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    return rows


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """A `datasets.Dataset` whose `images` column decodes paths to RGB PIL images on access."""
    import datasets
    from datasets.utils import logging as datasets_logging

    was_enabled = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        dataset = datasets.Dataset.from_list(rows)
        return dataset.cast_column("images", datasets.Sequence(datasets.Image(mode="RGB")))
    finally:
        if was_enabled:
            datasets_logging.enable_progress_bar()


def build_dataset(
    sources: Sequence[Source],
    card: ModelCard,
    data_root: Path | None = None,
    *,
    with_completion: bool = False,
    thinking_traces: dict[str, dict[str, str]] | None = None,
    shuffle_seed: int | None = None,
) -> Any:
    """`build_rows` as a TRL-ready `datasets.Dataset`."""
    rows = build_rows(
        sources,
        card,
        data_root,
        with_completion=with_completion,
        thinking_traces=thinking_traces,
        shuffle_seed=shuffle_seed,
    )
    return to_dataset(rows)
