"""Loading a Qwen3-VL processor without torchvision: an image-only processor class and a loader that uses it.

The stock `Qwen3VLProcessor` builds a video processor, which needs torchvision; evalkit never sends video, so a
subclass that passes none loads real checkpoints and the tiny test model (`evalkit.testing.tiny_qwen3vl`) alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROCESSOR_CLASS_NAME = "Qwen3VLImageOnlyProcessor"


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Silence transformers' progress bars ("Writing model shards") that only add noise for tiny models."""
    from transformers.utils import logging as hf_logging

    were_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if were_enabled:
            hf_logging.enable_progress_bar()


def _image_only_processor_class() -> type:
    """Qwen3-VL processor without a video processor: the stock one needs torchvision for its video half."""
    from transformers import Qwen3VLProcessor

    class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
        def __init__(self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None, **kwargs):
            # ProcessorMixin derives its sub-processors from this signature, so the video processor the parent
            # passes (None) is dropped and never saved or loaded.
            super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    Qwen3VLImageOnlyProcessor.__name__ = Qwen3VLImageOnlyProcessor.__qualname__ = PROCESSOR_CLASS_NAME
    return Qwen3VLImageOnlyProcessor


_PROCESSOR_CLASS: type | None = None


def image_only_processor_class() -> type:
    """The image-only Qwen3-VL processor class (created lazily, so importing this module stays cheap)."""
    global _PROCESSOR_CLASS
    if _PROCESSOR_CLASS is None:
        _PROCESSOR_CLASS = _image_only_processor_class()
    return _PROCESSOR_CLASS


def _saved_processor_class(path: Path) -> str | None:
    """The processor class named in a local checkpoint's processor/tokenizer config, if any."""
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = path / name
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8")).get("processor_class")
            except (OSError, ValueError):
                continue
            if value:
                return str(value)
    return None


def load_processor(path: str | Path, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """Load a checkpoint's processor, working around the stock Qwen3-VL processor's need for torchvision.

    A checkpoint saved by `build_tiny_qwen3vl` is loaded by its own class. Anything else goes through
    AutoProcessor; when that fails on the video half (ImportError without torchvision) or returns a bare
    tokenizer, the image-only processor is built from the same files, provided the checkpoint's image
    processor is a Qwen-VL one (it has a `merge_size`). Otherwise the original error is raised.
    """
    from transformers import AutoProcessor, PreTrainedTokenizerBase

    local = Path(path)
    if local.is_dir() and _saved_processor_class(local) == PROCESSOR_CLASS_NAME:
        return image_only_processor_class().from_pretrained(str(local))
    options = {"revision": revision, "trust_remote_code": trust_remote_code}
    auto_error: Exception | None = None
    try:
        processor = AutoProcessor.from_pretrained(str(path), **options)
        if not isinstance(processor, PreTrainedTokenizerBase):
            return processor
    except (ImportError, OSError, ValueError) as exc:
        auto_error = exc
    try:
        processor = image_only_processor_class().from_pretrained(str(path), **options)
    except (ImportError, OSError, ValueError, TypeError) as exc:
        if auto_error is not None:
            raise auto_error from exc
        raise ValueError(f"{path}: AutoProcessor found only a tokenizer, and no image processor: {exc}") from exc
    if not hasattr(processor.image_processor, "merge_size"):
        message = f"{path}: the image processor is not a Qwen-VL one ({type(processor.image_processor).__name__})"
        raise auto_error or ValueError(message)
    return processor
