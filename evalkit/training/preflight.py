"""Training pre-flight: what a recipe needs, worked out from the card, the recipe and the checkpoint's config files
(never its weights), printed, and refused before anything large is loaded when it cannot fit.

- image tokens per sample: the Qwen-VL resize rule with the card's pixel budget (else the checkpoint's own
  processor bounds) on each training image's header;
- sequence length: prompt text + image tokens (+ the SFT target, or GRPO's `max_completion_length`), against
  `sft.max_length` (TRL truncates image placeholders and stops) or vLLM's `max_model_len`;
- for GRPO with vLLM: the KV cache of one `max_model_len` sequence (vLLM refuses to start without it) against
  GPU memory x `vllm_gpu_memory_utilization` minus the weights.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.answers import smart_resize
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.training.config import TrainConfig

GIB = 1024**3
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# A hub Qwen3-VL's context (vLLM sizes its KV cache from it unless max_model_len is given).
_DEFAULT_CONTEXT = 262144


@dataclass
class Preflight:
    """The numbers the pre-flight worked out; `problems` lists what cannot fit (each with its fix)."""

    samples: int
    image_tokens_max: int
    image_tokens_mean: float
    prompt_tokens_max: int
    sequence_tokens_max: int
    sequence_limit: int | None
    pixel_budget: dict[str, int] | None
    kv_bytes_per_token: int | None = None
    kv_need_bytes: int | None = None
    kv_budget_bytes: int | None = None
    gpu_memory_bytes: int | None = None
    weight_bytes: int | None = None
    max_model_len: int | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        budget = (
            f"{self.pixel_budget['shortest_edge']:,}..{self.pixel_budget['longest_edge']:,} pixels"
            if self.pixel_budget
            else "none (the checkpoint processor's own bounds)"
        )
        out = [
            f"pre-flight: {self.samples} samples; pixel budget {budget}",
            f"  image tokens per sample: max {self.image_tokens_max:,}, mean {self.image_tokens_mean:,.0f}",
            f"  prompt tokens (text + image): max {self.prompt_tokens_max:,}",
            f"  sequence (prompt + completion): max {self.sequence_tokens_max:,}"
            + (f" of {self.sequence_limit:,} allowed" if self.sequence_limit else ""),
        ]
        if self.kv_bytes_per_token is not None:
            out.append(
                f"  vLLM: max_model_len {self.max_model_len:,}; KV cache {self.kv_bytes_per_token / 1024:,.0f} KiB per "
                f"token, {_gib(self.kv_need_bytes)} for one full sequence"
            )
            if self.kv_budget_bytes is not None:
                out.append(
                    f"  vLLM memory: {_gib(self.gpu_memory_bytes)} GPU x utilization - {_gib(self.weight_bytes)} "
                    f"weights = {_gib(self.kv_budget_bytes)} for the KV cache"
                )
        out += [f"  note: {n}" for n in self.notes]
        return out


def _gib(value: int | None) -> str:
    return "?" if value is None else f"{value / GIB:.1f} GiB"


def _local_file(checkpoint: str, name: str, revision: str | None) -> Path | None:
    local = Path(checkpoint) / name
    if local.is_file():
        return local
    if Path(checkpoint).is_dir():
        return None
    try:
        from transformers.utils import cached_file

        found = cached_file(
            checkpoint, name, revision=revision, _raise_exceptions_for_missing_entries=False, local_files_only=True
        )
    except (OSError, ValueError, ImportError):
        return None
    return Path(found) if found else None


def _json(checkpoint: str, name: str, revision: str | None) -> dict[str, Any] | None:
    path = _local_file(checkpoint, name, revision)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _image_settings(checkpoint: str, revision: str | None) -> dict[str, Any] | None:
    """The checkpoint's Qwen-VL image processor settings (flat hub file, or nested in processor_config.json)."""
    flat = _json(checkpoint, "preprocessor_config.json", revision)
    if flat and "merge_size" in flat:
        return flat
    nested = (_json(checkpoint, "processor_config.json", revision) or {}).get("image_processor")
    return nested if isinstance(nested, dict) and "merge_size" in nested else None


