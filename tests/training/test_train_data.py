"""Task splits -> TRL rows: the harness's own loaders, prompts and box formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalkit.answers import format_boxes, parse_output
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.registry import resolve_tasks
from evalkit.run.prompts import render_prompt
from evalkit.run.runner import load_samples
from evalkit.training.data import Source, build_rows, read_thinking_traces, to_dataset


def _card(**changes) -> ModelCard:
    data = {"name": "m", "adapter": "transformers", "checkpoint": "x", "box_format": "qwen1000"}
    data.update(changes)
    return ModelCard.model_validate(data)


def test_report_task_rows(data_root: Path) -> None:
    card = _card(system_prompt="You are a radiologist.")
    rows = build_rows([Source("phantom-report")], card, data_root, with_completion=True)
    task = resolve_tasks("phantom-report")[0]
    samples = load_samples(task, data_root, split="train")
    assert len(rows) == len(samples) > 0
    for row, sample in zip(rows, samples, strict=True):
        system, prompt = render_prompt(task, card, sample)
        assert row["prompt"] == [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        assert row["completion"] == [{"role": "assistant", "content": sample.reference_text}]
        assert row["images"] == sample.image_paths and row["parser"] == "report"
        assert row["reference_text"] == sample.reference_text and row["reference_boxes"] == []


@pytest.mark.parametrize("box_format", ["qwen1000", "unit01", "pixels"])
def test_grounding_task_rows_answer_in_the_card_box_format(data_root: Path, box_format: str) -> None:
    card = _card(box_format=box_format)
    rows = build_rows([Source("phantom-abnormality-grounding", limit=8)], card, data_root, with_completion=True)
    task = resolve_tasks("phantom-abnormality-grounding")[0]
    samples = load_samples(task, data_root, split="train")[:8]
    assert len(rows) == 8
    for row, sample in zip(rows, samples, strict=True):
        assert row["prompt"][-1]["content"] == render_prompt(task, card, sample)[1]
        assert box_format in ("pixels",) or task.prompt.box_format_hints[box_format] in row["prompt"][-1]["content"]
        answer = row["completion"][0]["content"]
        assert answer == format_boxes(sample.reference_boxes, box_format, sample.image_size)
        assert row["reference_boxes"] == sample.reference_boxes and row["image_size"] == list(sample.image_size)
        # What the model is taught parses back to the reference (to the format's rounding).
        parsed = parse_output(answer, "boxes", box_format, "none", sample.image_size)
        assert parsed.parse_error is None
        for got, want in zip(parsed.boxes, sample.reference_boxes, strict=True):
            assert got == pytest.approx(want, abs=0.006)


def test_mix_repeat_shuffle_and_dataset(data_root: Path) -> None:
    sources = [Source("phantom-report", limit=3, repeat=2), Source("phantom-anatomy-grounding", limit=4)]
    rows = build_rows(sources, _card(), data_root, with_completion=True, shuffle_seed=1)
    assert len(rows) == 10 and {r["task"] for r in rows} == {"phantom-report", "phantom-anatomy-grounding"}
    again = build_rows(sources, _card(), data_root, with_completion=True, shuffle_seed=1)
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in again]
    dataset = to_dataset(rows)
    first = dataset[0]
    assert first["images"][0].mode == "RGB" and first["images"][0].size == (256, 256)
    assert set(first) >= {"prompt", "completion", "images", "reference_text", "reference_boxes", "image_size"}
    grouped = build_rows([Source("grounding", limit=2, dataset="phantom")], _card(), data_root)
    assert len(grouped) == 6 and "completion" not in grouped[0]


def test_group_on_phantom_and_errors(data_root: Path) -> None:
    with pytest.raises(EvalkitError, match="unknown task"):
        build_rows([Source("no-such-task")], _card(), data_root)
    with pytest.raises(EvalkitError, match="unknown split"):
        build_rows([Source("phantom-report", split="nope")], _card(), data_root)


def test_thinking_traces(data_root: Path, tmp_path: Path) -> None:
    task = resolve_tasks("phantom-anatomy-grounding")[0]
    samples = load_samples(task, data_root, split="train")[:2]
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        json.dumps({"sample_id": samples[0].sample_id, "thinking": "The right lung is on the left."})
        + "\n"
        + json.dumps({"task": task.name, "sample_id": samples[1].sample_id, "thinking": "t", "answer": "[1, 2, 3, 4]"})
        + "\n",
        encoding="utf-8",
    )
    loaded = read_thinking_traces(traces)
    rows = build_rows([Source(task.name)], _card(thinking="tags"), data_root, thinking_traces=loaded)
    assert len(rows) == 2
    first = rows[0]["completion"][0]["content"]
    assert first.startswith("<think>\nThe right lung is on the left.\n</think>\n\n")
    assert first.endswith(format_boxes(samples[0].reference_boxes, "qwen1000"))
    assert parse_output(first, "boxes", "qwen1000", "tags").parse_error is None
    assert rows[1]["completion"][0]["content"].endswith("[1, 2, 3, 4]")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"sample_id": "x"}\n', encoding="utf-8")
    with pytest.raises(EvalkitError, match=r"bad.jsonl:1: each line needs"):
        read_thinking_traces(bad)
