"""vLLM back end: the offline `vllm.LLM` engine for one replica, vLLM's own server for several.

- Data parallel 1: one `vllm.LLM(model, tensor_parallel_size=TP, ...)` in this process; each batch the runner
  hands over goes to `LLM.chat` in one call (vLLM schedules it with continuous batching). With
  `serving.distributed_backend: ray` the TP workers are placed by vLLM on a running Ray cluster (several nodes).
- Data parallel N > 1: vLLM refuses `LLM(data_parallel_size=N)` in a single process (vllm PR #27282: it hangs),
  so the adapter starts `vllm serve --data-parallel-size N --tensor-parallel-size TP` on 127.0.0.1 (vLLM's own
  data parallelism with its internal load balancer; `--data-parallel-backend ray` for several nodes) and sends
  the batch through the OpenAI-compatible adapter. No distributed code of ours either way.

vllm is imported lazily (it needs a CUDA torch; see docs/adapters.md), so this module imports on any machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint
from evalkit.model_adapters.chat import chat_messages, decoding_for, mm_processor_kwargs, png_data_url, raw_prompt
from evalkit.model_adapters.thinking import Attempt, generate_with_retries, retry_seed
from evalkit.model_adapters.transformers_local import checkpoint_digest
from evalkit.model_adapters.vllm_card import check_engine_args, mm_limits, resolve_checkpoint
from evalkit.sample import Sample

# Engine arguments that change speed or memory only; everything else in `serving.engine_args` (dtype,
# quantization, max_model_len, ...) can change outputs and goes into the fingerprint.
SPEED_ONLY_ENGINE_ARGS: frozenset[str] = frozenset(
    {
        "gpu_memory_utilization",
        "enforce_eager",
        "max_num_seqs",
        "max_num_batched_tokens",
        "swap_space",
        "cpu_offload_gb",
        "disable_log_stats",
        "enable_prefix_caching",
        "enable_chunked_prefill",
        "disable_mm_preprocessor_cache",
        "mm_processor_cache_gb",
        "compilation_config",
        "disable_custom_all_reduce",
        "download_dir",
    }
)
INSTALL_HINT = (
    "vLLM is not installed here. It needs a CUDA build of torch: on a GPU machine, `pip install 'evalkit[vllm]'` "
    "(see docs/adapters.md), or serve the model with `vllm serve` elsewhere and use `--adapter openai "
    "--endpoint http://127.0.0.1:8000/v1`."
)


def require_vllm(server: bool = False) -> None:
    """Raise the install hint unless vLLM (or, for a managed server, the `vllm` command) is available."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("vllm") is None and not (server and shutil.which("vllm")):
        raise EvalkitError(INSTALL_HINT)


def sampling_kwargs(decoding: dict[str, Any], round_index: int) -> dict[str, Any]:
    """`vllm.SamplingParams` keyword arguments for one request and retry round.

    Each request carries its own seed (the card's seed, plus the retry round), so a sampled answer depends only
    on the request and not on which other requests share its batch; top_k is switched off explicitly so a
    checkpoint's generation_config (Qwen3-VL ships top_k=20) cannot add a filter the card does not name.
    """
    return {
        "n": 1,
        "temperature": float(decoding.get("temperature") or 0.0),
        "top_p": float(decoding.get("top_p") or 1.0),
        "top_k": -1,
        "max_tokens": int(decoding["max_new_tokens"]),
        "seed": retry_seed(decoding.get("seed"), round_index),
    }


