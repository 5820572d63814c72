"""Thinking models: when a generation is retried, with which seed, and how the retries are recorded.

One implementation for every back end (vLLM, OpenAI-compatible servers, transformers), so a card's
`thinking_retries` means the same thing whichever adapter runs it.

The rule follows RadVLM-GRPO's evaluation (`_needs_retry_r1` in `radvlm/evaluation/models_loading_inference.py`):
a generation is regenerated when it stopped at the length cap, or when a thinking model's output has no
`</think>`; only the requests that failed are resubmitted, up to the card's limit. The answer is the text after
the last `</think>` (`evalkit.answers.split_thinking`); the stored text keeps the whole output, trace included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.answers import split_thinking

THINK_END = "</think>"
# vLLM says "length"; other servers and older engines use these for the same thing.
LENGTH_REASONS: frozenset[str] = frozenset({"length", "max_length", "max_length_exceeded", "max_tokens"})


@dataclass
class Attempt:
    """One generation for one request, as a back end reports it."""

    text: str
    finish_reason: str | None = None
    tokens: int | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def retry_reason(attempt: Attempt, thinking: str) -> str | None:
    """Why this attempt should be generated again, or None when it is complete.

    Args:
        attempt: The generation to judge. Errors are never retried here (the adapter's own retry and the
            runner's per-sample error handling deal with them).
        thinking: The card's thinking mode; `none` disables the `</think>` check (a length cut still counts).
    """
    if attempt.error is not None:
        return None
    if (attempt.finish_reason or "").lower() in LENGTH_REASONS:
        return "length"
    if thinking != "none" and THINK_END not in attempt.text:
        return "no </think>"
    return None


def retry_seed(seed: int | None, round_index: int) -> int:
    """Seed of retry round `round_index` (0 = first try): a new seed each round, the same one on every rerun."""
    return int(seed or 0) + round_index


def answer_text(text: str, thinking: str) -> str:
    """The answer part of a raw output: the text after the last `</think>` (empty if thinking never closed)."""
    return split_thinking(text, "tags" if thinking == "none" else thinking)[0]


def generate_with_retries(
    count: int,
    attempt: Callable[[Sequence[int], int], Sequence[Attempt]],
    *,
    thinking: str,
    retries: int,
) -> list[tuple[Attempt, dict[str, Any]]]:
    """Generate `count` requests, then regenerate the incomplete ones up to `retries` times.

    Args:
        count: Number of requests.
        attempt: `attempt(indices, round_index)` generates the requests at `indices` (positions in the original
            batch) and returns one Attempt each, in order. Round 0 is the first try; a back end derives the
            round's seed with `retry_seed`, so a retry is a fresh draw, yet a rerun repeats it.
        thinking: The card's thinking mode (see `retry_reason`).
        retries: The card's `thinking_retries`; 0 turns retries off.

    Returns:
        One (final attempt, meta) per request, in order. `meta` records `attempts` (1 + retries used),
        `retry_reasons` (why each earlier attempt was rejected), `finish_reason`, `complete` (False when the last
        attempt still failed the rule) and `retry_tokens` (tokens spent on rejected attempts).
    """
    results = list(attempt(list(range(count)), 0))
    if len(results) != count:
        raise RuntimeError(f"back end returned {len(results)} attempts for {count} requests")
    reasons: list[list[str]] = [[] for _ in range(count)]
    spent: list[int] = [0] * count
    pending = [i for i in range(count) if retry_reason(results[i], thinking) is not None]
    for round_index in range(1, max(0, retries) + 1):
        if not pending:
            break
        again = list(attempt(pending, round_index))
        if len(again) != len(pending):
            raise RuntimeError(f"back end returned {len(again)} attempts for {len(pending)} retried requests")
        still: list[int] = []
        for index, new in zip(pending, again, strict=True):
            old = results[index]
            reasons[index].append(retry_reason(old, thinking) or "")
            spent[index] += old.tokens or 0
            if new.error is not None:
                # A retry that errors does not erase the incomplete answer already in hand; stop retrying it.
                old.meta["retry_error"] = new.error
                continue
            results[index] = new
            if retry_reason(new, thinking) is not None:
                still.append(index)
        pending = still
    final: list[tuple[Attempt, dict[str, Any]]] = []
    for index, result in enumerate(results):
        meta: dict[str, Any] = {
            "attempts": 1 + len(reasons[index]),
            "finish_reason": result.finish_reason,
            "complete": retry_reason(result, thinking) is None,
        }
        if reasons[index]:
            meta["retry_reasons"] = reasons[index]
            meta["retry_tokens"] = spent[index]
        meta.update(result.meta)
        final.append((result, meta))
    return final
