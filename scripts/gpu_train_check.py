"""The GPU check (issue 19): evalkit's GPU paths on a locally built Qwen3-VL in the hub's layout, on phantom
images upscaled to radiograph size (2,560 x 3,072), sized for the GPU check machine (bare CUDA image, no vLLM,
no network, 15 minutes, 8 result files).

Stages (two processes with time limits, so a vLLM crash or hang cannot take the rest down; each stage writes its
JSON as soon as it ends, so a timeout keeps what finished):
  env          versions, CUDA device, which optional packages import
  build        a small Qwen3-VL (head_dim 64) saved in the hub layout with the hub's unbounded pixel size
  adapter      the transformers adapter on radiographs with the card's pixel budget (image tokens, latency)
  sft          SFT steps on phantom grounding with the budget and max_length 4096 (GRPO then starts non-zero)
  grpo         GRPO steps with the soft-F1 reward, transformers generation
  eval         the harness on the GRPO checkpoint, then the generator is freed
  metrics      a GPU metric (BERTScore on a tiny local BERT) after the generator is freed: memory before/after
  grpo_vllm    GRPO with vLLM generation (TRL colocate): skipped, with the reason, where vLLM does not import
A stage that could not run says `skipped` and why; only a stage that ran says `ok`. Work files go to
$GPU_CHECK_WORK (default /tmp/evalkit_gpu_check), never under $OUT; $OUT gets gpu_train_check.json and the two
process logs. `--cpu-smoke` runs everything small on the CPU (to test this script; under 8 minutes here).
Run through scripts/gpu_train_check.sh (which installs missing packages from the .whl/ wheel folder).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GROUNDING = ["phantom-abnormality-grounding", "phantom-anatomy-grounding", "phantom-phrase-grounding"]
# Process groups, in order; the whole check stays within BUDGET_S (the device check must finish in 8 minutes).
GROUPS = (("env", "build", "adapter", "sft", "grpo", "eval", "metrics"), ("grpo_vllm",))
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", "420"))
FIRST_GROUP_MAX_S = 330.0
REQUIRED = ("build", "adapter", "sft", "grpo", "eval")
# Radiograph size, the hub's unbounded processor bounds, and the cards' budget (RadVLM-GRPO's).
RADIOGRAPH = (2560, 3072)
HUB_SIZE = {"shortest_edge": 65536, "longest_edge": 16777216}
PIXEL_BUDGET = {"min_pixels": 1024, "max_pixels": 451584}
DEFAULT_WORK = Path(os.environ.get("GPU_CHECK_WORK") or "/tmp/evalkit_gpu_check")


def sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {
            "hidden": 64,
            "layers": 2,
            "heads": 1,
            "vision_hidden": 64,
            "vision_depth": 1,
            "sft_steps": 3,
            "grpo_steps": 1,
            "prompts": 2,
            "generations": 2,
            "eval_limit": 2,
            "sft_batch": 2,
            "images": {"train": 12, "validate": 1, "test": 4},
        }
    return {
        "hidden": 256,
        "layers": 4,
        "heads": 4,
        "vision_hidden": 128,
        "vision_depth": 2,
        "sft_steps": 120,
        "grpo_steps": 6,
        "prompts": 8,
        "generations": 8,
        "eval_limit": 16,
        "sft_batch": 16,
        "images": {"train": 96, "validate": 1, "test": 16},
    }


def prepare_data(work: Path, smoke: bool) -> Path:
    """A phantom set whose images are upscaled to radiograph size (boxes are fractions: they stay right)."""
    from PIL import Image

    from evalkit.data.phantom import generate_phantom

    counts = sizes(smoke)["images"]
    folder = work / "data" / "phantom"
    marker = folder / "radiograph-size.json"
    wanted = {"counts": counts, "size": list(RADIOGRAPH)}
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return folder
    marker.unlink(missing_ok=True)
    generate_phantom(folder, n_train=counts["train"], n_validate=counts["validate"], n_test=counts["test"])
    manifest = folder / "phantom.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for record in data["records"]:
        path = folder / "images" / f"{record['image_id']}.png"
        with Image.open(path) as image:
            image.convert("L").resize(RADIOGRAPH, Image.BILINEAR).save(path, compress_level=1)
        record["image_size"] = list(RADIOGRAPH)
    manifest.write_text(json.dumps(data), encoding="utf-8")
    marker.write_text(json.dumps(wanted), encoding="utf-8")
    return folder


# --- stages -------------------------------------------------------------------------------------------------


def stage_env(work: Path, smoke: bool) -> dict[str, Any]:
    import importlib

    info: dict[str, Any] = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "torchvision", "deepspeed"):
        try:
            info[name] = getattr(importlib.import_module(name), "__version__", "?")
        except Exception as exc:  # any import failure is information here
            info[name] = f"not importable: {type(exc).__name__}: {str(exc)[:200]}"
    import torch

    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        info["device"] = torch.cuda.get_device_name(0)
        info["bf16"] = torch.cuda.is_bf16_supported()
        info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def stage_build(work: Path, smoke: bool) -> dict[str, Any]:
    """A Qwen3-VL with head_dim 64 (vLLM's attention kernels expect >= 32), tokenizer trained on phantom text."""
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from evalkit.model_adapters.qwen3vl_processor import image_only_processor_class, write_hub_layout
    from evalkit.testing.tiny_qwen3vl import (
        CHAT_TEMPLATE,
        DEFAULT_CORPUS,
        SPECIAL_TOKENS,
        _train_tokenizer,
        greedy_generation,
        mrope_parameters,
        qwen3vl_config,
        qwen3vl_image_processor,
    )
    from evalkit.training.data import Source, build_rows
    from evalkit.training.modeling import write_card
    from evalkit.training.sft import corpus_of

    if not smoke and not torch.cuda.is_available():
        raise RuntimeError("no CUDA device here; `scripts/gpu_train_check.sh --cpu-smoke` runs the CPU path")
    s = sizes(smoke)
    card = demo_card(work / "base")
    rows = build_rows([Source(t) for t in GROUNDING], card, work / "data", with_completion=True)
    tokenizer = _train_tokenizer(sorted(set(DEFAULT_CORPUS) | set(corpus_of(rows))), vocab_size=1536)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim = s["hidden"] // s["heads"]
    config = qwen3vl_config(
        {
            "vocab_size": len(tokenizer),
            "hidden_size": s["hidden"],
            "intermediate_size": s["hidden"] * 3,
            "num_hidden_layers": s["layers"],
            "num_attention_heads": s["heads"],
            "num_key_value_heads": max(1, s["heads"] // 2),
            "head_dim": head_dim,
            "max_position_embeddings": 4096,
            "initializer_range": 0.05,
            "rope_parameters": mrope_parameters(head_dim),
        },
        {
            "depth": s["vision_depth"],
            "hidden_size": s["vision_hidden"],
            "intermediate_size": s["vision_hidden"] * 2,
            "num_heads": max(1, s["vision_hidden"] // 64),
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "out_hidden_size": s["hidden"],
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
            "initializer_range": 0.05,
        },
        ids,
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    greedy_generation(model, ids, clear_bos=False)
    # The hub's own bounds (16.7 M pixels): the card's budget must be what limits a radiograph's tokens.
    image_processor = qwen3vl_image_processor(max_pixels=HUB_SIZE["longest_edge"], min_pixels=HUB_SIZE["shortest_edge"])
    out = work / "base"
    model.save_pretrained(out)
    stock = stock_processor(image_processor, tokenizer)
    processor = stock or image_only_processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    write_hub_layout(out)
    write_card(card.model_copy(update={"checkpoint": str(out)}), out)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "layout": sorted(f.name for f in out.iterdir() if f.suffix == ".json"),
        "processor": type(processor).__name__,
        "train_rows": len(rows),
    }


def stock_processor(image_processor: Any, tokenizer: Any) -> Any:
    """The stock Qwen3VLProcessor (what vLLM loads) when torchvision is there for its video half; else None."""
    try:
        from transformers import Qwen3VLProcessor
        from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

        from evalkit.testing.tiny_qwen3vl import CHAT_TEMPLATE

        video = Qwen3VLVideoProcessor(patch_size=16, temporal_patch_size=2, merge_size=2)
        return Qwen3VLProcessor(image_processor, tokenizer, video, chat_template=CHAT_TEMPLATE)
    except Exception:
        return None


def demo_card(checkpoint: Path) -> Any:
    from evalkit.config import ModelCard

    return ModelCard(
        name="gpu-check-base",
        adapter="transformers",
        checkpoint=str(checkpoint),
        family="qwen3-vl",
        box_format="unit01",
        decoding={"temperature": 0, "max_new_tokens": 40},
        image=PIXEL_BUDGET,
        options={"resize_factor": 32},
    )


def _config(recipe: str, work: Path, smoke: bool, **grpo: Any) -> Any:
    from evalkit.config import parse_spec
    from evalkit.training.config import TrainConfig

    s = sizes(smoke)
    # float32 master weights with bf16 autocast on CUDA (train.bf16: auto): pure-bf16 weights would round away
    # most of the small model's updates at these learning rates.
    data = {"train": [{"task": t} for t in GROUNDING], "root": str(work / "data")}
    if recipe == "sft":
        raw = {
            "recipe": "sft",
            "name": "gpu-check-sft",
            "model": {"checkpoint": str(work / "base"), "dtype": "float32"},
            "data": data,
            "train": {
                "output_dir": str(work / "sft"),
                "learning_rate": 1e-3,
                "lr_scheduler_type": "cosine",
                "warmup_ratio": 0.05,
                "max_steps": s["sft_steps"],
                "per_device_train_batch_size": s["sft_batch"],
                "logging_steps": max(1, min(25, s["sft_steps"] // 4)),
            },
            "sft": {"max_length": 4096},
        }
    else:
        raw = {
            "recipe": "grpo",
            "name": grpo.pop("name"),
            "model": {"checkpoint": str(work / "sft"), "dtype": "float32"},
            "data": data,
            "train": {
                "output_dir": str(work / grpo.pop("output")),
                "learning_rate": 5e-5,
                "lr_scheduler_type": "constant",
                "max_steps": s["grpo_steps"],
                "per_device_train_batch_size": s["prompts"] * s["generations"],
                "logging_steps": 1,
            },
            "grpo": {
                "rewards": ["soft_f1_iou"],
                "num_generations": s["generations"],
                "beta": 0.01,  # the paper's KL coefficient: exercises the reference model on the GPU
                "epsilon": 0.2,
                "epsilon_high": 0.28,
                "max_completion_length": 48,
                "temperature": 1.0,
                **grpo,
            },
        }
    return parse_spec(TrainConfig, raw, Path(f"gpu-check-{recipe}.yaml"))


def stage_sft(work: Path, smoke: bool) -> dict[str, Any]:
    from evalkit.training.sft import run_sft

    started = time.time()
    result = run_sft(_config("sft", work, smoke))
    return {
        "saved_size": _saved_size(result.output_dir),
        "steps": result.steps,
        "seconds": round(time.time() - started, 1),
        "train_loss": result.final_metrics.get("train_loss"),
        "last_loss": result.final_metrics.get("loss"),
        "mean_token_accuracy": result.final_metrics.get("mean_token_accuracy"),
    }


def _grpo(work: Path, smoke: bool, vllm: bool) -> dict[str, Any]:
    from safetensors.torch import load_file

    from evalkit.training.grpo import run_grpo

    name, output = ("gpu-check-grpo-vllm", "grpo_vllm") if vllm else ("gpu-check-grpo", "grpo")
    extra: dict[str, Any] = {"name": name, "output": output}
    if vllm:
        extra.update(use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.25, vllm_max_model_length=2048)
    config = _config("grpo", work, smoke, **extra)
    started = time.time()
    result = run_grpo(config)
    seconds = time.time() - started
    before, after = (
        load_file(str(work / "sft" / "model.safetensors")),
        load_file(str(result.output_dir / "model.safetensors")),
    )
    changed = sum(not before[k].float().equal(after[k].float()) for k in before)
    steps = [e for e in result.log_history if "rewards/soft_f1_iou/mean" in e]
    return {
        "steps": result.steps,
        "seconds": round(seconds, 1),
        "step_time_s": [round(e.get("step_time", float("nan")), 3) for e in steps],
        "reward_soft_f1_per_step": [round(e["rewards/soft_f1_iou/mean"], 4) for e in steps],
        "failure_rate_per_step": [round(e.get("soft_f1_iou/failure_rate", float("nan")), 4) for e in steps],
        "kl_per_step": [round(e.get("kl", float("nan")), 6) for e in steps],
        "tensors_changed": f"{changed}/{len(before)}",
        "use_vllm": vllm,
        "saved_size": _saved_size(result.output_dir),
    }


def _saved_size(folder: Path) -> Any:
    """The pixel bounds in a checkpoint's saved image processor config (the card's budget after training)."""
    config = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    return {"size": config.get("size"), "processor_class": config.get("processor_class")}


def stage_adapter(work: Path, smoke: bool) -> dict[str, Any]:
    """The transformers adapter on radiograph-sized images with the card's budget: tokens per image, latency."""
    from PIL import Image

    from evalkit.model_adapters.base import GenerationRequest
    from evalkit.model_adapters.transformers_local import TransformersAdapter
    from evalkit.registry import resolve_model
    from evalkit.sample import Sample

    card = resolve_model(str(work / "base"))
    adapter = TransformersAdapter(card, batch_size=4)
    paths = sorted((work / "data" / "phantom" / "images").glob("*.png"))[:4]
    requests = [
        GenerationRequest(
            sample=Sample(sample_id=p.stem, task="gpu-check", image_paths=[str(p)]),
            prompt="Describe the findings of this chest radiograph.",
            images=[Image.open(p).convert("RGB")],
        )
        for p in paths
    ]
    started = time.time()
    results = adapter.generate(requests)
    seconds = time.time() - started
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"adapter errors: {errors[:2]}")
    processor = adapter.processor
    grid = processor.image_processor(images=requests[0].images, **adapter._image_kwargs()["images_kwargs"])
    tokens = int(grid["image_grid_thw"].prod()) // processor.image_processor.merge_size**2
    return {
        "device": adapter.device,
        "image_size": list(RADIOGRAPH),
        "image_tokens": tokens,
        "requests": len(requests),
        "seconds": round(seconds, 2),
        "generated_tokens": [r.tokens for r in results],
    }


def stage_metrics(work: Path, smoke: bool) -> dict[str, Any]:
    """BERTScore (a GPU metric) on a tiny local BERT once the generator of `eval` is gone from this process."""
    import gc
    import importlib.util

    import torch

    if importlib.util.find_spec("bert_score") is None:
        return {"skipped": "bert-score is not installed here (add it to the wheel folder: scripts/gpu_wheels.sh)"}
    from evalkit.metrics import get_metric
    from evalkit.sample import Parsed, Sample
    from evalkit.testing.tiny_clinical import write_all

    gc.collect()
    cuda = torch.cuda.is_available()
    before = torch.cuda.memory_allocated() if cuda else 0
    options = dict(write_all(work / "clinical")["bertscore"], device="cuda" if cuda else "cpu")
    metric = get_metric("bertscore", **options)
    reason = metric.available()
    if reason:
        return {"skipped": f"bertscore unavailable: {reason}"}
    refs = ["No acute cardiopulmonary process.", "Mild cardiomegaly with small bilateral pleural effusions."] * 32
    preds = ["No acute process.", "Heart size is normal."] * 32
    samples = [Sample(f"m{i}", "gpu-check", [], reference_text=r) for i, r in enumerate(refs)]
    started = time.time()
    scores = metric.score([Parsed(answer=p) for p in preds], samples)
    return {
        "device": options["device"],
        "pairs": len(scores),
        "seconds": round(time.time() - started, 2),
        "mean_f1": round(sum(s.value for s in scores if s.value is not None) / len(scores), 4),
        "cuda_allocated_before_mib": round(before / 2**20, 1),
        "cuda_peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
    }


def stage_grpo(work: Path, smoke: bool) -> dict[str, Any]:
    return _grpo(work, smoke, vllm=False)


def stage_grpo_vllm(work: Path, smoke: bool) -> dict[str, Any]:
    try:
        import vllm  # noqa: F401
    except Exception as exc:
        return {"skipped": f"vLLM does not import here: {type(exc).__name__}: {str(exc)[:200]}"}
    if smoke:
        return {"skipped": "--cpu-smoke: vLLM generation needs CUDA"}
    return _grpo(work, smoke, vllm=True)


def stage_eval(work: Path, smoke: bool) -> dict[str, Any]:
    from evalkit.config import MetricSpec
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.evaluate import build_quietly, evaluate
    from evalkit.store import Store

    s = sizes(smoke)
    out: dict[str, Any] = {}
    with Store(work / "eval.duckdb") as store:
        for stage in ("sft", "grpo"):
            folder = work / stage
            if not (folder / "evalkit_card.yaml").is_file():
                continue
            card = resolve_model(str(folder))
            adapter = build_quietly(card, batch_size=32)
            out[stage] = {"device": getattr(adapter, "device", None)}
            tasks = []
            for name in GROUNDING:
                task = resolve_tasks(name)[0]
                if "soft_f1_iou" not in task.metric_names:
                    task = task.model_copy(update={"metrics": [*task.metrics, MetricSpec(name="soft_f1_iou")]})
                tasks.append(task)
            summaries = evaluate(
                card, tasks, db=store, adapter=adapter, data_root=work / "data", limit=s["eval_limit"], batch_size=32
            )
            for summary in summaries:
                out[stage][summary.task] = {k: summary.metrics.get(k) for k in ("soft_f1_iou", "radvlm_map50")}
                out[stage][summary.task]["parse_failures"] = summary.parse_failures
            del adapter  # the generator is freed before the next stage scores with a GPU metric
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        out["cuda_allocated_after_free_mib"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return out


STAGES = {
    "env": stage_env,
    "build": stage_build,
    "adapter": stage_adapter,
    "metrics": stage_metrics,
    "sft": stage_sft,
    "grpo": stage_grpo,
    "grpo_vllm": stage_grpo_vllm,
    "eval": stage_eval,
}


def run_stages(names: list[str], work: Path, smoke: bool) -> int:
    """Child process: run stages in order, writing each stage's JSON as soon as it ends; stop at a failure."""
    for name in names:
        result_file = work / f"stage-{name}.json"
        started = time.time()
        try:
            if name != "env":
                prepare_data(work, smoke)
            found = STAGES[name](work, smoke)
            result = {"status": "skipped" if "skipped" in found else "ok", **found}
        except Exception as exc:
            result = {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
        result["stage_seconds"] = round(time.time() - started, 1)
        result_file.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"stage {name}: {result['status']} ({result['stage_seconds']}s)", flush=True)
        if result["status"] == "error":
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (tests this script)")
    parser.add_argument("--work", type=Path, default=None, help=f"scratch folder, never under $OUT ({DEFAULT_WORK})")
    parser.add_argument("--stages", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT") or "/tmp")
    work = args.work or DEFAULT_WORK
    if out_dir.resolve() in (work.resolve(), *work.resolve().parents):
        parser.error(f"--work {work} is under $OUT ({out_dir}): at most 8 result files may come back")
    if args.stages:
        return run_stages(args.stages.split(","), work, args.cpu_smoke)

    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("stage-*.json"):
        old.unlink()
    report: dict[str, Any] = {"mode": "cpu-smoke" if args.cpu_smoke else "cuda", "sizes": sizes(args.cpu_smoke)}
    budget = BUDGET_S
    started = time.time()
    for index, group in enumerate(GROUPS):
        left = budget - (time.time() - started)
        limit = min(left, FIRST_GROUP_MAX_S) if index == 0 else left
        if limit < 30:
            for name in group:
                report[name] = {"status": "skipped", "reason": f"time budget ({budget:.0f}s) used up"}
            continue
        if index > 0 and report.get("sft", {}).get("status") != "ok":
            for name in group:
                report[name] = {"status": "skipped", "reason": "stage 'sft' did not succeed"}
            continue
        command = [sys.executable, str(Path(__file__).resolve()), "--stages", ",".join(group), "--work", str(work)]
        if args.cpu_smoke:
            command.append("--cpu-smoke")
        log = out_dir / f"gpu_train_check-{index}.log"  # results: the JSON and these two logs
        timed_out = False
        with log.open("w") as handle:
            try:
                subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
        tail = log.read_text(errors="replace")[-3000:]
        for name in group:
            result_file = work / f"stage-{name}.json"
            if result_file.is_file():
                report[name] = json.loads(result_file.read_text(encoding="utf-8"))
            elif timed_out:
                report[name] = {"status": "timeout", "limit_s": round(limit), "log_tail": tail}
                timed_out = False  # the stages after the one that hung never started
            else:
                report[name] = {"status": "not run", "log_tail": tail}
            if report[name].get("status") == "error":
                report[name]["log_tail"] = tail
        print(f"[{time.time() - started:6.1f}s] " + ", ".join(f"{n}: {report[n]['status']}" for n in group), flush=True)
    report["total_s"] = round(time.time() - started, 1)
    target = out_dir / "gpu_train_check.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    print_summary(report, target)
    ok = all(report[n].get("status") == "ok" for n in REQUIRED)
    return 0 if ok else 1


def print_summary(report: dict[str, Any], target: Path) -> None:
    env = report.get("env", {})
    print(f"\n== gpu_train_check ({report['mode']}), {report['total_s']}s; results in {target}")
    print(
        f"device: {env.get('device', 'cpu')}  torch {env.get('torch')}  transformers {env.get('transformers')}  "
        f"trl {env.get('trl')}  vllm {env.get('vllm')}"
    )
    for name in ("build", "adapter", "sft", "grpo", "eval", "metrics", "grpo_vllm"):
        r = report.get(name, {})
        detail = ""
        if name == "sft" and r.get("status") == "ok":
            detail = f"{r['steps']} steps, {r['seconds']}s, loss {r['last_loss']}"
        elif name.startswith("grpo") and r.get("status") == "ok" and "steps" in r:
            detail = (
                f"{r['steps']} steps, {r['seconds']}s, step times {r['step_time_s']}, "
                f"reward {r['reward_soft_f1_per_step']}, changed {r['tensors_changed']}"
            )
        elif r.get("skipped") or r.get("reason"):
            detail = f"skipped: {r.get('skipped') or r.get('reason')}"
        elif name in ("adapter", "metrics") and r.get("status") == "ok":
            detail = json.dumps({k: v for k, v in r.items() if k not in ("status", "stage_seconds")})
        elif name == "eval" and r.get("status") == "ok":
            detail = json.dumps({k: v for k, v in r.items() if k not in ("status", "stage_seconds", "wall_s")})
        elif r.get("status") not in ("ok", None):
            detail = r.get("error") or r.get("reason") or ""
        print(f"  {name:10s} {r.get('status', '-'):8s} {detail}")


if __name__ == "__main__":
    sys.exit(main())
