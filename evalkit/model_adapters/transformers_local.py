"""Local Hugging Face transformers back end for Qwen3-VL-style chat models (CPU tests, small GPU runs).

torch and transformers are imported inside the adapter, so importing this module stays cheap for the CLI and
for runs that use another back end.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash
from evalkit.model_adapters.chat import chat_messages, decoding_for, raw_prompt
from evalkit.model_adapters.thinking import Attempt, generate_with_retries, retry_seed
from evalkit.sample import Sample

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


def hub_snapshot_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit of the cached hub snapshot that `repo_id` at `revision` resolves to (its snapshot folder's name),
    or None when it is not in the local cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if not isinstance(found, str):
        return None
    snapshot = Path(found).parent
    return snapshot.name if snapshot.parent.name == "snapshots" else None


# Kept for callers of the old private name; the shared helper lives in evalkit.model_adapters.chat.
_decoding_for = decoding_for


def generated_length(tokens: Sequence[int], eos_ids: set[int]) -> int:
    """Tokens generated up to and including the first end-of-sequence token; what follows is batch padding."""
    return next((i + 1 for i, token in enumerate(tokens) if token in eos_ids), len(tokens))


def _error_attempt(error: Exception) -> Attempt:
    return Attempt(text="", error=f"{type(error).__name__}: {error}")


class TransformersAdapter:
    """Runs a chat vision-language model with `transformers` `generate`, batched with left padding.

    Args:
        card: The model card; `checkpoint` is a local directory or a hub id (with `revision` and
            `trust_remote_code`).
        device: Torch device; defaults to "cuda" when available, else "cpu".
        batch_size: Requests per `generate` call.
    """

    def __init__(self, card: ModelCard, device: str | None = None, batch_size: int = 8) -> None:
        self.card = card
        self.batch_size = max(1, int(batch_size))
        self._warned_fallback = False
        if device is None:
            import torch  # only to ask for CUDA: a given device leaves torch unimported until `load`

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        # bfloat16 is what Qwen3-VL checkpoints ship in and GPUs run fast; CPUs are slow and lossy in it.
        self._dtype_name = "bfloat16" if self.device.startswith("cuda") else "float32"
        self._local_path = self._resolve_local_path(card)
        # A local checkpoint is loaded on first use (`load`): a rerun whose samples are all stored needs only the
        # fingerprint, a digest of its files. The runner calls `load` before it generates, so a broken checkpoint
        # still fails the run up front, never sample by sample. A hub id is loaded now: its fingerprint is the
        # resolved snapshot, and a wrong id should fail before anything else.
        self._loaded: tuple[Any, Any] | None = None
        self._fingerprint: str | None = None
        if self._local_path is None:
            self.load()

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self._dtype_name)

    def load(self) -> None:
        """Load the weights and processor now (idempotent)."""
        if self._loaded is None:
            from evalkit.model_adapters.qwen3vl_processor import quiet_progress_bars

            with quiet_progress_bars():  # no "Loading weights" bars in the middle of a run's progress
                self._loaded = self._load()

    @property
    def model(self) -> Any:
        self.load()
        return self._loaded[0]  # type: ignore[index]

    @property
    def processor(self) -> Any:
        self.load()
        return self._loaded[1]  # type: ignore[index]

    @classmethod
    def from_model(cls, card: ModelCard, model: Any, processor: Any, batch_size: int = 8) -> TransformersAdapter:
        """An adapter around a model already in memory (benchmarks, GPU checks); it runs where the model is.

        The fingerprint then covers the card and the model's config (not its weights): use it for timing, not
        for results that go into a shared database.
        """
        adapter = cls.__new__(cls)
        adapter.card = card
        adapter.batch_size = max(1, int(batch_size))
        adapter.device = str(model.device)
        adapter._dtype_name = str(model.dtype).removeprefix("torch.")
        adapter._local_path = None
        adapter._loaded = (model.eval(), processor)
        adapter._prepare_tokenizer(processor)
        adapter._fingerprint = None
        return adapter

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

        from evalkit.model_adapters.qwen3vl_processor import load_processor

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
        self._prepare_tokenizer(processor)
        return model, processor

    @staticmethod
    def _prepare_tokenizer(processor: Any) -> None:
        tokenizer = getattr(processor, "tokenizer", processor)
        # Decoder-only batching: prompts must end where generation starts, so pad on the left.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        """Nothing to fit: a checkpoint is evaluated as it is."""

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            if self._local_path is not None:
                weights: Any = checkpoint_digest(self._local_path)
            else:
                # A hub snapshot is identified by its resolved commit; the config covers a revision of None.
                # transformers >= 5.20 no longer sets config._commit_hash: read the snapshot folder instead.
                weights = {
                    "commit": getattr(self.model.config, "_commit_hash", None)
                    or hub_snapshot_commit(self.card.checkpoint, self.card.revision),
                    "config": stable_hash(self.model.config.to_dict()),
                }
            # "torch.float32" as str(torch.float32) spells it: fingerprints made before torch was lazy still match.
            extra = {"adapter": "transformers", "dtype": f"torch.{self._dtype_name}", "checkpoint": weights}
            self._fingerprint = card_fingerprint(self.card, extra=extra)
        return self._fingerprint

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: list[GenerationResult] = []
        for batch in self._batches(requests):
            decoding = decoding_for(self.card, batch[0])
            retries = int(decoding.get("thinking_retries") or 0)
            # Greedy decoding here is deterministic: a retry would reproduce the same text, so it is skipped.
            greedy = float(decoding.get("temperature") or 0.0) <= 0.0

            def attempt(
                indices: Sequence[int], round_index: int, batch: list = batch, decoding: dict = decoding
            ) -> list[Attempt]:
                return self._attempt([batch[i] for i in indices], decoding, round_index)

            outcomes = generate_with_retries(
                len(batch), attempt, thinking=self.card.thinking, retries=0 if greedy else retries
            )
            for result, meta in outcomes:
                if greedy and retries and not meta["complete"]:
                    meta["retries_skipped"] = "greedy decoding repeats itself"
                latency = meta.pop("latency_s", None)
                text = result.text if result.error is None else ""
                results.append(
                    GenerationResult(text=text, tokens=result.tokens, latency_s=latency, error=result.error, meta=meta)
                )
        return results

    def _attempt(self, batch: list[GenerationRequest], decoding: dict[str, Any], round_index: int) -> list[Attempt]:
        """One batched `generate`; if it raises, each request alone so that one bad request fails by itself."""
        try:
            return self._generate_batch(batch, decoding, round_index)
        except Exception as batch_error:
            if len(batch) == 1:
                return [_error_attempt(batch_error)]
            if not self._warned_fallback:
                self._warned_fallback = True
                print(
                    f"transformers adapter ({self.card.name}): a batch of {len(batch)} failed "
                    f"({type(batch_error).__name__}: {str(batch_error)[:200]}); generating one request at a time",
                    file=sys.stderr,
                    flush=True,
                )
        attempts: list[Attempt] = []
        for request in batch:
            try:
                attempts.extend(self._generate_batch([request], decoding, round_index))
            except Exception as error:
                attempts.append(_error_attempt(error))
        return attempts

    def _batches(self, requests: Sequence[GenerationRequest]) -> list[list[GenerationRequest]]:
        """Consecutive runs of requests with equal decoding settings, at most `batch_size` each, in order."""
        batches: list[list[GenerationRequest]] = []
        previous_key: str | None = None
        for request in requests:
            key = stable_hash(decoding_for(self.card, request))
            if batches and key == previous_key and len(batches[-1]) < self.batch_size:
                batches[-1].append(request)
            else:
                batches.append([request])
            previous_key = key
        return batches

    def _messages(self, request: GenerationRequest) -> list[dict[str, Any]]:
        return chat_messages(request, self.card, lambda image: {"type": "image"})

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

    def _generate_batch(
        self, batch: list[GenerationRequest], decoding: dict[str, Any] | None = None, round_index: int = 0
    ) -> list[Attempt]:
        import torch

        started = time.perf_counter()
        decoding = decoding if decoding is not None else decoding_for(self.card, batch[0])
        texts = [
            raw_prompt(r, self.card)
            or self.processor.apply_chat_template(self._messages(r), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        # One image list per text: Gemma3's processor (MedGemma) rejects a flat list for batches over one, and
        # Qwen-VL processors take both.
        images = [list(r.images) for r in batch] if any(r.images for r in batch) else []
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
        max_new_tokens = int(decoding["max_new_tokens"])
        options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        temperature = float(decoding.get("temperature") or 0.0)
        if temperature > 0:
            # top_k off: a checkpoint's generation_config (Qwen3-VL ships top_k=20) must not add a filter the
            # card does not name, or the same card would sample differently here and in vLLM.
            options.update(
                do_sample=True, temperature=temperature, top_p=float(decoding.get("top_p") or 1.0), top_k=None
            )
            # generate() draws from the global RNG: seeding it per batch (and retry round) makes sampled runs
            # repeatable.
            torch.manual_seed(retry_seed(decoding.get("seed"), round_index))
        else:
            options.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        prompt_length = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_length:].tolist()
        latency = (time.perf_counter() - started) / len(batch)

        attempts = []
        for row, mask in zip(new_tokens, inputs["attention_mask"].tolist(), strict=True):
            length = generated_length(row, eos_ids)
            stopped = length <= len(row) and length > 0 and row[length - 1] in eos_ids
            attempts.append(
                Attempt(
                    text=tokenizer.decode(row[:length], skip_special_tokens=True),
                    finish_reason="stop" if stopped else "length",
                    tokens=length,
                    meta={"prompt_tokens": int(sum(mask)), "latency_s": latency},
                )
            )
        return attempts

    def __repr__(self) -> str:
        return f"TransformersAdapter(card={self.card.name!r}, device={self.device!r}, dtype=torch.{self._dtype_name})"
