"""Local Hugging Face transformers back end for Qwen3-VL-style chat models (CPU tests, small GPU runs).

torch and transformers are imported inside the adapter, so importing this module stays cheap for the CLI and
for runs that use another back end.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.sample import Sample
from model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash

# Files whose content defines what a checkpoint outputs (besides the weights, which are summarised cheaply).
_CONFIG_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "chat_template.jinja",
    "chat_template.json",
)
_WEIGHT_SUFFIXES: tuple[str, ...] = (".safetensors", ".bin", ".pt", ".pth")
_WEIGHT_HEAD_BYTES = 1 << 20


def _looks_like_local_path(checkpoint: str) -> bool:
    """Hub ids are `name` or `org/name`; anything else (./x, /x, ~/x, a/b/c) can only be a local path."""
    return checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1 or "\\" in checkpoint


def checkpoint_digest(path: Path) -> dict[str, Any]:
    """Cheap content identity of a local checkpoint: config files in full, weights by size + first MB.

    Hashing the first megabyte (which holds the safetensors header and the first tensors) distinguishes two
    checkpoints saved to the same path without reading gigabytes of weights on every run.
    """
    digest: dict[str, Any] = {}
    for name in _CONFIG_FILES:
        file = path / name
        if file.is_file():
            digest[name] = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
    for file in sorted(path.iterdir()):
        if file.is_file() and file.name.endswith(_WEIGHT_SUFFIXES):
            with file.open("rb") as handle:
                head = handle.read(_WEIGHT_HEAD_BYTES)
            digest[file.name] = {"size": file.stat().st_size, "head": hashlib.sha256(head).hexdigest()[:16]}
    return digest


def _decoding_for(card: ModelCard, request: GenerationRequest) -> dict[str, Any]:
    """Card decoding overridden by the request's non-null values (the task's `decoding` block)."""
    decoding = card.decoding.model_dump()
    decoding.update({k: v for k, v in (request.decoding or {}).items() if v is not None})
    return decoding


def generated_length(tokens: Sequence[int], eos_ids: set[int]) -> int:
    """Tokens generated up to and including the first end-of-sequence token; what follows is batch padding."""
    return next((i + 1 for i, token in enumerate(tokens) if token in eos_ids), len(tokens))


def _error_result(error: Exception) -> GenerationResult:
    return GenerationResult(text="", error=f"{type(error).__name__}: {error}")


class TransformersAdapter:
    """Runs a chat vision-language model with `transformers` `generate`, batched with left padding.

    Args:
        card: The model card; `checkpoint` is a local directory or a hub id (with `revision` and
            `trust_remote_code`).
        device: Torch device; defaults to "cuda" when available, else "cpu".
        batch_size: Requests per `generate` call.
    """

    def __init__(self, card: ModelCard, device: str | None = None, batch_size: int = 8) -> None:
        import torch

        self.card = card
        self.batch_size = max(1, int(batch_size))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # bfloat16 is what Qwen3-VL checkpoints ship in and GPUs run fast; CPUs are slow and lossy in it.
        self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self._local_path = self._resolve_local_path(card)
        self.model, self.processor = self._load()
        self._fingerprint: str | None = None

    @staticmethod
    def _resolve_local_path(card: ModelCard) -> Path | None:
        path = Path(card.checkpoint).expanduser()
        if path.is_dir():
            return path
        if path.exists() or _looks_like_local_path(card.checkpoint):
            raise EvalkitError(
                f"model card '{card.name}': checkpoint directory '{card.checkpoint}' not found "
                f"(resolved to {path.resolve()}). Fix 'checkpoint' in the card, or build or download the "
                "model there."
            )
        return None

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForImageTextToText

        from model_adapters.tiny_qwen3vl import load_processor

        card = self.card
        source = str(self._local_path) if self._local_path is not None else card.checkpoint
        options = {"revision": card.revision, "trust_remote_code": card.trust_remote_code}
        try:
            config = AutoConfig.from_pretrained(source, **options)
            if getattr(config, "model_type", None) == "qwen3_vl":
                from transformers import Qwen3VLForConditionalGeneration as model_class
            else:
                model_class = AutoModelForImageTextToText
            model = model_class.from_pretrained(source, dtype=self.dtype, **options)
            processor = load_processor(source, revision=card.revision, trust_remote_code=card.trust_remote_code)
        except (ImportError, OSError, ValueError) as exc:
            raise EvalkitError(
                f"model card '{card.name}': cannot load checkpoint '{card.checkpoint}'"
                f"{f' (revision {card.revision})' if card.revision else ''}: {exc}"
            ) from exc
        model.to(self.device).eval()
        tokenizer = getattr(processor, "tokenizer", processor)
        # Decoder-only batching: prompts must end where generation starts, so pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, processor

    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        """Nothing to fit: a checkpoint is evaluated as it is."""

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self._local_path is not None:
                weights: Any = checkpoint_digest(self._local_path)
            else:
                # A hub snapshot is identified by its resolved commit; the config covers a revision of None.
                weights = {
                    "commit": getattr(self.model.config, "_commit_hash", None),
                    "config": stable_hash(self.model.config.to_dict()),
                }
            extra = {"adapter": "transformers", "dtype": str(self.dtype), "checkpoint": weights}
            self._fingerprint = card_fingerprint(self.card, extra=extra)
        return self._fingerprint

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        for batch in self._batches(requests):
            try:
                results.extend(self._generate_batch(batch))
            except Exception as batch_error:
                if len(batch) == 1:
                    results.append(_error_result(batch_error))
                    continue
                # One bad request must not sink its neighbours: rerun each alone to find it.
                for request in batch:
                    try:
                        results.extend(self._generate_batch([request]))
                    except Exception as error:
                        results.append(_error_result(error))
        return results

    def _batches(self, requests: Sequence[GenerationRequest]) -> list[list[GenerationRequest]]:
        """Consecutive runs of requests with equal decoding settings, at most `batch_size` each, in order."""
        batches: list[list[GenerationRequest]] = []
        previous_key: str | None = None
        for request in requests:
            key = stable_hash(_decoding_for(self.card, request))
            if batches and key == previous_key and len(batches[-1]) < self.batch_size:
                batches[-1].append(request)
            else:
                batches.append([request])
            previous_key = key
        return batches

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        system = request.system if request.system is not None else self.card.system_prompt
        if system:
            messages.append({"role": "system", "content": system})
        content: list[dict[str, Any]] = [{"type": "image"} for _ in request.images]
        content.append({"type": "text", "text": request.prompt})
        messages.append({"role": "user", "content": content})
        return messages

    def _image_kwargs(self) -> dict[str, Any]:
        """Card pixel limits as the Qwen image processor's `size` (both bounds are required together)."""
        spec = self.card.image
        if spec.min_pixels is None and spec.max_pixels is None:
            return {}
        image_processor = getattr(self.processor, "image_processor", None)
        size = dict(getattr(image_processor, "size", None) or {})
        if spec.min_pixels is not None:
            size["shortest_edge"] = spec.min_pixels
        if spec.max_pixels is not None:
            size["longest_edge"] = spec.max_pixels
        return {"images_kwargs": {"size": size}}

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        import torch

        started = time.perf_counter()
        decoding = _decoding_for(self.card, batch[0])
        texts = [
            self.processor.apply_chat_template(self._messages(r), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        images = [image for r in batch for image in r.images]
        inputs = self.processor(
            text=texts,
            images=images or None,
            padding=True,
            return_tensors="pt",
            **(self._image_kwargs() if images else {}),
        ).to(self.device)

        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        generation = self.model.generation_config
        eos = generation.eos_token_id if generation.eos_token_id is not None else tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        options: dict[str, Any] = {
            "max_new_tokens": int(decoding["max_new_tokens"]),
            "pad_token_id": tokenizer.pad_token_id,
        }
        temperature = float(decoding.get("temperature") or 0.0)
        if temperature > 0:
            # top_k off: a checkpoint's generation_config (Qwen3-VL ships top_k=20) must not add a filter the
            # card does not name, or the same card would sample differently here and in vLLM.
            options.update(
                do_sample=True, temperature=temperature, top_p=float(decoding.get("top_p") or 1.0), top_k=None
            )
            # generate() draws from the global RNG: seeding it per batch makes sampled runs repeatable.
            torch.manual_seed(int(decoding.get("seed") or 0))
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_length:].tolist()
        latency = (time.perf_counter() - started) / len(batch)

        results = []
        for row, mask in zip(new_tokens, inputs["attention_mask"].tolist(), strict=True):
            length = generated_length(row, eos_ids)
            text = tokenizer.decode(row[:length], skip_special_tokens=True)
            results.append(
                GenerationResult(text=text, tokens=length, latency_s=latency, meta={"prompt_tokens": int(sum(mask))})
            )
        return results

    def __repr__(self) -> str:
        return f"TransformersAdapter(card={self.card.name!r}, device={self.device!r}, dtype={self.dtype})"
