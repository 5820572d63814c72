"""GPU check for the model adapters: throughput and harness overhead on random-weight Qwen3-VL models.

Run through scripts/gpu_check.sh (which makes evalkit importable offline). No network: every model is built
here with random weights, every image is a phantom radiograph made here.

Stages (each is timed, guarded, and recorded even when it fails or is skipped):
  env          torch / CUDA / transformers / vLLM versions, GPU name
  data         phantom samples (report and grounding prompts) rendered with the harness's prompt code
  transformers for the tiny Qwen3-VL and a Qwen3-VL-2B-shaped model (random bf16 weights on the GPU):
               the TransformersAdapter versus a bare `model.generate` on the same prompts and batches
               (throughput, harness overhead, and whether both give the same tokens)
  vllm         where vLLM is installed: the VLLMAdapter versus a bare `LLM.chat` on the same requests
  runner       the whole pipeline (runner, parsing, DuckDB) on the tiny model, where duckdb is installed

Writes JSON to --out (default ${OUT:-/tmp}/gpu_check.json) and prints a summary.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Qwen/Qwen3-VL-2B-Instruct config.json (text: Qwen3-1.7B-like decoder; vision: 24-block ViT with deepstack).
QWEN3VL_2B_TEXT = {
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 262144,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 5_000_000.0,
        "mrope_section": [24, 20, 20],
        "mrope_interleaved": True,
    },
}
QWEN3VL_2B_VISION = {
    "depth": 24,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_heads": 16,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 2048,
    "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [5, 11, 17],
    "hidden_act": "gelu_pytorch_tanh",
}
# The same architecture, scaled down so that --small runs on a laptop CPU in seconds.
SMALL_TEXT = {**QWEN3VL_2B_TEXT, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": None,
              "rope_parameters": {**QWEN3VL_2B_TEXT["rope_parameters"], "mrope_section": [6, 5, 5]}}  # fmt: skip
SMALL_VISION = {**QWEN3VL_2B_VISION, "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2,
                "out_hidden_size": 128, "deepstack_visual_indexes": [0]}  # fmt: skip
# RadVLM-GRPO's pixel budget for Qwen-VL models.
MIN_PIXELS, MAX_PIXELS = 1024, 451584


class Check:
    """Collects results and timings; a stage that raises is recorded and the check goes on."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.started = time.perf_counter()
        self.budget_s = budget_s
        self.result: dict[str, Any] = {"stages": {}, "runs": [], "notes": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def stage(self, name: str, fn: Any, *args: Any, need_s: float = 0.0, **kwargs: Any) -> Any:
        if need_s and self.left() < need_s:
            self.result["stages"][name] = {"status": "skipped", "reason": f"time budget: {self.left():.0f} s left"}
            print(f"[{name}] skipped: time budget", flush=True)
            return None
        print(f"[{name}] ...", flush=True)
        began = time.perf_counter()
        try:
            value = fn(*args, **kwargs)
        except SkipStage as skip:
            self.result["stages"][name] = {"status": "skipped", "reason": str(skip)}
            print(f"[{name}] skipped: {skip}", flush=True)
            return None
        except Exception as exc:
            self.result["stages"][name] = {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8),
                "seconds": round(time.perf_counter() - began, 2),
            }
            print(f"[{name}] ERROR {type(exc).__name__}: {exc}", flush=True)
            return None
        self.result["stages"][name] = {"status": "ok", "seconds": round(time.perf_counter() - began, 2)}
        print(f"[{name}] ok ({time.perf_counter() - began:.1f} s)", flush=True)
        return value

    def save(self) -> None:
        self.result["total_seconds"] = round(self.elapsed(), 2)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2, default=str))


class SkipStage(Exception):
    pass


# --- environment ---------------------------------------------------------------------------------------------------


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "vllm": None,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    if importlib.util.find_spec("vllm") is not None:
        try:
            import vllm

            info["vllm"] = vllm.__version__
        except Exception as exc:  # a broken install is worth knowing about
            info["vllm"] = f"import failed: {type(exc).__name__}: {exc}"
    for name in ("pydantic", "duckdb", "yaml", "PIL"):
        info[f"has_{name}"] = importlib.util.find_spec(name) is not None
    return info


# --- data ----------------------------------------------------------------------------------------------------------


