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
# What the hub's Qwen3-VL checkpoints name, and what vLLM and stock transformers load.
HUB_PROCESSOR_CLASS = "Qwen3VLProcessor"
HUB_IMAGE_PROCESSOR_TYPE = "Qwen2VLImageProcessorFast"
HUB_VIDEO_PROCESSOR_TYPE = "Qwen3VLVideoProcessor"
# The hub's Qwen3-VL video pixel bounds (evalkit sends no video; vLLM still builds the video processor).
HUB_VIDEO_SIZE = {"shortest_edge": 4096, "longest_edge": 25165824}


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


def set_pixel_budget(processor: Any, min_pixels: int | None, max_pixels: int | None) -> dict[str, int] | None:
    """Make a Qwen-VL processor resize every image into [min_pixels, max_pixels] (its `size`), so a trainer that
    calls the processor without size arguments (TRL's collators) and the saved processor config both keep it.

    Returns the size set, or None when the processor is not a Qwen-VL one or no bound is given.
    """
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None or not hasattr(image_processor, "merge_size"):
        return None
    if min_pixels is None and max_pixels is None:
        return None
    current = getattr(image_processor, "size", None)
    size = dict(current or {})
    size = {k: v for k, v in size.items() if k in ("shortest_edge", "longest_edge") and v is not None}
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    from transformers.image_utils import SizeDict

    # The type the processor keeps (SizeDict in transformers 5's processors, a plain dict in older ones).
    image_processor.size = dict(size) if isinstance(current, dict) else SizeDict(**size)
    for name in ("min_pixels", "max_pixels"):  # older processors read these attributes instead of `size`
        if hasattr(image_processor, name) and getattr(image_processor, name) is not None:
            setattr(image_processor, name, size["shortest_edge" if name == "min_pixels" else "longest_edge"])
    return size


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_hub_layout(folder: str | Path, size: dict[str, int] | None = None) -> bool:
    """Rewrite a saved Qwen3-VL processor into the hub's layout, which vLLM and stock transformers load.

    evalkit saves its image-only processor (no torchvision here): that names `Qwen3VLImageOnlyProcessor` and nests
    the image processor in `processor_config.json`. The hub layout is a flat `preprocessor_config.json` and a
    `video_preprocessor_config.json`, both naming `Qwen3VLProcessor`. `size` (a pixel budget) is written into the
    image processor config whatever the layout was. Returns False (and changes nothing) for other processors.
    """
    folder = Path(folder)
    processor_file = folder / "processor_config.json"
    preprocessor_file = folder / "preprocessor_config.json"
    nested = _read_json(processor_file) or {}
    image = nested.get("image_processor") if isinstance(nested.get("image_processor"), dict) else None
    image = dict(image) if image is not None else _read_json(preprocessor_file)
    if image is None or "merge_size" not in image:
        return False
    converted = nested.get("processor_class") == PROCESSOR_CLASS_NAME or image.get("processor_class") in (
        None,
        PROCESSOR_CLASS_NAME,
    )
    if converted:
        image["processor_class"] = HUB_PROCESSOR_CLASS
        if image.get("image_processor_type") in (None, "Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil"):
            image["image_processor_type"] = HUB_IMAGE_PROCESSOR_TYPE
    if size:
        image["size"] = {"shortest_edge": int(size["shortest_edge"]), "longest_edge": int(size["longest_edge"])}
        for name, key in (("min_pixels", "shortest_edge"), ("max_pixels", "longest_edge")):
            if image.get(name) is not None:
                image[name] = image["size"][key]
    _write_json(preprocessor_file, image)
    if "image_processor" in nested:
        rest = {k: v for k, v in nested.items() if k != "image_processor"}
        if converted:
            rest["processor_class"] = HUB_PROCESSOR_CLASS
        if set(rest) - {"processor_class"}:
            _write_json(processor_file, rest)
        else:
            processor_file.unlink()
    video_file = folder / "video_preprocessor_config.json"
    if not video_file.is_file():
        video = {k: image[k] for k in ("patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")}
        video.update(
            size=dict(HUB_VIDEO_SIZE),
            processor_class=HUB_PROCESSOR_CLASS,
            video_processor_type=HUB_VIDEO_PROCESSOR_TYPE,
            do_sample_frames=True,
            fps=2,
        )
        _write_json(video_file, video)
    tokenizer_file = folder / "tokenizer_config.json"
    tokenizer = _read_json(tokenizer_file)
    if tokenizer is not None and tokenizer.get("processor_class") == PROCESSOR_CLASS_NAME:
        tokenizer["processor_class"] = HUB_PROCESSOR_CLASS
        tokenizer_file.write_text(json.dumps(tokenizer, indent=2), encoding="utf-8")
    return True
