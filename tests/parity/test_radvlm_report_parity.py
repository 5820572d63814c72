"""Report columns under RadVLM-GRPO's definitions equal the seed's own scorers (vilmedic BLEU, ROUGE, CIDEr-D) and
bert-score's transformers-4 RoBERTa token ids.

Fixture: tests/fixtures/radvlm_report_reference.json (tests/fixtures/make_radvlm_report_reference.py, run in a side
environment). BLEU, ROUGE and CIDEr-D are float64 with the scorers' own operation order: 1e-9 covers summation
order only. Token ids are integers: exact.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from helpers import FIXTURES
from typer.testing import CliRunner

from evalkit.answers import parse_answer
from evalkit.metrics import get_metric
from evalkit.sample import Parsed, Sample

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_report_reference.json").read_text())
LEXICAL = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_1", "rouge_2", "rouge_l", "cider_d"]


def _corpus(name: str, pairs: list[dict]) -> tuple[float, list[float | None]]:
    metric = get_metric(name)
    samples = [Sample(f"s{i}", "t", [], reference_text=p["reference"]) for i, p in enumerate(pairs)]
    scores = metric.score([Parsed(answer=p["prediction"]) for p in pairs], samples)
    return metric.aggregate([s.value for s in scores], [s.stats for s in scores]), [s.value for s in scores]


@pytest.mark.parametrize("name", LEXICAL)
@pytest.mark.parametrize(
    "pairs_key, values_key", [("pairs", "lexical"), ("radeval_five_pairs", "radeval_five_lexical")]
)
def test_lexical_columns_equal_vilmedic(name: str, pairs_key: str, values_key: str) -> None:
    expected = FIXTURE[values_key]["ciderd" if name == "cider_d" else name]
    corpus, per_sample = _corpus(name, FIXTURE[pairs_key])
    assert corpus == pytest.approx(expected["corpus"], abs=1e-9)
    if name.startswith(("bleu", "rouge")):
        assert per_sample == pytest.approx(expected["per_sample"], abs=1e-9)


def test_score_pairs_prints_the_raw_convention_bleu(tmp_path: Path) -> None:
    from evalkit.cli import app

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in FIXTURE["radeval_five_pairs"]), encoding="utf-8")
    result = CliRunner().invoke(
        app,
        [
            "score",
            "--pairs",
            str(path),
            "--metrics",
            "bleu_1,bleu_2,bleu_3,bleu_4",
            "--json",
            "--db",
            str(tmp_path / "d.duckdb"),
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)["metrics"]
    for n in (1, 2, 3, 4):
        value = printed[f"bleu_{n}"]
        value = value["value"] if isinstance(value, dict) else value
        assert value == pytest.approx(FIXTURE["radeval_five_lexical"][f"bleu_{n}"]["corpus"], abs=1e-9)
    # The table a user sees by default (no --metrics, no --json) shows vilmedic's raw-string BLEU-1..4.
    table = CliRunner().invoke(app, ["score", "--pairs", str(path), "--db", str(tmp_path / "d2.duckdb")])
    assert table.exit_code == 0, table.output
    expected = [f"{FIXTURE['radeval_five_lexical'][f'bleu_{n}']['corpus']:.4f}" for n in (1, 2, 3, 4)]
    assert expected == ["0.1867", "0.1532", "0.1189", "0.0826"]  # the numbers, from the fixture
    for n, text in zip((1, 2, 3, 4), expected, strict=True):
        assert any(f"bleu_{n}" in line and text in line for line in table.output.splitlines()), table.output


def test_roberta_token_ids_equal_transformers_4() -> None:
    from bert_score.utils import get_tokenizer, sent_encode

    from evalkit.metrics.bertscore import _patch_tokenizer
    from evalkit.testing import tiny_clinical as _tiny

    folder = _tiny.write_tiny_roberta(Path(tempfile.mkdtemp()) / "distilroberta")
    tokenizer = get_tokenizer(str(folder), use_fast=False)
    _patch_tokenizer(tokenizer)
    ids = [list(sent_encode(tokenizer, t)) for t in FIXTURE["roberta_texts"]]
    assert ids == FIXTURE["roberta_ids"]


def test_report_answer_rule_cuts_at_4000_and_keeps_text_without_closing_think() -> None:
    long = FIXTURE["pairs"][7]["reference"]
    assert len(long) > 4000
    assert parse_answer(long, "report", answer_rule="radvlm_eval").answer == long[:4000]
    # thinking model, no </think>: the seed scores the whole (stripped) text; evalkit's own rule gives nothing
    text = "<think>effusion?  Small left effusion."
    assert parse_answer(text, "report", thinking="tags", answer_rule="radvlm_eval").answer == text.strip()
    assert parse_answer(text, "report", thinking="tags").answer == ""
    boxed = "<think>x</think> The answer is: \\boxed{No acute process.}"
    assert parse_answer(boxed, "report", thinking="tags", answer_rule="radvlm_eval").answer == "No acute process."
