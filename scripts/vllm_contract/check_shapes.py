"""vLLM's side of the per-card request-shape check (side environment with the pinned vLLM; no model, no GPU).

Reads the `shapes.json` that emit_shapes.py wrote and, for each card evalkit serves through vLLM, runs vLLM's own
request code that needs no model:
- the OpenAI chat body: `vllm.entrypoints.openai.chat_completion.protocol.ChatCompletionRequest.model_validate`
  (pydantic), `.to_sampling_params(max_tokens, {})` (with no server defaults, as `--generation-config vllm` gives),
  and each content part through `vllm.renderers.chat_utils._parse_chat_message_content_mm_part` (image data URLs
  decoded to the image vLLM receives);
- the offline engine's input: its chat content parts the same way, or, for a raw-prompt card, its keys against
  `vllm.inputs.llm.TextPrompt`; its `SamplingParams(**sampling_kwargs)`;
- its engine keyword arguments against the `EngineArgs` dataclass fields;
- GREEN's `/completions` body: `vllm.entrypoints.openai.completion.protocol.CompletionRequest`.
Writes `shapes.json` (the path given): the digested request shapes vLLM accepted and what it made of them.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

SAMPLING_FIELDS = ("n", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens", "seed")


def digest(value: Any) -> Any:
    """The same digest of `data:` URLs as emit_shapes.py's (so the CI test can compare shapes)."""
    if isinstance(value, dict):
        return {k: digest(v) for k, v in value.items()}
    if isinstance(value, list):
        return [digest(v) for v in value]
    if isinstance(value, str) and value.startswith("data:"):
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def decoded_size(url: str) -> list[int]:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        return [image.width, image.height]


def parse_parts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each content part as vLLM's chat parser reads it (type; text, or the decoded image's size)."""
    from vllm.renderers.chat_utils import _parse_chat_message_content_mm_part

    out = []
    for message in messages:
        content = message["content"]
        for part in [content] if isinstance(content, str) else content:
            if isinstance(part, str):
                out.append({"role": message["role"], "type": "text", "text": part})
                continue
            kind, value = _parse_chat_message_content_mm_part(part)
            item: dict[str, Any] = {"role": message["role"], "type": kind}
            if kind == "image_url":
                item["image_size"] = decoded_size(str(value))
            else:
                item["text"] = value
            out.append(item)
    return out


def sampling(params: Any) -> dict[str, Any]:
    return {name: getattr(params, name) for name in SAMPLING_FIELDS}


def check_card(shape: dict[str, Any]) -> dict[str, Any]:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import EngineArgs
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.inputs.llm import TextPrompt

    out = {"card": shape["card"], "family": shape["family"], "adapter": shape["adapter"]}
    if "no_vllm" in shape:
        return {**out, "no_vllm": shape["no_vllm"]}
    offline = shape["offline_input"]
    fields = {f.name for f in dataclasses.fields(EngineArgs)}
    out["engine_kwargs"] = shape["engine_kwargs"]
    out["unknown_engine_args"] = sorted(set(shape["engine_kwargs"]) - fields)
    if isinstance(offline, dict):  # raw prompt for LLM.generate
        unknown = sorted(set(offline) - set(TextPrompt.__annotations__) - {"multi_modal_data"})
        images = offline.get("multi_modal_data", {}).get("image")
        out["offline"] = {
            "input": digest(offline),
            "kind": "TextPrompt",
            "unknown_keys": unknown,
            "image_size": decoded_size(images) if isinstance(images, str) else None,
        }
    else:
        out["offline"] = {"input": digest(offline), "kind": "chat", "parts": parse_parts(offline)}
    out["offline"]["sampling_params"] = sampling(SamplingParams(**shape["sampling_kwargs"]))
    out["offline"]["sampling_kwargs"] = shape["sampling_kwargs"]
    if "chat_refused" in shape:
        out["chat_refused"] = shape["chat_refused"]
        return out
    body = shape["chat_body"]
    request = ChatCompletionRequest.model_validate(copy.deepcopy(body))
    out["chat"] = {
        "body": digest(body),
        "unknown_fields": sorted(set(body) - set(ChatCompletionRequest.model_fields)),
        "parts": parse_parts(body["messages"]),
        "sampling_params": sampling(request.to_sampling_params(body["max_tokens"], {})),
    }
    return out


def main() -> None:
    work, target = Path(sys.argv[1]), Path(sys.argv[2])
    import vllm
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest

    payload = json.loads((work / "shapes.json").read_text(encoding="utf-8"))
    green = payload["green_completions"]
    request = CompletionRequest.model_validate(dict(green))
    fixtures = {
        "vllm": vllm.__version__,
        "produced_by": "scripts/vllm_contract_check.sh (check_shapes.py: ChatCompletionRequest, "
        "_parse_chat_message_content_mm_part, TextPrompt, SamplingParams, EngineArgs fields, CompletionRequest)",
        "cards": [check_card(shape) for shape in payload["cards"]],
        "green_completions": {
            "body": green,
            "unknown_fields": sorted(set(green) - set(CompletionRequest.model_fields)),
            "sampling_params": sampling(request.to_sampling_params(green["max_tokens"], {})),
        },
    }
    target.write_text(json.dumps(fixtures, indent=1) + "\n", encoding="utf-8")
    served = [c["card"] for c in fixtures["cards"] if "no_vllm" not in c]
    print(f"check_shapes: vLLM {vllm.__version__} accepted {len(served)} cards' requests -> {target}")


if __name__ == "__main__":
    main()
