"""Box parsing for every box format: several boxes, Qwen3-VL JSON variants, malformed answers as counted failures."""

from __future__ import annotations

import json

import pytest

from evalkit.answers import parse_boxes, parse_output
from evalkit.config import ModelCard
from evalkit.metrics import is_diagnostic
from evalkit.model_adapters.predictions import PredictionsAdapter
from evalkit.registry import resolve_tasks
from evalkit.run.evaluate import evaluate
from evalkit.run.runner import load_samples
from evalkit.store import Store


def test_several_unit01_boxes_in_output_order():
    text = "Two nodules: [0.60, 0.10, 0.90, 0.40] (right) and [0.12, 0.30, 0.55, 0.80] (left)."
    boxes, error = parse_boxes(text, "unit01")
    assert error is None and boxes == [[0.6, 0.1, 0.9, 0.4], [0.12, 0.3, 0.55, 0.8]]


@pytest.mark.parametrize(
    "text",
    [
        '```json\n[{"bbox_2d": [100, 250, 500, 750], "label": "nodule"}, {"bbox_2d": [600, 0, 900, 300]}]\n```',
        '[{"bbox_2d": [100, 250, 500, 750], "label": "nodule"}, {"bbox_2d": [600, 0, 900, 300], "label": "mass"}]',
        '{"bbox_2d": [100, 250, 500, 750]}\n{"bbox_2d": [600, 0, 900, 300]}',
        '```\n{"bbox_2d": [100,250,500,750], "label": "left (lower) zone"}, {"bbox_2d":[600,0,900,300]}\n```',
        "[[100, 250, 500, 750], [600, 0, 900, 300]]",
        "<|box_start|>(100,250),(500,750)<|box_end|> and <|box_start|>(600,0),(900,300)<|box_end|>",
    ],
)
def test_qwen1000_variants(text):
    boxes, error = parse_boxes(text, "qwen1000")
    assert error is None
    assert boxes == [[0.1, 0.25, 0.5, 0.75], [0.6, 0.0, 0.9, 0.3]]


def test_qwen1000_with_thinking_and_float_coordinates():
    text = '<think>the effusion is at the left base</think>```json\n[{"bbox_2d": [600.5, 700, 950, 980.0]}]\n```'
    parsed = parse_output(text, "boxes", "qwen1000", thinking="tags")
    assert parsed.parse_error is None and parsed.thinking.startswith("the effusion")
    assert parsed.boxes == [[0.6005, 0.7, 0.95, 0.98]]


@pytest.mark.parametrize(
    "fmt,text,fragment",
    [
        ("unit01", "There is no abnormality.", "no box"),
        ("unit01", "", "no box"),
        ("qwen1000", "[]", "no box"),
        ("unit01", "[0.1, 0.2, 0.3]", "four numbers"),
        ("qwen1000", '{"bbox_2d": [100, 200, 300]}', "four numbers"),
        ("qwen1000", '{"bbox_2d": [100, 200, 300, 400, 500]}', "four numbers"),
        ("unit01", "[0.1, 0.1, 0.3, 0.3] and [0.5, 0.5, 0.6]", "four numbers"),  # one bad list fails the answer
        ("unit01", "[-0.1, 0.2, 0.3, 0.4]", "outside"),
        ("qwen1000", '{"bbox_2d": [-5, 20, 300, 400]}', "outside"),
        ("qwen1000", '{"bbox_2d": [10, 10, 1200, 500]}', "outside"),
        ("qwen1000", '[{"bbox_2d": [10, 10, 200, 500]}, {"bbox_2d": [10, 10, 1001, 500]}]', "outside"),
        ("unit01", "[0.1, 0.2, 1.3, 0.4]", "outside"),
        ("unit01", "[0.5, 0.2, 0.3, 0.4]", "x2 <= x1"),
        ("qwen1000", '{"point_2d": [120, 340]}', "four numbers"),
    ],
)
def test_malformed_answers_are_parse_failures(fmt, text, fragment):
    boxes, error = parse_boxes(text, fmt)
    assert boxes == [] and fragment in error


def test_pixels_beyond_the_image_fail():
    assert parse_boxes("[0, 0, 300, 100]", "pixels", image_size=(256, 256))[1] is not None
    assert parse_boxes("[0, 0, 256, 256]", "pixels", image_size=(256, 256)) == ([[0.0, 0.0, 1.0, 1.0]], None)


def test_runner_counts_parse_failures_and_scores_them_zero(tmp_path, data_root):
    # evalkit's strict convention (the phantom task's default profile, radvlm-grpo, keeps out-of-range boxes).
    task = resolve_tasks("phantom-phrase-grounding")[0].model_copy(update={"profile": "evalkit"})
    samples = load_samples(task, data_root)[:6]
    good = [{"bbox_2d": [round(v * 1000) for v in samples[0].reference_boxes[0]]}]
    answers = [
        json.dumps(good),
        "no box",
        '{"bbox_2d": [1, 2, 3]}',
        '{"bbox_2d": [-1, 2, 300, 400]}',
        '{"bbox_2d": [1, 2, 3000, 400]}',
        json.dumps(good),
    ]
    card = ModelCard(name="external-qwen", adapter="external", checkpoint="file", box_format="qwen1000")
    adapter = PredictionsAdapter(card, {s.sample_id: a for s, a in zip(samples, answers, strict=True)})
    with Store(tmp_path / "r.duckdb") as store:
        (summary,) = evaluate(card, task, db=store, adapter=adapter, samples=samples)
        rows = store.query("SELECT sample_id, metric, value FROM scores WHERE metric = 'radvlm_map50'")
    assert summary.parse_failures == 4
    values = {r["sample_id"]: r["value"] for r in rows}
    assert all(values[s.sample_id] == 0.0 for s in samples[1:5])
    assert values[samples[0].sample_id] == 1.0
    quality = {m for m in summary.metrics if not is_diagnostic(m)}  # + RL-health diagnostics (docs/rl-health.md)
    assert quality == {"radvlm_map50", "avg_iou", "coco_ap", "coco_ap50", "miou", "acc50", "soft_f1_iou"}