def image_tokens(size: tuple[int, int], settings: dict[str, Any], budget: dict[str, int] | None) -> int:
    """Image placeholder tokens a Qwen-VL processor emits for an image of `size` (width, height)."""
    bounds = budget or settings.get("size") or {}
    patch, merge = int(settings.get("patch_size", 16)), int(settings.get("merge_size", 2))
    factor = patch * merge
    low = int(bounds.get("shortest_edge") or settings.get("min_pixels") or 56 * 56)
    high = int(bounds.get("longest_edge") or settings.get("max_pixels") or 28 * 28 * 1280)
    width, height = smart_resize(size[0], size[1], factor=factor, min_pixels=low, max_pixels=high)
    return (width // factor) * (height // factor)


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    text = config.get("text_config")
    return {**config, **text} if isinstance(text, dict) else config


def kv_bytes_per_token(config: dict[str, Any], dtype_bytes: int) -> int:
    """K and V for every layer and KV head (the full-attention layout of Qwen-VL decoders)."""
    text = _text_config(config)
    layers = int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or int(text["hidden_size"]) // heads)
    return 2 * layers * kv_heads * head_dim * dtype_bytes


def estimated_parameters(config: dict[str, Any]) -> int:
    """Parameter count from the config alone (decoder, embeddings, vision tower), for checkpoints not on disk."""
    text = _text_config(config)
    hidden, layers = int(text["hidden_size"]), int(text["num_hidden_layers"])
    heads = int(text["num_attention_heads"])
    kv_heads = int(text.get("num_key_value_heads") or heads)
    head_dim = int(text.get("head_dim") or hidden // heads)
    inter = int(text.get("intermediate_size") or 4 * hidden)
    vocab = int(text.get("vocab_size") or 0)
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    total = layers * (attention + 3 * hidden * inter) + vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    vision = config.get("vision_config")
    if isinstance(vision, dict) and vision.get("hidden_size"):
        v_hidden, v_depth = int(vision["hidden_size"]), int(vision.get("depth") or 0)
        v_inter = int(vision.get("intermediate_size") or 4 * v_hidden)
        total += v_depth * (4 * v_hidden * v_hidden + 2 * v_hidden * v_inter)
    return total


def weight_bytes(checkpoint: str, revision: str | None, config: dict[str, Any], dtype_bytes: int) -> int:
    """The weights' size in the training dtype: the safetensors index's total (rescaled), else the estimate."""
    index = _json(checkpoint, "model.safetensors.index.json", revision)
    stored = (index or {}).get("metadata", {}).get("total_size")
    if stored is None and Path(checkpoint).is_dir():
        files = list(Path(checkpoint).glob("*.safetensors"))
        stored = sum(f.stat().st_size for f in files) or None
    source_dtype = str(_text_config(config).get("dtype") or config.get("torch_dtype") or "bfloat16")
    if stored is not None:
        return int(int(stored) * dtype_bytes / _DTYPE_BYTES.get(source_dtype, 2))
    return estimated_parameters(config) * dtype_bytes


def _gpu_memory(config: TrainConfig) -> int | None:
    if config.train.gpu_memory_gib is not None:
        return int(config.train.gpu_memory_gib * GIB)
    try:
        import torch

        if torch.cuda.is_available():
            return int(torch.cuda.get_device_properties(0).total_memory)
    except ImportError:
        pass
    return None


def _text_tokens(tokenizer: Any, rows: list[dict[str, Any]], key: str) -> list[int]:
    """Tokens of each row's messages (`prompt` or `completion`), plus a few for each message's chat markup."""
    texts = []
    for row in rows:
        messages = row.get(key) or []
        texts.append(" ".join(str(m.get("content", "")) for m in messages if isinstance(m, dict)))
    if tokenizer is None:  # no tokenizer files: a conservative 1 token per 2 characters, plus chat markup
        return [len(t) // 2 + 16 for t in texts]
    encoded = tokenizer.encode_batch(texts, add_special_tokens=False)
    return [len(e.ids) + 8 * len(row.get(key) or []) for e, row in zip(encoded, rows, strict=True)]


def _tokenizer(checkpoint: str, revision: str | None) -> Any:
    """The fast tokenizer from `tokenizer.json` alone (the `tokenizers` library: no transformers import)."""
    path = _local_file(checkpoint, "tokenizer.json", revision)
    if path is None:
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    except Exception:  # a damaged or foreign tokenizer file only loses the count
        return None


def run_preflight(config: TrainConfig, card: ModelCard, rows: list[dict[str, Any]]) -> Preflight:
    """Work out the numbers for `rows` (the built training rows); raise EvalkitError with them when it cannot fit."""
    from evalkit.images import image_size
    from evalkit.training.modeling import half_precision_master_weights, pixel_budget

    spec = config.model
    budget = pixel_budget(card)
    settings = _image_settings(spec.checkpoint, spec.revision)
    model_config = _json(spec.checkpoint, "config.json", spec.revision)
    tokenizer = _tokenizer(spec.checkpoint, spec.revision)

    per_sample = []
    if settings is not None:
        for row in rows:
            tokens = 0
            for path in row.get("images") or []:
                tokens += image_tokens(image_size(str(path)), settings, budget)
            per_sample.append(tokens)
    else:
        per_sample = [0 for _ in rows]
    prompt_text = _text_tokens(tokenizer, rows, "prompt")
    prompts = [text + image for text, image in zip(prompt_text, per_sample, strict=True)]
    if config.recipe == "sft":
        completions = _text_tokens(tokenizer, rows, "completion")
        sequences = [p + c for p, c in zip(prompts, completions, strict=True)]
        limit = config.sft.max_length if config.sft else None
    else:
        assert config.grpo is not None
        sequences = [p + config.grpo.max_completion_length for p in prompts]
        limit = None
    report = Preflight(
        samples=len(rows),
        image_tokens_max=max(per_sample, default=0),
        image_tokens_mean=sum(per_sample) / max(1, len(per_sample)),
        prompt_tokens_max=max(prompts, default=0),
        sequence_tokens_max=max(sequences, default=0),
        sequence_limit=limit,
        pixel_budget=budget,
    )
    if settings is None:
        report.notes.append("no Qwen-VL image processor config found: image tokens not counted")
    if tokenizer is None:
        report.notes.append("no tokenizer files found locally: text tokens estimated (2 characters per token)")
    fix_budget = "set the card's image.max_pixels (model.card_overrides.image.max_pixels, e.g. 451584)"
    if limit is not None and report.prompt_tokens_max > limit:
        report.problems.append(
            f"sft.max_length {limit:,} is below the longest prompt ({report.prompt_tokens_max:,} tokens, "
            f"{report.image_tokens_max:,} of them image tokens): TRL would truncate image placeholders and stop. "
            f"Fix: {fix_budget}, or raise sft.max_length"
        )
    if config.model.dtype in ("bfloat16", "float16") and half_precision_master_weights(config):
        report.problems.append(
            f"model.dtype {config.model.dtype} with a full fine-tune and no DeepSpeed: AdamW would update "
            f"{config.model.dtype} weights in place, and a step below 2^-8 of a weight (lr "
            f"{config.train.learning_rate:g}: nearly all of them) is rounded away. Fix: model.dtype float32 with "
            "train.bf16 true (fp32 master weights, bf16 compute), or DeepSpeed (accelerate launch --config_file "
            "evalkit/training/configs/accelerate/zero3.yaml, or train.deepspeed), or lora.enabled true"
        )
    if config.grpo is not None and config.grpo.use_vllm:
        _check_vllm(config, model_config, report)
    _print(report)
    if report.problems:
        raise EvalkitError("training pre-flight: " + " | ".join(report.problems) + " (numbers above)")
    return report


def _check_vllm(config: TrainConfig, model_config: dict[str, Any] | None, report: Preflight) -> None:
    grpo = config.grpo
    assert grpo is not None
    if model_config is None:
        report.notes.append("no config.json found locally: vLLM's KV cache not checked")
        return
    text = _text_config(model_config)
    context = int(text.get("max_position_embeddings") or _DEFAULT_CONTEXT)
    report.max_model_len = grpo.vllm_max_model_length or context
    dtype = config.model.dtype if config.model.dtype != "auto" else "bfloat16"
    dtype_bytes = _DTYPE_BYTES[dtype]
    report.kv_bytes_per_token = kv_bytes_per_token(model_config, dtype_bytes)
    report.kv_need_bytes = report.kv_bytes_per_token * report.max_model_len
    if report.sequence_tokens_max > report.max_model_len:
        report.problems.append(
            f"grpo.vllm_max_model_length {report.max_model_len:,} is below the longest prompt + completion "
            f"({report.sequence_tokens_max:,} tokens). Fix: raise it to at least {report.sequence_tokens_max:,}, "
            "or lower grpo.max_completion_length or the card's image.max_pixels"
        )
    if grpo.vllm_mode != "colocate":
        report.notes.append("vllm_mode server: the server's GPU memory is not checked here")
        return
    gpu = _gpu_memory(config)
    if gpu is None:
        report.notes.append("no GPU visible and train.gpu_memory_gib unset: vLLM's memory budget not checked")
        return
    report.gpu_memory_bytes = gpu
    report.weight_bytes = weight_bytes(config.model.checkpoint, config.model.revision, model_config, dtype_bytes)
    report.kv_budget_bytes = int(gpu * grpo.vllm_gpu_memory_utilization) - report.weight_bytes
    if report.kv_need_bytes > report.kv_budget_bytes:
        fitting = max(0, report.kv_budget_bytes) // report.kv_bytes_per_token
        needed = math.ceil((report.kv_need_bytes + report.weight_bytes) / gpu * 100) / 100
        report.problems.append(
            f"vLLM needs {_gib(report.kv_need_bytes)} of KV cache for one {report.max_model_len:,}-token sequence "
            f"but has {_gib(report.kv_budget_bytes)} ({_gib(gpu)} x vllm_gpu_memory_utilization "
            f"{grpo.vllm_gpu_memory_utilization} - {_gib(report.weight_bytes)} weights). Fix: set "
            f"grpo.vllm_max_model_length to at most {fitting:,} (the longest sequence here is "
            f"{report.sequence_tokens_max:,}), or raise grpo.vllm_gpu_memory_utilization to at least {needed}"
        )


def _print(report: Preflight) -> None:
    import os

    if os.environ.get("RANK", "0") == "0":  # once per run under `accelerate launch`
        print("\n".join(report.lines()), file=sys.stderr, flush=True)
