"""The shared thinking-retry rule (evalkit/model_adapters/thinking.py) and its wiring into the transformers adapter."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from evalkit.config import ModelCard
from evalkit.model_adapters.base import GenerationRequest
from evalkit.model_adapters.thinking import Attempt, answer_text, generate_with_retries, retry_reason, retry_seed
from evalkit.sample import Sample


@pytest.mark.parametrize(
    ("attempt", "thinking", "expected"),
    [
        (Attempt("<think>a</think>b", "stop"), "tags", None),
        (Attempt("<think>a", "stop"), "tags", "no </think>"),
        (Attempt("no tags at all", "stop"), "tags", "no </think>"),
        (Attempt("a</think>b", "stop"), "suffix", None),
        (Attempt("<think>a</think>b", "length"), "tags", "length"),
        (Attempt("plain answer", "length"), "none", "length"),
        (Attempt("plain answer", "stop"), "none", None),
        (Attempt("", None, error="boom"), "tags", None),
    ],
)
def test_retry_rule(attempt: Attempt, thinking: str, expected: str | None) -> None:
    assert retry_reason(attempt, thinking) == expected


def test_answer_is_the_text_after_the_last_think_end() -> None:
    assert answer_text("<think>x</think> one </think> two", "tags") == "two"
    assert answer_text("trace only</think>\n\nanswer", "suffix") == "answer"
    assert answer_text("<think>never closed", "tags") == ""
    assert answer_text("plain", "none") == "plain"


def test_retry_loop_resubmits_only_failures_and_stops_at_the_limit() -> None:
    plans = {0: ["<think>a</think>A"], 1: ["<think>", "<think>b</think>B"], 2: ["<think>"] * 10}
    calls: list[tuple[list[int], int]] = []

    def attempt(indices: Sequence[int], round_index: int) -> list[Attempt]:
        calls.append((list(indices), round_index))
        return [Attempt(plans[i][min(round_index, len(plans[i]) - 1)], "stop", tokens=5) for i in indices]

    out = generate_with_retries(3, attempt, thinking="tags", retries=2)
    assert calls == [([0, 1, 2], 0), ([1, 2], 1), ([2], 2)]
    assert [a.text for a, _ in out] == ["<think>a</think>A", "<think>b</think>B", "<think>"]
    assert [m["attempts"] for _, m in out] == [1, 2, 3]
    assert out[2][1] == {
        "attempts": 3,
        "finish_reason": "stop",
        "complete": False,
        "retry_reasons": ["no </think>", "no </think>"],
        "retry_tokens": 10,
    }
    assert retry_seed(7, 0) == 7 and retry_seed(7, 3) == 10 and retry_seed(None, 1) == 1


def test_a_retry_that_errors_keeps_the_answer_in_hand() -> None:
    def attempt(indices: Sequence[int], round_index: int) -> list[Attempt]:
        if round_index == 0:
            return [Attempt("<think>partial", "length", tokens=3)]
        return [Attempt("", error="server went away")]

    ((result, meta),) = generate_with_retries(1, attempt, thinking="tags", retries=5)
    assert result.text == "<think>partial" and result.error is None
    assert meta["attempts"] == 2 and meta["retry_error"] == "server went away" and not meta["complete"]


# --- the transformers adapter uses the same rule ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    return build_tiny_qwen3vl(tmp_path_factory.mktemp("models") / "tiny", seed=0)


def _tiny_card(checkpoint: Path, **decoding: object) -> ModelCard:
    return ModelCard.model_validate(
        {
            "name": "tiny-thinking",
            "adapter": "transformers",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "thinking": "tags",
            "decoding": {"max_new_tokens": 4, **decoding},
        }
    )


def _requests() -> list[GenerationRequest]:
    return [
        GenerationRequest(
            sample=Sample(sample_id=f"s{i}", task="t", image_paths=[]),
            prompt=f"Describe image {i}.",
            images=[Image.new("RGB", (128, 128), (i * 60, 90, 30))],
        )
        for i in range(2)
    ]


def test_transformers_adapter_retries_sampled_generations(tiny_checkpoint: Path) -> None:
    from evalkit.model_adapters.transformers_local import TransformersAdapter

    card = _tiny_card(tiny_checkpoint, temperature=1.0, seed=3, thinking_retries=2)
    results = TransformersAdapter(card, device="cpu").generate(_requests())
    # Four random tokens never close a thought: every request is tried 1 + 2 times, then kept as it is.
    for result in results:
        assert result.error is None
        assert result.meta["attempts"] == 3 and not result.meta["complete"]
        assert result.meta["retry_reasons"] == ["length", "length"]
        assert result.meta["finish_reason"] == "length" and result.tokens == 4
    again = TransformersAdapter(card, device="cpu").generate(_requests())
    assert [r.text for r in again] == [r.text for r in results], "retry seeds must make reruns repeat"


def test_transformers_adapter_skips_retries_when_greedy(tiny_checkpoint: Path) -> None:
    from evalkit.model_adapters.transformers_local import TransformersAdapter

    card = _tiny_card(tiny_checkpoint, temperature=0, thinking_retries=5)
    results = TransformersAdapter(card, device="cpu").generate(_requests())
    for result in results:
        assert result.meta["attempts"] == 1 and not result.meta["complete"]
        assert result.meta["retries_skipped"] == "greedy decoding repeats itself"