def phantom_requests(workdir: Path, n: int, size: int, card: Any) -> list[Any]:
    """GenerationRequests for n phantom samples, half report generation and half grounding prompts."""
    from evalkit.data import get_loader
    from evalkit.data.phantom import generate_phantom
    from evalkit.images import load_image
    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.registry import all_tasks
    from evalkit.run.prompts import render_prompt

    root = generate_phantom(workdir / f"phantom-{size}", n_train=0, n_validate=0, n_test=n, size=size)
    tasks = all_tasks()
    requests = []
    for name in ("phantom-report", "phantom-abnormality-grounding"):
        task = tasks[name]
        samples = get_loader(task.dataset.loader)(task.dataset, root, task.name, "test")
        for sample in samples[: n // 2]:
            system, prompt = render_prompt(task, card, sample)
            images = [load_image(p) for p in sample.image_paths]
            requests.append(GenerationRequest(sample, prompt, images, system, {}))
    return requests[:n]


# --- models --------------------------------------------------------------------------------------------------------


def tiny_card(checkpoint: Path, max_new_tokens: int) -> Any:
    from evalkit.config import ModelCard

    return ModelCard.model_validate(
        {
            "name": "tiny-qwen3vl",
            "adapter": "transformers",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "box_format": "qwen1000",
            "decoding": {"temperature": 0, "max_new_tokens": max_new_tokens},
            "options": {"resize_factor": 32},
        }
    )


def build_2b_shape(tiny_dir: Path, device: str, small: bool) -> tuple[Any, Any, dict[str, Any]]:
    """A Qwen3-VL with Qwen3-VL-2B's dimensions and random bf16 weights, initialised on the device directly.

    It reuses the tiny checkpoint's tokenizer (its special-token ids go into the config); the real vocabulary
    size is kept, so the output layer costs what the real model's does (ids beyond the small tokenizer decode
    to nothing, which does not matter for timing).
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from evalkit.model_adapters.qwen3vl_processor import image_only_processor_class, load_processor
    from evalkit.testing.tiny_qwen3vl import SPECIAL_TOKENS, greedy_generation, qwen3vl_config, qwen3vl_image_processor

    tokenizer = load_processor(tiny_dir).tokenizer
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(SMALL_TEXT if small else QWEN3VL_2B_TEXT)
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    vision = dict(SMALL_VISION if small else QWEN3VL_2B_VISION)
    config = qwen3vl_config(text, vision, ids)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    greedy_generation(model, ids)
    image_processor = qwen3vl_image_processor(max_pixels=MAX_PIXELS, min_pixels=MIN_PIXELS)
    processor = image_only_processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype),
        "init_seconds": round(time.perf_counter() - started, 2),
        "text_config": {k: v for k, v in text.items() if k != "rope_parameters"},
        "vision_depth": vision["depth"],
    }
    return model, processor, info


# --- transformers: adapter versus bare generate --------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def compare_transformers(
    check: Check,
    label: str,
    adapter: Any,
    requests: list[Any],
    batch_sizes: list[int],
    max_new_tokens: int,
    repeats: int = 2,
) -> None:
    """Adapter.generate versus model.generate on identical inputs, batch by batch, greedy."""
    import torch

    model, processor, device = adapter.model, adapter.processor, adapter.device
    tokenizer = getattr(processor, "tokenizer", processor)
    options = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "do_sample": False,
        "temperature": None,
        "top_p": None,
        "top_k": None,
    }
    # Warm-up (CUDA context, kernels, allocator) on both paths, outside the timings.
    adapter.batch_size = 2
    adapter.generate(requests[:2])
    eos_ids = set(model.generation_config.eos_token_id or [])

    def bare(prepared: list[Any]) -> tuple[float, list[str], int]:
        from evalkit.model_adapters.transformers_local import generated_length

        _sync(device)
        started = time.perf_counter()
        outputs = []
        with torch.inference_mode():
            for inputs in prepared:
                outputs.append((inputs["input_ids"].shape[1], model.generate(**inputs, **options)))
        _sync(device)
        seconds = time.perf_counter() - started
        texts, tokens = [], 0
        for prompt_length, output in outputs:
            for row in output[:, prompt_length:].tolist():
                length = generated_length(row, eos_ids)
                tokens += length
                texts.append(tokenizer.decode(row[:length], skip_special_tokens=True))
        return seconds, texts, tokens

    def harness(subset: list[Any]) -> tuple[float, list[Any]]:
        _sync(device)
        started = time.perf_counter()
        results = adapter.generate(subset)
        _sync(device)
        return time.perf_counter() - started, results

    for batch_size in batch_sizes:
        if check.left() < 30:
            check.result["notes"].append(f"{label} batch {batch_size}: skipped for time")
            continue
        # Batch size 1 is slow by nature: a subset is enough to measure it.
        subset = requests[: min(len(requests), 16)] if batch_size == 1 else requests
        batches = [subset[i : i + batch_size] for i in range(0, len(subset), batch_size)]
        # The bare path gets its inputs prepared exactly as the adapter prepares them; only generate() is timed.
        prep_started = time.perf_counter()
        prepared = []
        for batch in batches:
            texts = [
                processor.apply_chat_template(adapter._messages(r), add_generation_prompt=True, tokenize=False)
                for r in batch
            ]
            images = [image for r in batch for image in r.images]
            inputs = processor(text=texts, images=images, padding=True, return_tensors="pt", **adapter._image_kwargs())
            prepared.append(inputs.to(device))
        _sync(device)
        prep_seconds = time.perf_counter() - prep_started
        adapter.batch_size = batch_size
        # Alternate the two paths and keep each one's best time: the machine's noise hits both alike.
        bare_runs, harness_runs = [], []
        for _ in range(repeats):
            bare_runs.append(bare(prepared))
            harness_runs.append(harness(subset))
        bare_seconds, bare_texts, bare_tokens = min(bare_runs, key=lambda run: run[0])
        harness_seconds, results = min(harness_runs, key=lambda run: run[0])
        errors = [r.error for r in results if r.error]
        tokens = sum(r.tokens or 0 for r in results)
        same = sum(a == r.text for a, r in zip(bare_texts, results, strict=True))
        n = len(subset)
        row = {
            "backend": "transformers",
            "model": label,
            "device": device,
            "batch_size": batch_size,
            "samples": n,
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "harness_seconds": round(harness_seconds, 3),
            "harness_samples_per_s": round(n / harness_seconds, 2),
            "harness_tokens_per_s": round(tokens / harness_seconds, 1),
            "bare_generate_seconds": round(bare_seconds, 3),
            "bare_samples_per_s": round(n / bare_seconds, 2),
            "bare_tokens_per_s": round(bare_tokens / bare_seconds, 1),
            "preprocess_seconds": round(prep_seconds, 3),
            "overhead_vs_bare_generate_pct": round(100 * (harness_seconds - bare_seconds) / bare_seconds, 1),
            "overhead_vs_bare_with_preprocess_pct": round(
                100 * (harness_seconds - bare_seconds - prep_seconds) / (bare_seconds + prep_seconds), 1
            ),
            "generated_tokens": tokens,
            "outputs_identical": f"{same}/{n}",
            "errors": errors[:3],
        }
        if device.startswith("cuda"):
            row["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        check.result["runs"].append(row)
        print(
            f"  {label} bs={batch_size}: harness {row['harness_samples_per_s']} samples/s "
            f"{row['harness_tokens_per_s']} tok/s | bare generate {row['bare_samples_per_s']} samples/s | overhead "
            f"{row['overhead_vs_bare_generate_pct']}% (vs generate), {row['overhead_vs_bare_with_preprocess_pct']}% "
            f"(vs preprocess+generate) | identical {row['outputs_identical']}",
            flush=True,
        )


def transformers_tiny(check: Check, workdir: Path, device: str, args: argparse.Namespace) -> Path:
    from evalkit.model_adapters.transformers_local import TransformersAdapter
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    checkpoint = build_tiny_qwen3vl(workdir / "tiny-qwen3vl", seed=0)
    card = tiny_card(checkpoint, args.tiny_tokens)
    adapter = TransformersAdapter(card, device=device, batch_size=8)
    requests = phantom_requests(workdir, args.samples, 256, card)
    check.result["tiny_model"] = {"parameters": sum(p.numel() for p in adapter.model.parameters())}
    compare_transformers(check, "tiny-qwen3vl", adapter, requests, args.tiny_batch_sizes, args.tiny_tokens)
    del adapter
    return checkpoint


def transformers_2b(check: Check, workdir: Path, tiny_dir: Path, device: str, args: argparse.Namespace) -> None:
    from evalkit.model_adapters.transformers_local import TransformersAdapter

    model, processor, info = build_2b_shape(tiny_dir, device, args.small)
    check.result["qwen3vl_2b_shape"] = info
    card = tiny_card(tiny_dir, args.big_tokens)
    card = card.model_validate(
        {**card.model_dump(), "name": "qwen3vl-2b-shape", "image": {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}}
    )
    adapter = TransformersAdapter.from_model(card, model, processor)
    requests = phantom_requests(workdir, args.samples, args.big_image, card)
    compare_transformers(check, "qwen3vl-2b-shape", adapter, requests, args.big_batch_sizes, args.big_tokens)
    if args.save_2b and importlib.util.find_spec("vllm") is not None and device.startswith("cuda"):
        save_for_vllm(model, processor, workdir / "qwen3vl-2b-shape")
    del adapter, model
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def save_for_vllm(model: Any, processor: Any, out: Path) -> Path:
    """Save with the stock Qwen3VLProcessor (vLLM loads processors through AutoProcessor; torchvision, which its
    video half needs, comes with vLLM)."""
    from transformers import Qwen3VLProcessor

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    try:
        from transformers import Qwen3VLVideoProcessor

        video = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2)
    except Exception:
        video = None
    stock = Qwen3VLProcessor(
        image_processor=processor.image_processor,
        tokenizer=processor.tokenizer,
        video_processor=video,
        chat_template=processor.chat_template,
    )
    stock.save_pretrained(out)
    return out


# --- vLLM: adapter versus bare LLM.chat ----------------------------------------------------------------------------


def vllm_stage(check: Check, workdir: Path, device: str, args: argparse.Namespace) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise SkipStage("vLLM is not installed on this machine (pip install 'evalkit[vllm]' on a CUDA machine)")
    if not device.startswith("cuda"):
        raise SkipStage("vLLM needs a CUDA device")
    checkpoint = workdir / "qwen3vl-2b-shape"
    if not (checkpoint / "config.json").exists():
        raise SkipStage("the 2B-shape checkpoint was not saved (its transformers stage did not finish)")
    from vllm import SamplingParams

    from evalkit.config import ModelCard
    from evalkit.model_adapters.vllm_engine import VLLMAdapter, sampling_kwargs

    card = ModelCard.model_validate(
        {
            "name": "qwen3vl-2b-shape",
            "adapter": "vllm",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "box_format": "qwen1000",
            "decoding": {"temperature": 0, "max_new_tokens": args.big_tokens},
            "image": {"min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS},
            "options": {"resize_factor": 32},
            "serving": {
                "engine_args": {"max_model_len": 4096, "gpu_memory_utilization": 0.6, "enforce_eager": args.eager}
            },
        }
    )
    requests = phantom_requests(workdir, args.samples, args.big_image, card)
    adapter = VLLMAdapter(card)
    started = time.perf_counter()
    adapter.generate(requests[:2])  # builds the engine, warms it up
    startup = time.perf_counter() - started
    started = time.perf_counter()
    results = adapter.generate(requests)
    harness_seconds = time.perf_counter() - started
    conversations = [adapter.build_messages(r) for r in requests]
    params = [SamplingParams(**sampling_kwargs(card.decoding.model_dump(), 0)) for _ in requests]
    started = time.perf_counter()
    outputs = adapter.engine.chat(conversations, sampling_params=params, use_tqdm=False)
    bare_seconds = time.perf_counter() - started
    tokens = sum(r.tokens or 0 for r in results)
    bare_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    same = sum(o.outputs[0].text == r.text for o, r in zip(outputs, results, strict=True))
    n = len(requests)
    row = {
        "backend": "vllm",
        "model": "qwen3vl-2b-shape",
        "device": device,
        "batch_size": n,
        "samples": n,
        "max_new_tokens": args.big_tokens,
        "engine_startup_seconds": round(startup, 1),
        "harness_seconds": round(harness_seconds, 3),
        "harness_samples_per_s": round(n / harness_seconds, 2),
        "harness_tokens_per_s": round(tokens / harness_seconds, 1),
        "bare_generate_seconds": round(bare_seconds, 3),
        "bare_samples_per_s": round(n / bare_seconds, 2),
        "bare_tokens_per_s": round(bare_tokens / bare_seconds, 1),
        "overhead_vs_bare_generate_pct": round(100 * (harness_seconds - bare_seconds) / bare_seconds, 1),
        "outputs_identical": f"{same}/{n}",
        "errors": [r.error for r in results if r.error][:3],
    }
    check.result["runs"].append(row)
    print(
        f"  vllm bs={n}: harness {row['harness_samples_per_s']} samples/s {row['harness_tokens_per_s']} tok/s | "
        f"bare chat {row['bare_samples_per_s']} samples/s | overhead {row['overhead_vs_bare_generate_pct']}%",
        flush=True,
    )


# --- the whole pipeline ---------------------------------------------------------------------------------------------


def runner_stage(check: Check, workdir: Path, tiny_dir: Path, device: str, args: argparse.Namespace) -> None:
    if importlib.util.find_spec("duckdb") is None:
        raise SkipStage("duckdb is not installed (the runner's store needs it)")
    from evalkit.registry import all_tasks
    from evalkit.run.evaluate import build_quietly, evaluate
    from evalkit.store import Store

    task = all_tasks()["phantom-report"]
    card = tiny_card(tiny_dir, args.tiny_tokens)
    adapter = build_quietly(card, device=device, batch_size=16)
    from evalkit.data.phantom import generate_phantom

    root = workdir / "runner-data"
    generate_phantom(root / "phantom", n_train=0, n_validate=0, n_test=args.samples, size=256)
    with Store(workdir / "runner.duckdb") as store:
        started = time.perf_counter()
        (summary,) = evaluate(card, task, db=store, adapter=adapter, data_root=root, batch_size=16)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        (again,) = evaluate(card, task, db=store, adapter=adapter, data_root=root, batch_size=16)
        resumed = time.perf_counter() - started
    check.result["runner"] = {
        "model": "tiny-qwen3vl",
        "task": task.name,
        "samples": summary.n_samples,
        "generated": summary.generated,
        "errors": summary.errors,
        "end_to_end_seconds": round(seconds, 3),
        "end_to_end_samples_per_s": round(summary.n_samples / seconds, 2),
        "rerun_seconds_all_cached": round(resumed, 3),
        "rerun_generated": again.generated,
        "metrics": summary.metrics,
        "unavailable": summary.unavailable,
    }


# --- main ------------------------------------------------------------------------------------------------------------


def summary_lines(result: dict[str, Any]) -> list[str]:
    env = result.get("env") or {}
    lines = [
        f"gpu_check: {env.get('gpu', env.get('device', '?'))} | torch {env.get('torch')} | transformers "
        f"{env.get('transformers')} | vllm {env.get('vllm')} | total {result.get('total_seconds')} s",
        f"{'backend':<12} {'model':<18} {'bs':>4} {'samples/s':>10} {'tok/s':>9} {'bare s/s':>9} {'overhead':>9} "
        f"{'same':>7}",
    ]
    for run in result["runs"]:
        lines.append(
            f"{run['backend']:<12} {run['model']:<18} {run['batch_size']:>4} {run['harness_samples_per_s']:>10} "
            f"{run['harness_tokens_per_s']:>9} {run['bare_samples_per_s']:>9} "
            f"{str(run['overhead_vs_bare_generate_pct']) + '%':>9} {run['outputs_identical']:>7}"
        )
    runner = result.get("runner")
    if runner:
        lines.append(
            f"runner (tiny, {runner['samples']} samples, DuckDB + parsing + metrics): "
            f"{runner['end_to_end_samples_per_s']} samples/s; rerun with everything cached "
            f"{runner['rerun_seconds_all_cached']} s"
        )
    for name, stage in result["stages"].items():
        if stage["status"] != "ok":
            lines.append(f"stage {name}: {stage['status']}: {stage.get('reason') or stage.get('error')}")
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--small", action="store_true", help="tiny sizes for a CPU smoke run (or GPU_CHECK_SMALL=1)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "/tmp") / "gpu_check.json")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new stages after this")
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--no-vllm", action="store_true")
    parser.add_argument("--eager", action="store_true", default=True, help="vLLM enforce_eager (faster start)")
    args = parser.parse_args(argv)
    args.small = args.small or os.environ.get("GPU_CHECK_SMALL") == "1"
    if args.small:
        args.samples = args.samples or 8
        args.tiny_batch_sizes, args.tiny_tokens = [1, 8], 8
        args.big_batch_sizes, args.big_tokens, args.big_image = [4], 8, 256
    else:
        args.samples = args.samples or 64
        args.tiny_batch_sizes, args.tiny_tokens = [1, 16, 64], 32
        args.big_batch_sizes, args.big_tokens, args.big_image = [8, 32], 64, 512
    args.save_2b = not args.no_vllm
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    check = Check(args.out, args.budget_s)
    check.result["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    check.result["env"] = check.stage("env", environment, device)
    try:
        with tempfile.TemporaryDirectory(prefix="evalkit-gpu-check-") as tmp:
            workdir = Path(tmp)
            tiny_dir = check.stage("transformers_tiny", transformers_tiny, check, workdir, device, args)
            if tiny_dir is not None:
                check.stage("transformers_2b_shape", transformers_2b, check, workdir, tiny_dir, device, args, need_s=60)
                if not args.no_vllm:
                    check.stage("vllm", vllm_stage, check, workdir, device, args, need_s=150)
                check.stage("runner", runner_stage, check, workdir, tiny_dir, device, args, need_s=20)
    except KeyboardInterrupt:
        # gpu_check.sh sends SIGINT at its hard time limit: keep what was measured.
        check.result["notes"].append(f"interrupted after {check.elapsed():.0f} s")
    finally:
        check.save()
    print("\n".join(summary_lines(check.result)))
    print(f"results: {args.out}")
    failed = [n for n, s in check.result["stages"].items() if s["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
