"""GREEN under the radvlm-grpo profile (`convention: green_score`) equals green_score as RadVLM-GRPO runs it.

Fixture: tests/fixtures/radvlm_green_reference.json (tests/fixtures/make_radvlm_green_reference.py: Stanford-AIMI/GREEN
HEAD, transformers 4.57, a tiny Llama judge). Prompts, token ids and parsed counts are exact; GREEN values are
ratios of small integers, compared to 1e-12.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import FIXTURES

from evalkit.metrics import get_metric
from evalkit.metrics.green import (
    CHAT_TEMPLATE,
    GREEN_SCORE_MAX_WORDS,
    clean_response,
    clean_up_tokenization,
    green_score,
    llama_prompt_ids,
    make_prompt,
)
from evalkit.profiles import get_profile

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_green_reference.json").read_text())


def _tokenizer():
    sys.path.insert(0, str(FIXTURES))
    from tiny_llama import write_tiny_llama_tokenizer
    from transformers import AutoTokenizer

    folder = write_tiny_llama_tokenizer(Path(tempfile.mkdtemp()) / "judge")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), add_eos_token=True, padding_side="left")
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def test_prompt_keeps_300_words_rejoined() -> None:
    for pair, expected in zip(FIXTURE["reports"], FIXTURE["prompts"], strict=True):
        assert make_prompt(pair["reference"], pair["prediction"], GREEN_SCORE_MAX_WORDS) == expected
    assert get_profile("radvlm-grpo").options_for("green")["convention"] == "green_score"


@pytest.mark.parametrize("case", FIXTURE["analyses"], ids=lambda c: repr(c["raw"][:24]))
def test_cleaning_and_parsing_equal_green_score(case: dict) -> None:
    cleaned = clean_response(case["raw"], "green_score")
    assert cleaned == case["cleaned"]
    value, counts = green_score(cleaned, "green_score")
    assert value == pytest.approx(case["green"], abs=1e-12)
    assert counts == {"matched_findings": case["matched"], "significant_errors": case["significant"]}


def test_count_on_a_later_line_is_zero_for_green_score_and_counted_by_evalkit() -> None:
    case = FIXTURE["analyses"][1]
    assert case["green"] == 0
    assert green_score(clean_response(case["raw"], "green_score"), "green_score")[0] == 0
    assert green_score(case["raw"])[0] == pytest.approx(2 / 3)


def test_judge_prompt_ids_equal_transformers_4() -> None:
    tokenizer = _tokenizer()
    chats = [
        tokenizer.apply_chat_template(
            [{"from": "human", "value": p}, {"from": "gpt", "value": ""}], tokenize=False, add_generation_prompt=True
        )
        for p in FIXTURE["chat_prompts"]
    ]
    ids, mask = llama_prompt_ids(tokenizer, chats, 2048)
    assert ids == FIXTURE["chat_input_ids"]
    assert mask == FIXTURE["chat_attention_mask"]


def test_decoding_clean_up_equals_transformers_4() -> None:
    tokenizer = _tokenizer()
    for case in FIXTURE["decoded"]:
        text = tokenizer.batch_decode([case["ids"]], skip_special_tokens=True)[0]
        assert clean_up_tokenization(text) == case["text"]


def test_unknown_convention_is_refused() -> None:
    from evalkit.errors import EvalkitError

    with pytest.raises(EvalkitError, match="convention"):
        get_metric("green", convention="radeval")
