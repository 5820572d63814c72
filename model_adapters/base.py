"""The adapter protocol every back end implements, and the request/result records the runner exchanges with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from evalkit.config import ModelCard, TaskSpec
from evalkit.sample import Sample


@dataclass
class GenerationRequest:
    """One prompt for one sample. Images are already decoded by the runner (so a corrupt file fails there)."""

    sample: Sample
    prompt: str
    images: list[Image.Image]
    system: str | None = None
    decoding: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationResult:
    text: str
    tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    """What the runner needs from a model back end.

    `generate` is batched: the runner hands over a batch of requests and expects one result per request, in order.
    An exception for one request should become `GenerationResult(error=...)`; if the whole call raises, the runner
    retries the batch one request at a time to isolate the bad sample.
    """

    card: ModelCard

    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        """Called once per task before generation (baselines fit their priors here)."""
        ...

    def fingerprint(self) -> str:
        """Identity of everything that changes outputs: checkpoint + revision, adapter, decoding, fitted state."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


def stable_hash(*parts: Any, length: int = 16) -> str:
    """Short sha256 of JSON-serialised parts; used for fingerprints and cache keys."""
    payload = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()[:length]


def card_fingerprint(card: ModelCard, extra: Any = None) -> str:
    """Fingerprint of a card's output-relevant settings; adapters add their own state via `extra`."""
    relevant = card.model_dump(exclude={"name", "description", "source", "public", "training"})
    return stable_hash(relevant, extra)
