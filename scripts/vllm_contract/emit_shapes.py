"""evalkit's request shape for every shipped card (project venv): what the vLLM check validates per family.

For each card in evalkit/model_adapters/cards/*.yaml, by adapter:
- `vllm`: the offline engine's input (`VLLMAdapter.build_messages`, images as data URLs as a server gets them:
  chat messages, or the `{"prompt", "multi_modal_data"}` of a raw-prompt card), its `SamplingParams` keyword
  arguments (`sampling_kwargs`), its engine keyword arguments (`engine_kwargs`), and the chat-completions body of
  the OpenAI adapter (`OpenAIAdapter.request_body`, as sent to a vLLM server, card resize applied) or the error
  evalkit raises instead (a raw-prompt card cannot be served through chat completions);
- `external` / `baseline`: no request reaches vLLM (evalkit scores the model's own outputs / runs no model).
Image data URLs are replaced by `sha256:<digest of the URL>` in `shape()` so the fixtures stay small; the images
themselves go to vLLM in `requests`. Run by scripts/vllm_contract_check.sh;
tests/model_adapters/test_vllm_contract.py calls
`shapes()` and compares it with scripts/vllm_contract/shapes.json.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CARDS = ROOT / "evalkit" / "model_adapters" / "cards"
IMAGE_SIZE = (640, 768)  # a small radiograph-shaped image (the card's resize still applies)
PROMPT = "Describe the findings of this chest radiograph."
NO_VLLM = {
    "external": "adapter external: evalkit does not generate (the model's own code does; evalkit scores its JSONL)",
    "baseline": "adapter baseline: no model, no request",
    "transformers": "adapter transformers: generated in-process by transformers, not vLLM (its family, Qwen3-VL, "
    "is checked tiny)",
}


def load_cards() -> list[Any]:
    import yaml

    from evalkit.config import ModelCard

    return [
        ModelCard.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        for path in sorted(CARDS.glob("*.yaml"))
    ]


def image() -> Any:
    import numpy as np
    from PIL import Image

    width, height = IMAGE_SIZE
    ramp = (np.add.outer(np.arange(height) * 3, np.arange(width) * 5) % 251).astype(np.uint8)
    return Image.fromarray(ramp).convert("RGB")


def _digest_urls(value: Any) -> Any:
    """A copy with every `data:` URL replaced by the sha256 of the URL."""
    if isinstance(value, dict):
        return {k: _digest_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_digest_urls(v) for v in value]
    if isinstance(value, str) and value.startswith("data:"):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def _json_images(value: Any) -> Any:
    """A raw-prompt input's PIL images as PNG data URLs (the side script decodes them back to images)."""
    from PIL import Image

    from evalkit.model_adapters.chat import png_data_url

    if isinstance(value, dict):
        return {k: _json_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_images(v) for v in value]
    return png_data_url(value) if isinstance(value, Image.Image) else value


def requests(card: Any) -> dict[str, Any]:
    """What evalkit would hand vLLM for one card (full data URLs)."""
    from evalkit.errors import EvalkitError
    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.model_adapters.chat import decoding_for
    from evalkit.model_adapters.openai_server import OpenAIAdapter
    from evalkit.model_adapters.vllm_engine import VLLMAdapter, engine_kwargs, sampling_kwargs
    from evalkit.sample import Sample

    if card.adapter != "vllm":
        return {"card": card.name, "family": card.family, "adapter": card.adapter, "no_vllm": NO_VLLM[card.adapter]}
    request = GenerationRequest(Sample(card.name, "contract", ["image.png"]), PROMPT, [image()])
    decoding = decoding_for(card, request)
    if not card.public:  # weights not public: any existing folder stands in (the path is not part of the shape)
        card = card.model_copy(update={"checkpoint": str(ROOT)})
    offline = VLLMAdapter(card, engine=object(), image_transport="data_url")
    out: dict[str, Any] = {
        "card": card.name,
        "family": card.family,
        "adapter": card.adapter,
        "offline_input": _json_images(offline.build_messages(request)),
        "sampling_kwargs": sampling_kwargs(decoding, 0),
        "engine_kwargs": {k: v for k, v in engine_kwargs(card).items() if k != "model"},
    }
    try:
        server = OpenAIAdapter(card, endpoint="http://127.0.0.1:9/v1", served_model_name="contract")
    except EvalkitError as error:
        out["chat_refused"] = str(error)
        return out
    server.server_kind = "vllm"  # as the model listing of a vLLM server sets it
    messages = server._messages(request)
    if isinstance(messages, Exception):
        raise messages
    out["chat_body"] = server.request_body(messages, decoding, 0)
    return out


def shape(card: Any) -> dict[str, Any]:
    """`requests(card)` with data URLs digested: the form frozen in shapes.json."""
    return _digest_urls(copy.deepcopy(requests(card)))


def green_body() -> dict[str, Any]:
    """The `/completions` body of GREEN's `openai` back end (its judge's prompt, greedy)."""
    from evalkit.metrics.green import _ServerJudge, make_prompt

    judge = _ServerJudge("http://127.0.0.1:9/v1", "contract", 64, 1, 10.0)
    return judge.body(make_prompt("Small left pleural effusion.", "No effusion. Heart size normal."))


def shapes() -> list[dict[str, Any]]:
    return [shape(card) for card in load_cards()]


def main() -> None:
    work = Path(sys.argv[1])
    cards = [requests(card) for card in load_cards()]
    payload = {"cards": cards, "green_completions": green_body()}
    (work / "shapes.json").write_text(json.dumps(payload), encoding="utf-8")
    print(f"emit_shapes: {len(cards)} cards, {sum(1 for c in cards if c['adapter'] == 'vllm')} through vLLM")


if __name__ == "__main__":
    main()
