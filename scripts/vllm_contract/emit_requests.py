"""evalkit's side of the vLLM contract check: what evalkit would send vLLM, written to a folder (project venv).

For a family evalkit builds tiny in the hub layout (`TINY`: Qwen3-VL with a card holding RadVLM-GRPO's pixel
budget; Qwen2.5-VL with the shipped deepmedix-r1 card pointed at it), seed 0, writes `requests.json`: the
`vllm serve` flags evalkit passes (`serve_command`), the engine keyword arguments of the offline adapter
(`engine_kwargs`) and, for each case, the chat-completions body evalkit's OpenAI adapter sends
(`OpenAIAdapter.request_body`, images resized to the card and sent as PNG data URLs), and the `/completions` body
of GREEN's `openai` back end (`_ServerJudge.body`).
Run by scripts/vllm_contract_check.sh; the CI test (tests/model_adapters/test_vllm_contract.py) calls `build()`,
`cases()` and
`card()`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# (name, image size): a phantom-sized image and radiograph-sized ones (portrait and landscape).
CASES: tuple[tuple[str, tuple[int, int]], ...] = (
    ("small-256", (256, 256)),
    ("radiograph-2500x3000", (2500, 3000)),
    ("radiograph-3072x2560", (3072, 2560)),
)
PROMPT = "Describe the findings of this chest radiograph."


# Families evalkit builds tiny, in the hub layout: (builder module, builder, the shipped card whose settings apply).
TINY: dict[str, tuple[str, str, str]] = {
    "qwen3-vl": ("evalkit.testing.tiny_qwen3vl", "build_tiny_qwen3vl", ""),
    "qwen2.5-vl": ("evalkit.testing.tiny_qwen25vl", "build_tiny_qwen25vl", "deepmedix-r1"),
    "gemma3": ("evalkit.testing.tiny_gemma3", "build_tiny_gemma3", "medgemma-27b-it"),
}


def build(family: str, folder: Path) -> Path:
    """The family's tiny checkpoint (seed 0) under `folder`."""
    import importlib

    module, function, _ = TINY[family]
    return Path(getattr(importlib.import_module(module), function)(folder / f"tiny-{family}", seed=0))


def card(checkpoint: Path, family: str = "qwen3-vl") -> Any:
    """The card the family is checked with: for Qwen3-VL a RadVLM-GRPO-budget card; otherwise the shipped card
    pointed at the tiny checkpoint (a short context and few new tokens: the tiny model's, not the card's)."""
    import yaml

    from evalkit.config import ModelCard

    shipped = TINY[family][2]
    if shipped:
        data = yaml.safe_load(
            (ROOT / "evalkit" / "model_adapters" / "cards" / f"{shipped}.yaml").read_text(encoding="utf-8")
        )
        data["checkpoint"] = str(checkpoint)
        data["decoding"]["max_new_tokens"] = 16
        data["serving"]["engine_args"] = {"max_model_len": 4096, "enforce_eager": True}
        return ModelCard.model_validate(data)
    return ModelCard.model_validate(
        {
            "name": "contract-tiny-qwen3vl",
            "adapter": "vllm",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "box_format": "qwen1000",
            "decoding": {"temperature": 0, "max_new_tokens": 16},
            "image": {"min_pixels": 1024, "max_pixels": 451584},
            "options": {"resize_factor": 32},
            "serving": {"engine_args": {"max_model_len": 4096, "enforce_eager": True}},
        }
    )


def image(size: tuple[int, int]) -> Any:
    """A deterministic grey gradient (PNG-lossless, so both sides decode the same pixels)."""
    import numpy as np
    from PIL import Image

    width, height = size
    ramp = (np.add.outer(np.arange(height) * 3, np.arange(width) * 5) % 251).astype(np.uint8)
    return Image.fromarray(ramp).convert("RGB")


