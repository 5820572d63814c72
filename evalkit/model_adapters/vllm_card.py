"""What a model card asks of vLLM, checked and resolved before any engine or server starts: engine arguments vLLM
knows, the checkpoint to pass as `model`, items per prompt. Shared by the offline engine (vllm_engine.py, which
re-exports these) and the managed server (vllm_server.py), so neither imports the other back."""

from __future__ import annotations

from pathlib import Path

from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.model_adapters.transformers_local import _looks_like_local_path


def check_engine_args(card: ModelCard) -> None:
    """Refuse `serving.engine_args` that vLLM's EngineArgs does not have, before anything is started."""
    from evalkit.model_adapters.vllm_engine_args import unknown_engine_args

    unknown, source = unknown_engine_args(card.serving.engine_args)
    if unknown:
        raise EvalkitError(
            f"model card '{card.name}': serving.engine_args {unknown} are not vLLM engine arguments ({source}); "
            "remove them (vLLM 0.32 dropped swap_space and disable_mm_preprocessor_cache: use "
            "mm_processor_cache_gb: 0 to turn the processor cache off)"
        )


def resolve_checkpoint(card: ModelCard) -> tuple[str, Path | None]:
    """(what to pass as `model`, the local directory if it is one); a missing local path is an error."""
    path = Path(card.checkpoint).expanduser()
    if path.is_dir():
        return str(path.resolve()), path
    how = "Copy the card, set 'checkpoint' to the local folder and pass the copy with --model."
    if not card.public:
        raise EvalkitError(
            f"model card '{card.name}': its weights are not public and '{card.checkpoint}' is not a folder here. "
            f"{card.description.strip()} {how}"
        )
    if path.exists() or _looks_like_local_path(card.checkpoint):
        raise EvalkitError(
            f"model card '{card.name}': checkpoint directory '{card.checkpoint}' not found "
            f"(resolved to {path.resolve()}). {how}"
        )
    return card.checkpoint, None


def mm_limits(card: ModelCard) -> dict[str, int]:
    """Items per prompt: the card's images, and no video (vLLM otherwise reserves encoder memory for a dummy
    video of its largest size when profiling)."""
    return {"image": int(card.options.get("max_images_per_prompt", 1)), "video": 0}
