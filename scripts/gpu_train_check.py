"""GPU check of training/: a few GRPO steps of the recipe on CUDA, on a locally built Qwen3-VL-architecture model.

Stages (two processes with time limits, so a vLLM crash or hang cannot take the rest down; each stage writes its
JSON as soon as it ends, so a timeout keeps what finished):
  env          versions, CUDA device, which optional packages import
  build        a small Qwen3-VL (head_dim 64, bf16-friendly) with tokenizer and processor, written locally
  sft          SFT steps on phantom grounding (so that GRPO starts with non-zero rewards, as the paper does)
  grpo         GRPO steps with the soft-F1 reward, transformers generation
  grpo_vllm    the same with vLLM generation in TRL's colocate mode (skipped when vLLM does not import)
  eval         the harness on the GRPO checkpoint (phantom grounding test split, a few samples)
Results go to $OUT/gpu_train_check.json. `--cpu-smoke` runs everything tiny on the CPU (to test this script).
Run through scripts/gpu_train_check.sh.
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
GROUPS = (("env", "build", "sft", "grpo", "eval"), ("grpo_vllm",))
BUDGET_S = float(os.environ.get("GPU_CHECK_BUDGET_S", "450"))
FIRST_GROUP_MAX_S = 300.0


def sizes(smoke: bool) -> dict[str, Any]:
    if smoke:
        return {
            "hidden": 64,
            "layers": 2,
            "heads": 1,
            "vision_hidden": 64,
            "vision_depth": 1,
            "sft_steps": 3,
            "grpo_steps": 2,
            "prompts": 2,
            "generations": 4,
            "eval_limit": 3,
            "sft_batch": 4,
        }
    return {
        "hidden": 256,
        "layers": 4,
        "heads": 4,
        "vision_hidden": 128,
        "vision_depth": 2,
        "sft_steps": 300,
        "grpo_steps": 8,
        "prompts": 8,
        "generations": 8,
        "eval_limit": 40,
        "sft_batch": 16,
    }


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
    from model_adapters.qwen3vl_processor import image_only_processor_class
    from training.data import Source, build_rows
    from training.modeling import write_card
    from training.sft import corpus_of

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
    image_processor = qwen3vl_image_processor(max_pixels=256 * 256)
    out = work / "base"
    model.save_pretrained(out)
    stock = stock_processor(image_processor, tokenizer)
    processor = stock or image_only_processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )
    processor.save_pretrained(out)
    write_card(card.model_copy(update={"checkpoint": str(out)}), out)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
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
    )


def _config(recipe: str, work: Path, smoke: bool, **grpo: Any) -> Any:
    from evalkit.config import parse_spec
    from training.config import TrainConfig

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
            "sft": {"max_length": None},
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
    from training.sft import run_sft

    started = time.time()
    result = run_sft(_config("sft", work, smoke))
    return {
        "steps": result.steps,
        "seconds": round(time.time() - started, 1),
        "train_loss": result.final_metrics.get("train_loss"),
        "last_loss": result.final_metrics.get("loss"),
        "mean_token_accuracy": result.final_metrics.get("mean_token_accuracy"),
    }


def _grpo(work: Path, smoke: bool, vllm: bool) -> dict[str, Any]:
    from safetensors.torch import load_file

    from training.grpo import run_grpo

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
    from evalkit.evaluation import build_quietly, evaluate
    from evalkit.registry import resolve_model, resolve_tasks
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
    return out


STAGES = {
    "env": stage_env,
    "build": stage_build,
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
                from evalkit.data.phantom import ensure_phantom

                ensure_phantom(work / "data" / "phantom")
            result = {"status": "ok", **STAGES[name](work, smoke)}
        except Exception as exc:
            result = {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
        result["stage_seconds"] = round(time.time() - started, 1)
        result_file.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"stage {name}: {result['status']} ({result['stage_seconds']}s)", flush=True)
        if result["status"] != "ok":
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU (tests this script)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: $OUT/gpu_train_check_work)")
    parser.add_argument("--stages", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out_dir = Path(os.environ.get("OUT") or "/tmp")
    work = args.work or out_dir / "gpu_train_check_work"
    if args.stages:
        return run_stages(args.stages.split(","), work, args.cpu_smoke)

    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("stage-*.json"):
        old.unlink()
    report: dict[str, Any] = {"mode": "cpu-smoke" if args.cpu_smoke else "cuda", "sizes": sizes(args.cpu_smoke)}
    budget = BUDGET_S * (4 if args.cpu_smoke else 1)  # the smoke run shares 2 CPU cores; it only tests the script
    started = time.time()
    for index, group in enumerate(GROUPS):
        left = budget - (time.time() - started)
        limit = min(left, FIRST_GROUP_MAX_S * (4 if args.cpu_smoke else 1)) if index == 0 else left
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
        log = work / f"group-{index}.log"
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
    ok = all(report[n].get("status") == "ok" for n in ("build", "sft", "grpo", "eval"))
    return 0 if ok else 1


def print_summary(report: dict[str, Any], target: Path) -> None:
    env = report.get("env", {})
    print(f"\n== gpu_train_check ({report['mode']}), {report['total_s']}s; results in {target}")
    print(
        f"device: {env.get('device', 'cpu')}  torch {env.get('torch')}  transformers {env.get('transformers')}  "
        f"trl {env.get('trl')}  vllm {env.get('vllm')}"
    )
    for name in ("build", "sft", "grpo", "grpo_vllm", "eval"):
        r = report.get(name, {})
        detail = ""
        if name == "sft" and r.get("status") == "ok":
            detail = f"{r['steps']} steps, {r['seconds']}s, loss {r['last_loss']}"
        elif name.startswith("grpo") and r.get("status") == "ok" and "steps" in r:
            detail = (
                f"{r['steps']} steps, {r['seconds']}s, step times {r['step_time_s']}, "
                f"reward {r['reward_soft_f1_per_step']}, changed {r['tensors_changed']}"
            )
        elif r.get("skipped"):
            detail = f"skipped: {r['skipped']}"
        elif name == "eval" and r.get("status") == "ok":
            detail = json.dumps({k: v for k, v in r.items() if k not in ("status", "stage_seconds", "wall_s")})
        elif r.get("status") not in ("ok", None):
            detail = r.get("error") or r.get("reason") or ""
        print(f"  {name:10s} {r.get('status', '-'):8s} {detail}")


if __name__ == "__main__":
    sys.exit(main())