def cases(checkpoint: Path, family: str = "qwen3-vl") -> list[dict[str, Any]]:
    """evalkit's request body for each case (the OpenAI adapter's, as sent to a vLLM server)."""
    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.model_adapters.chat import chat_messages, decoding_for
    from evalkit.model_adapters.openai_server import OpenAIAdapter
    from evalkit.sample import Sample

    the_card = card(checkpoint, family).model_copy(update={"adapter": "openai"})
    adapter = OpenAIAdapter(the_card, endpoint="http://127.0.0.1:9/v1", served_model_name="tiny")
    out = []
    for name, size in CASES:
        request = GenerationRequest(Sample(name, "contract", [f"{name}.png"]), PROMPT, [image(size)])
        messages = chat_messages(request, the_card, adapter._image_part)
        body = adapter.request_body(messages, decoding_for(the_card, request), 0)
        out.append({"name": name, "image_size": list(size), "body": body})
    return out


# Cards whose offline engine input is a raw prompt (`LLM.generate`, no chat template), checked on a family's tiny model.
RAW_PROMPT_CARDS: dict[str, str] = {"gemma3": "medgemma-4b-pt"}


def raw_prompts(checkpoint: Path, family: str) -> list[dict[str, Any]]:
    """The offline adapter's `{"prompt", "multi_modal_data"}` for the family's raw-prompt card (images as PNG data
    URLs; vLLM's side decodes them back), one per case."""
    import yaml

    from evalkit.config import ModelCard
    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.model_adapters.chat import png_data_url
    from evalkit.model_adapters.vllm_engine import VLLMAdapter, engine_kwargs
    from evalkit.sample import Sample

    if family not in RAW_PROMPT_CARDS:
        return []
    path = ROOT / "evalkit" / "model_adapters" / "cards" / f"{RAW_PROMPT_CARDS[family]}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["checkpoint"] = str(checkpoint)
    data["serving"]["engine_args"] = {"max_model_len": 4096, "enforce_eager": True}
    the_card = ModelCard.model_validate(data)
    adapter = VLLMAdapter(the_card, engine=object())
    kwargs = {k: v for k, v in engine_kwargs(the_card).items() if k != "model"}
    out = []
    for name, size in CASES:
        item = adapter.build_messages(
            GenerationRequest(Sample(name, "contract", [f"{name}.png"]), PROMPT, [image(size)])
        )
        item["multi_modal_data"] = {"image": png_data_url(item["multi_modal_data"]["image"])}
        out.append(
            {"name": name, "card": the_card.name, "image_size": list(size), "input": item, "engine_kwargs": kwargs}
        )
    return out


def green_body() -> dict[str, Any]:
    """The body GREEN's `openai` back end posts to `/completions` (its judge's chat template, greedy)."""
    from evalkit.metrics.green import _ServerJudge, make_prompt

    judge = _ServerJudge("http://127.0.0.1:9/v1", "tiny", 64, 1, 10.0)
    return judge.body(make_prompt("Small left pleural effusion.", "No effusion. Heart size normal."))


def main() -> None:
    """`emit_requests.py WORK [FAMILY]`: FAMILY (default qwen3-vl) is one of TINY."""
    from evalkit.model_adapters.vllm_engine import engine_kwargs
    from evalkit.model_adapters.vllm_server import serve_command

    work = Path(sys.argv[1])
    family = sys.argv[2] if len(sys.argv) > 2 else "qwen3-vl"
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = build(family, work)
    the_card = card(checkpoint, family)
    command = serve_command(the_card, str(checkpoint), 0, "tiny")
    flags = command[command.index("serve") + 2 :]
    for option in ("--host", "--port"):  # the render server gets its own
        at = flags.index(option)
        del flags[at : at + 2]
    kwargs = {k: v for k, v in engine_kwargs(the_card).items() if k != "model"}
    payload = {
        "checkpoint": str(checkpoint),
        "serve_flags": flags,
        "engine_kwargs": kwargs,
        "cases": cases(checkpoint, family),
        "completions": [{"name": "green", "body": green_body()}],
        "raw_prompts": raw_prompts(checkpoint, family),
    }
    (work / "requests.json").write_text(json.dumps(payload), encoding="utf-8")
    print(f"emit_requests: {len(payload['cases'])} cases, flags {' '.join(flags)}")


if __name__ == "__main__":
    main()
