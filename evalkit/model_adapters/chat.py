"""Chat requests shared by the chat back ends: message layout, sampling settings and image encoding.

The vLLM engine, OpenAI-compatible servers and transformers all receive the same conversation: an optional
system turn, then one user turn holding the images followed by the prompt text. Keeping this in one place is
what makes a card's prompt mean the same thing on every back end.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from evalkit.answers import smart_resize
from evalkit.config import ModelCard
from evalkit.model_adapters.base import GenerationRequest

DEFAULT_RESIZE_FACTOR = 28
# Qwen2-VL's processor defaults, used for the bound a card leaves open when it sets the other one.
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 16384 * 28 * 28


def decoding_for(card: ModelCard, request: GenerationRequest) -> dict[str, Any]:
    """Card decoding overridden by the request's non-null values (the task's `decoding` block)."""
    decoding = card.decoding.model_dump()
    decoding.update({k: v for k, v in (request.decoding or {}).items() if v is not None})
    return decoding


def chat_messages(
    request: GenerationRequest, card: ModelCard, image_part: Callable[[Image.Image], dict[str, Any]]
) -> list[dict[str, Any]]:
    """OpenAI-style messages for one request.

    Args:
        request: The runner's request (prompt, decoded images, system prompt).
        card: The model card. `options.image_text_separator` is put between the images and the prompt text:
            RadVLM-GRPO wrote its prompts as "<image>\\n<question>", so the text after the image starts with a
            newline for the models it evaluated.
        image_part: Turns one image into a content part (`{"type": "image"}` for a local processor,
            `image_pil` for vLLM, `image_url` with a data URL for HTTP servers).
    """
    messages: list[dict[str, Any]] = []
    system = request.system if request.system is not None else card.system_prompt
    if system:
        messages.append({"role": "system", "content": system})
    content: list[dict[str, Any]] = [image_part(image) for image in request.images]
    text = request.prompt
    if request.images:
        text = str(card.options.get("image_text_separator", "")) + text
    content.append({"type": "text", "text": text})
    messages.append({"role": "user", "content": content})
    return messages


def raw_prompt(request: GenerationRequest, card: ModelCard) -> str | None:
    """The card's `options.raw_prompt` filled in, for models used without a chat template; None otherwise.

    Pretrained (not instruction-tuned) checkpoints such as MedGemma-4B-pt take a plain prompt with an image
    token, e.g. "<start_of_image> findings:"; `{prompt}` in the template stands for the task's prompt.
    """
    template = card.options.get("raw_prompt")
    if not template:
        return None
    return str(template).replace("{prompt}", request.prompt)


def pixel_bounds(card: ModelCard) -> dict[str, int]:
    """The card's pixel limits as `smart_resize` keyword arguments; empty when the card sets none.

    A card that sets one bound gets Qwen2-VL's processor default for the other.
    """
    if card.image.min_pixels is None and card.image.max_pixels is None:
        return {}
    return {
        "min_pixels": int(card.image.min_pixels if card.image.min_pixels is not None else DEFAULT_MIN_PIXELS),
        "max_pixels": int(card.image.max_pixels if card.image.max_pixels is not None else DEFAULT_MAX_PIXELS),
    }


def resize_factor(card: ModelCard) -> int:
    """Patch size times merge size of the card's vision tower: 28 for Qwen2/2.5-VL, 32 for Qwen3-VL."""
    return int(card.options.get("resize_factor", DEFAULT_RESIZE_FACTOR))


def fit_to_card(image: Image.Image, card: ModelCard) -> Image.Image:
    """Resize an image the way the model's Qwen-VL processor would, so that a server's processor keeps it as is.

    A server has its own pixel limits, fixed when it was started; resizing on the client to the card's limits
    (with the processor's rule and its bicubic filter) makes the model see the same pixels whatever the server
    was started with. Cards without pixel limits get the image unchanged.
    """
    bounds = pixel_bounds(card)
    if not bounds:
        return image
    width, height = smart_resize(image.width, image.height, factor=resize_factor(card), **bounds)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.BICUBIC)


def png_data_url(image: Image.Image) -> str:
    """A lossless `data:image/png;base64,...` URL (JPEG would change the pixels the model sees)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def mm_processor_kwargs(card: ModelCard) -> dict[str, Any]:
    """The card's pixel limits as Qwen-VL processor kwargs: `size` with both edges, as transformers 5 wants
    (call-time `min_pixels`/`max_pixels` are deprecated there) and vLLM forwards to the processor."""
    bounds = pixel_bounds(card)
    if not bounds:
        return {}
    return {"size": {"shortest_edge": bounds["min_pixels"], "longest_edge": bounds["max_pixels"]}}
