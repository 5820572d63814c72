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
    # Optional attributes the runner reads: `needs_images = False` (no image is opened at all: predictions made
    # elsewhere) and `reads_pixels = False` (only the image size is needed: its header is read, nothing decoded,
    # and `GenerationRequest.images` is empty). Optional method: `load()`, called once before the first batch
    # is generated (and only if one is): adapters that defer loading weights or fitting to it cost nothing on a
    # rerun whose samples are all stored, and a failure there stops the run instead of failing every sample.

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


# Card fields that never change what a model outputs. `serving` (tensor/data parallel sizes, endpoint, concurrency)
# is left out so that one checkpoint run at TP 4 and at TP 1, or through two servers, shares one run and one cache;
# adapters put the output-relevant serving settings (`engine_args`, `extra_body`) into `extra` themselves.
NON_IDENTITY_FIELDS: frozenset[str] = frozenset(
    # answer_convention / radvlm_path change how outputs are read, not the outputs: the run identity holds them
    # where they take effect (evalkit.profiles.parsing_identity)
    {
        "name",
        "description",
        "source",
        "public",
        "training",
        "serving",
        "reference",
        "published_as",
        "lineage",
        "answer_convention",
        "radvlm_path",
    }
)


# The shipped checkpoints moved from model_adapters/checkpoints/ to evalkit/model_adapters/checkpoints/ (in a checkout
# and in site-packages alike); their identity keeps the folder they had, so databases made before reuse their runs.
_SHIPPED_FOLDER = {
    sep: (
        sep.join(("", "evalkit", "model_adapters", "checkpoints", "")),
        sep.join(("", "model_adapters", "checkpoints", "")),
    )
    for sep in "/\\"
}


def card_fingerprint(card: ModelCard, extra: Any = None) -> str:
    """Fingerprint of a card's output-relevant settings; adapters add their own state via `extra`."""
    relevant = card.model_dump(exclude=set(NON_IDENTITY_FIELDS))
    checkpoint = relevant.get("checkpoint")
    for now, before in _SHIPPED_FOLDER.values() if isinstance(checkpoint, str) else ():
        relevant["checkpoint"] = checkpoint = checkpoint.replace(now, before)
    return stable_hash(relevant, extra)


def card_with_overrides(
    card: ModelCard,
    *,
    adapter: str | None = None,
    tensor_parallel_size: int | None = None,
    data_parallel_size: int | None = None,
    max_pixels: int | None = None,
    endpoint: str | None = None,
) -> ModelCard:
    """The card with command-line overrides applied, validated like a card read from YAML.

    Args:
        card: The card as loaded from its file.
        adapter: Back end to use instead of the card's (vllm | openai | transformers).
        tensor_parallel_size: vLLM tensor parallel size (speed only: not part of the fingerprint).
        data_parallel_size: vLLM data parallel size (speed only: not part of the fingerprint).
        max_pixels: Image pixel cap (changes what the model sees, so it is part of the fingerprint).
        endpoint: OpenAI-compatible base URL.
    """
    from pydantic import ValidationError

    from evalkit.errors import EvalkitError
    from evalkit.model_adapters.registry import GENERATING_ADAPTERS

    if adapter is not None and adapter not in GENERATING_ADAPTERS:
        raise EvalkitError(f"--adapter must be one of {', '.join(GENERATING_ADAPTERS)}, not '{adapter}'")
    if adapter is not None and card.adapter not in GENERATING_ADAPTERS:
        kind = "a weight-free baseline" if card.adapter == "baseline" else "run with its own inference code"
        raise EvalkitError(f"model '{card.name}' is {kind}; --adapter applies to cards of vllm/openai/transformers")
    data = card.model_dump()
    if adapter is not None:
        data["adapter"] = adapter
    serving = data["serving"]
    if tensor_parallel_size is not None:
        serving["tensor_parallel_size"] = tensor_parallel_size
    if data_parallel_size is not None:
        serving["data_parallel_size"] = data_parallel_size
    if endpoint is not None:
        serving["endpoint"] = endpoint
    if max_pixels is not None:
        data["image"]["max_pixels"] = max_pixels
        min_pixels = data["image"].get("min_pixels")
        if min_pixels is not None and min_pixels > max_pixels:
            raise EvalkitError(f"--max-pixels {max_pixels} is below the card's min_pixels {min_pixels}")
    try:
        return ModelCard.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise EvalkitError(f"model '{card.name}': invalid override: {problems}") from None