def engine_kwargs(card: ModelCard) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM(...)` from a card (data parallel 1)."""
    model, _ = resolve_checkpoint(card)
    serving = card.serving
    kwargs: dict[str, Any] = {
        "model": model,
        "revision": card.revision,
        "trust_remote_code": card.trust_remote_code,
        "tensor_parallel_size": serving.tensor_parallel_size,
        "seed": int(card.decoding.seed),
        "limit_mm_per_prompt": mm_limits(card),
    }
    processor_kwargs = mm_processor_kwargs(card)
    if processor_kwargs:
        kwargs["mm_processor_kwargs"] = processor_kwargs
    if serving.distributed_backend is not None:
        kwargs["distributed_executor_backend"] = serving.distributed_backend
    # Sleep mode lets the adapter hand the GPU to the metrics after generating (`release_gpu`): a live engine
    # keeps gpu_memory_utilization (0.9) of the GPU, and a 7B judge (GREEN) scored beside it runs out of memory.
    kwargs["enable_sleep_mode"] = True
    check_engine_args(card)
    kwargs.update(serving.engine_args)
    return kwargs


def output_relevant_engine_args(card: ModelCard) -> dict[str, Any]:
    return {k: v for k, v in sorted(card.serving.engine_args.items()) if k not in SPEED_ONLY_ENGINE_ARGS}


class VLLMAdapter:
    """Generates with vLLM: the offline engine (data parallel 1) or a managed `vllm serve` (data parallel > 1).

    Args:
        card: The model card; parallelism and engine settings come from `card.serving`.
        engine: An object with vLLM's `LLM.chat` interface to use instead of building one (tests, or a caller
            that shares one engine between tasks). The engine is otherwise built on the first `generate`, so a
            run whose generations are all cached never starts vLLM.
        image_transport: How images reach the engine: `pil` (PIL images, no encoding) or `data_url` (base64 PNG,
            as a server would get them).
    """

    def __init__(self, card: ModelCard, *, engine: Any = None, image_transport: str = "pil") -> None:
        if image_transport not in ("pil", "data_url"):
            raise EvalkitError(f"image_transport must be 'pil' or 'data_url', not '{image_transport}'")
        self.card = card
        self.image_transport = image_transport
        self._engine = engine
        self._server: Any = None
        self._server_adapter: Any = None
        self._fingerprint: str | None = None
        self._asleep = False
        self._model, self._local_path = resolve_checkpoint(card)
        self.data_parallel_size = card.serving.data_parallel_size
        if engine is None:
            # Fail before the run starts, not once per sample inside it.
            require_vllm(server=self.data_parallel_size > 1)

    # --- protocol -----------------------------------------------------------------------------------------------
    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        """Nothing to fit; the engine and any managed server stay on this machine, so every task is allowed."""

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            # A hub checkpoint is identified by (id, revision): pin `revision` in the card to make the cache safe
            # against a model updated on the hub. A local one by its content.
            weights: Any = checkpoint_digest(self._local_path) if self._local_path is not None else None
            extra = {"adapter": "vllm", "checkpoint": weights, "engine": output_relevant_engine_args(self.card)}
            self._fingerprint = card_fingerprint(self.card, extra=extra)
        return self._fingerprint

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if not requests:
            return []
        if self.data_parallel_size > 1 and self._engine is None:
            return self._served().generate(requests)
        if self._asleep:
            self._engine.wake_up()
            self._asleep = False
        started = time.perf_counter()
        decodings = [decoding_for(self.card, r) for r in requests]
        retries = max(int(d.get("thinking_retries") or 0) for d in decodings)

        def attempt(indices: Sequence[int], round_index: int) -> list[Attempt]:
            return self._chat([requests[i] for i in indices], [decodings[i] for i in indices], round_index)

        outcomes = generate_with_retries(len(requests), attempt, thinking=self.card.thinking, retries=retries)
        latency = (time.perf_counter() - started) / len(requests)
        return [
            GenerationResult(
                text=a.text if a.error is None else "", tokens=a.tokens, latency_s=latency, error=a.error, meta=meta
            )
            for a, meta in outcomes
        ]

    def release_gpu(self) -> None:
        """Put the offline engine to sleep (weights to CPU memory, KV cache dropped) so that the metrics scored next
        in this process get the GPU; the next `generate` wakes it. The runner calls this after generating."""
        if self._engine is None or self._asleep or not hasattr(self._engine, "sleep"):
            return
        try:
            self._engine.sleep(level=1)
        except Exception as exc:  # a platform without sleep mode: scoring goes ahead beside the engine
            print(
                f"vllm adapter: could not put the engine to sleep ({exc}); metrics share the GPU with it",
                file=sys.stderr,
                flush=True,
            )
            return
        self._asleep = True

    def close(self) -> None:
        """Stop a managed server, if one was started (the offline engine is freed with the adapter)."""
        if self._server is not None:
            self._server.close()
            self._server = None
            self._server_adapter = None

    # --- offline engine -----------------------------------------------------------------------------------------
    @property
    def engine(self) -> Any:
        if self._engine is None:
            try:
                import vllm
            except ImportError as exc:
                raise EvalkitError(INSTALL_HINT) from exc
            kwargs = engine_kwargs(self.card)
            try:
                self._engine = vllm.LLM(**kwargs)
            except Exception as exc:
                # A platform without sleep mode (vLLM refuses it off CUDA): the engine then stays awake, as before.
                if "sleep mode" not in str(exc).lower() or "enable_sleep_mode" in self.card.serving.engine_args:
                    raise
                kwargs.pop("enable_sleep_mode")
                self._engine = vllm.LLM(**kwargs)
        return self._engine

    def _image_part(self, image: Image.Image) -> dict[str, Any]:
        if self.image_transport == "data_url":
            return {"type": "image_url", "image_url": {"url": png_data_url(image)}}
        return {"type": "image_pil", "image_pil": image}

    def build_messages(self, request: GenerationRequest) -> Any:
        """Chat messages for `LLM.chat`, or a `{"prompt", "multi_modal_data"}` dict for `LLM.generate` when the
        card gives a raw prompt (a model without a chat template)."""
        text = raw_prompt(request, self.card)
        if text is None:
            return chat_messages(request, self.card, self._image_part)
        item: dict[str, Any] = {"prompt": text}
        if request.images:
            images = list(request.images)
            item["multi_modal_data"] = {"image": images[0] if len(images) == 1 else images}
        return item

    def sampling_params(self, decoding: dict[str, Any], round_index: int) -> Any:
        try:
            from vllm import SamplingParams
        except ImportError as exc:
            raise EvalkitError(INSTALL_HINT) from exc
        return SamplingParams(**sampling_kwargs(decoding, round_index))

    def _chat_call(self, conversations: list[Any], params: list[Any]) -> list[Any]:
        options: dict[str, Any] = {"sampling_params": params, "use_tqdm": False}
        if self.card.options.get("raw_prompt"):
            outputs = list(self.engine.generate(conversations, **options))
        else:
            template_kwargs = self.card.options.get("chat_template_kwargs")
            if template_kwargs:
                options["chat_template_kwargs"] = dict(template_kwargs)
            outputs = list(self.engine.chat(conversations, **options))
        if len(outputs) != len(conversations):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(conversations)} conversations")
        return outputs

    def _chat(self, batch: list[GenerationRequest], decodings: list[dict[str, Any]], round_index: int) -> list[Attempt]:
        """One `LLM.chat` call for the whole batch; if it raises, one call per request to find the bad one."""
        prepared: list[tuple[Any, Any] | Exception] = []
        for request, decoding in zip(batch, decodings, strict=True):
            try:
                prepared.append((self.build_messages(request), self.sampling_params(decoding, round_index)))
            except EvalkitError:
                raise
            except Exception as exc:
                prepared.append(exc)
        good = [i for i, p in enumerate(prepared) if not isinstance(p, Exception)]
        attempts: list[Attempt] = [
            Attempt(text="", error=f"{type(p).__name__}: {p}") if isinstance(p, Exception) else Attempt(text="")
            for p in prepared
        ]
        if not good:
            return attempts
        conversations = [prepared[i][0] for i in good]  # type: ignore[index]
        params = [prepared[i][1] for i in good]  # type: ignore[index]
        try:
            outputs = self._chat_call(conversations, params)
        except EvalkitError:
            raise
        except Exception as exc:
            if len(good) == 1:
                attempts[good[0]] = Attempt(text="", error=f"{type(exc).__name__}: {exc}")
                return attempts
            # One bad request (an unreadable image, a prompt over max_model_len) must not sink its neighbours.
            for i, conversation, param in zip(good, conversations, params, strict=True):
                attempts[i] = self._single(conversation, param)
            return attempts
        for i, output in zip(good, outputs, strict=True):
            attempts[i] = attempt_from_output(output)
        return attempts

    def _single(self, conversation: Any, param: Any) -> Attempt:
        try:
            return attempt_from_output(self._chat_call([conversation], [param])[0])
        except EvalkitError:
            raise
        except Exception as exc:
            return Attempt(text="", error=f"{type(exc).__name__}: {exc}")

    # --- data parallel through vLLM's server ---------------------------------------------------------------------
    def _served(self) -> Any:
        if self._server_adapter is None:
            from evalkit.model_adapters.openai_server import OpenAIAdapter
            from evalkit.model_adapters.vllm_server import ManagedVLLMServer

            self._server = ManagedVLLMServer(self.card)
            self._server.start()
            self._server_adapter = OpenAIAdapter(
                self.card,
                endpoint=self._server.endpoint,
                # Resized here to the card's limits with the processor's rule (the server's processor then keeps
                # the size): a full-resolution radiograph as PNG is about 12.6 MB and 5.7 s to encode, the resized
                # one 0.46 MB and 0.3 s. The server still has the same limits (--mm-processor-kwargs).
                client_resize=True,
                max_concurrency=int(self.card.options.get("max_concurrency_managed", 256)),
                served_model_name=self._server.served_model_name,
            )
        return self._server_adapter

    def __repr__(self) -> str:
        serving = self.card.serving
        return (
            f"VLLMAdapter(card={self.card.name!r}, tp={serving.tensor_parallel_size}, "
            f"dp={serving.data_parallel_size}, backend={serving.distributed_backend or 'mp'})"
        )


def attempt_from_output(output: Any) -> Attempt:
    """An Attempt from a vLLM `RequestOutput` (first completion)."""
    completion = output.outputs[0]
    token_ids = getattr(completion, "token_ids", None)
    prompt_ids = getattr(output, "prompt_token_ids", None)
    meta = {"prompt_tokens": len(prompt_ids)} if prompt_ids is not None else {}
    return Attempt(
        text=completion.text,
        finish_reason=getattr(completion, "finish_reason", None),
        tokens=len(token_ids) if token_ids is not None else None,
        meta=meta,
    )
