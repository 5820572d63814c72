"""What both trainers share: the card being trained, model and processor loading, the TRL arguments that every
recipe maps the same way, and writing a checkpoint that `evalkit run --model <dir>` evaluates directly."""

from __future__ import annotations

import json
import os
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import evalkit
from evalkit.config import ImageSpec, MetricSpec, ModelCard
from evalkit.errors import EvalkitError
from evalkit.registry import CARD_IN_CHECKPOINT, resolve_model, resolve_tasks
from evalkit.testing.tiny_qwen3vl import BUILD_STAMP
from evalkit.training.config import TrainConfig
from evalkit.training.data import Source

# The pixel budget of evalkit's Qwen3-VL cards and RadVLM-GRPO's recipes (1,024..451,584 pixels, about 440 image
# tokens for a radiograph); the hub's own Qwen3-VL processor config allows 16.7 M pixels (7,000+ tokens).
QWEN3VL_PIXEL_BUDGET = ImageSpec(min_pixels=1024, max_pixels=451584)

# TRL's configs always set `gradient_checkpointing`, which transformers 5 renamed; the warning is not ours to fix.
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*", category=FutureWarning)


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def base_card(config: TrainConfig) -> ModelCard:
    """The card whose conventions the trained model keeps (prompts, box format, thinking, decoding)."""
    spec = config.model
    if spec.card is not None:
        card = resolve_model(spec.card)
    elif (Path(spec.checkpoint) / CARD_IN_CHECKPOINT).is_file():
        card = resolve_model(spec.checkpoint)
    else:
        name = Path(spec.checkpoint).name or spec.checkpoint
        if spec.build is not None:
            name = spec.build.card_name or f"{config.name}-base"
        card = ModelCard(
            name=name,
            adapter="transformers",
            checkpoint=spec.checkpoint,
            family="qwen3-vl",
            box_format="qwen1000",
            # A released Qwen3-VL gets the Qwen3-VL cards' budget; a locally built one keeps its own processor's.
            image=QWEN3VL_PIXEL_BUDGET if spec.build is None else ImageSpec(),
        )
    data = card.model_dump()
    data.update(checkpoint=spec.checkpoint, revision=spec.revision, adapter="transformers")
    try:
        return ModelCard.model_validate(_deep_merge(data, spec.card_overrides))
    except ValueError as exc:
        raise EvalkitError(f"model.card_overrides: {exc}") from exc


def sources(config: TrainConfig) -> list[Source]:
    return [Source(s.task, s.split, s.limit, s.repeat, s.dataset) for s in config.data.train]


def data_root(config: TrainConfig, cli_root: Path | None) -> Path | None:
    if cli_root is not None:
        return cli_root
    return Path(config.data.root) if config.data.root else None


def build_model_if_asked(config: TrainConfig, corpus: list[str], card: ModelCard) -> None:
    """Build the local random-weight Qwen3-VL of `model.build` unless the same build is already there.

    The built folder gets its own `evalkit_card.yaml` (the trained card's conventions, `build.card_name`), so the
    untrained model can be evaluated as the baseline of the recipe.
    """
    build = config.model.build
    if build is None:
        return
    from evalkit.testing.tiny_qwen3vl import DEFAULT_CORPUS

    out = Path(config.model.checkpoint)
    vocab = sorted(set(DEFAULT_CORPUS) | set(corpus)) if build.vocab_from_data else None
    stamp = {"build": build.model_dump(), "vocab": _digest(vocab)}
    stamp_file = out / BUILD_STAMP

    def current() -> bool:
        try:
            return (out / "config.json").is_file() and json.loads(stamp_file.read_text(encoding="utf-8")) == stamp
        except (OSError, ValueError):
            return False

    from accelerate import PartialState

    # Under `accelerate launch` every process reads the recipe; only the main one writes the folder.
    with PartialState().main_process_first():
        if not current():
            _build(config, out, vocab, stamp, card)


def _build(config: TrainConfig, out: Path, vocab: list[str] | None, stamp: dict[str, Any], card: ModelCard) -> None:
    from evalkit.model_adapters.qwen3vl_processor import quiet_progress_bars
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    build = config.model.build
    assert build is not None
    stamp_file = out / BUILD_STAMP
    with quiet_progress_bars():
        build_tiny_qwen3vl(
            out,
            seed=build.seed,
            text_hidden=build.text_hidden,
            layers=build.layers,
            vision_depth=build.vision_depth,
            vision_hidden=build.vision_hidden,
            vocab_corpus=vocab,
        )
    stamp_file.write_text(json.dumps(stamp, indent=1), encoding="utf-8")
    base = card.model_copy(
        update={
            "name": build.card_name or f"{config.name}-base",
            "checkpoint": str(out),
            "description": "Untrained (random-weight) Qwen3-VL-architecture model built locally by evalkit train "
            f"(model.build: {build.model_dump()}).",
            "source": "built locally; no published weights",
            "training": None,
        }
    )
    write_card(base, out)


def _digest(items: list[str] | None) -> str | None:
    if items is None:
        return None
    import hashlib

    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()[:16]


def is_main_process() -> bool:
    from accelerate import PartialState

    return bool(PartialState().is_main_process)


def device_kind() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def uses_deepspeed(config: TrainConfig) -> bool:
    """A DeepSpeed run (the recipe's JSON, or `accelerate launch` with a DeepSpeed config such as zero3.yaml)."""
    flag = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes")
    return bool(config.train.deepspeed) or flag


def half_precision_master_weights(config: TrainConfig) -> bool:
    """Full fine-tuning whose optimiser would update bf16/fp16 weights in place (no DeepSpeed to keep fp32 master
    weights, no LoRA adapter in fp32)."""
    return not config.lora.enabled and not uses_deepspeed(config)


def torch_dtype(config: TrainConfig) -> Any:
    import torch

    if config.model.dtype == "auto":
        # bf16 weights only where something keeps fp32 master weights; else fp32 weights with bf16 autocast
        # (train.bf16: auto), since AdamW steps at small learning rates vanish in bf16's 8-bit mantissa.
        if device_kind() == "cuda" and torch.cuda.is_bf16_supported() and not half_precision_master_weights(config):
            return torch.bfloat16
        return torch.float32
    return getattr(torch, config.model.dtype)


def pixel_budget(card: ModelCard) -> dict[str, int] | None:
    """The card's pixel limits as a Qwen-VL processor `size` ({shortest_edge, longest_edge}); None without any."""
    from evalkit.model_adapters.chat import pixel_bounds

    bounds = pixel_bounds(card)
    if not bounds:
        return None
    return {"shortest_edge": bounds["min_pixels"], "longest_edge": bounds["max_pixels"]}


def load_model_and_processor(config: TrainConfig, card: ModelCard | None = None) -> tuple[Any, Any]:
    """The policy model (Qwen3-VL class for qwen3_vl checkpoints) and its processor, padded on the left.

    The card's pixel budget is set on the processor: TRL's collators call it without size arguments, so without
    this a radiograph is resized by the checkpoint's own bounds (the hub's allow 7,000+ image tokens).
    """
    from transformers import AutoConfig, AutoModelForImageTextToText

    from evalkit.model_adapters.qwen3vl_processor import load_processor, quiet_progress_bars

    spec = config.model
    options: dict[str, Any] = {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    try:
        model_config = AutoConfig.from_pretrained(spec.checkpoint, **options)
        if getattr(model_config, "model_type", None) == "qwen3_vl":
            from transformers import Qwen3VLForConditionalGeneration as model_class
        else:
            model_class = AutoModelForImageTextToText
        kwargs = dict(options, dtype=torch_dtype(config))
        if spec.attn_implementation:
            kwargs["attn_implementation"] = spec.attn_implementation
        with quiet_progress_bars():
            model = model_class.from_pretrained(spec.checkpoint, **kwargs)
        processor = load_processor(spec.checkpoint, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (ImportError, OSError, ValueError) as exc:
        raise EvalkitError(f"model.checkpoint: cannot load '{spec.checkpoint}': {exc}") from exc
    if card is not None and (size := pixel_budget(card)) is not None:
        from evalkit.model_adapters.qwen3vl_processor import set_pixel_budget

        set_pixel_budget(processor, size["shortest_edge"], size["longest_edge"])
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"  # generation (GRPO rollouts) needs prompts to end where completions start
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.freeze_vision:
        frozen = 0
        for name, parameter in model.named_parameters():
            if ".visual." in f".{name}" or "vision_tower" in name:
                parameter.requires_grad_(False)
                frozen += 1
        if not frozen:
            raise EvalkitError(f"model.freeze_vision: no vision tower parameters found in '{spec.checkpoint}'")
    return model, processor


def peft_config(config: TrainConfig) -> Any:
    if not config.lora.enabled:
        return None
    from peft import LoraConfig

    lora = config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def common_trainer_args(config: TrainConfig, output_dir: Path) -> dict[str, Any]:
    """TrainingArguments fields shared by SFTConfig and GRPOConfig."""
    import torch

    train = config.train
    cuda = torch.cuda.is_available()
    bf16 = train.bf16 if train.bf16 != "auto" else bool(cuda and torch.cuda.is_bf16_supported())
    args: dict[str, Any] = {
        "output_dir": str(output_dir),
        "seed": train.seed,
        "data_seed": train.seed,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler_type,
        # transformers 5 folded warmup_ratio into warmup_steps: a float below 1 is a ratio of the total steps.
        "warmup_steps": float(train.warmup_ratio) if train.warmup_ratio else 0,
        "weight_decay": train.weight_decay,
        "max_grad_norm": train.max_grad_norm,
        "num_train_epochs": train.num_train_epochs,
        "max_steps": train.max_steps,
        "per_device_train_batch_size": train.per_device_train_batch_size,
        "gradient_accumulation_steps": train.gradient_accumulation_steps,
        "bf16": bf16,
        "gradient_checkpointing": train.gradient_checkpointing,
        "logging_steps": train.logging_steps,
        "save_strategy": train.save_strategy,
        "save_steps": train.save_steps,
        "dataloader_num_workers": train.dataloader_num_workers,
        "report_to": train.report_to,
        "use_cpu": not cuda,
        "disable_tqdm": not os.isatty(2),
    }
    if train.deepspeed:
        if not Path(train.deepspeed).is_file():
            raise EvalkitError(f"train.deepspeed: file '{train.deepspeed}' not found")
        args["deepspeed"] = train.deepspeed
    args.update(train.trainer_args)
    return args


def make_trl_config(config_class: type, args: dict[str, Any]) -> Any:
    """Build SFTConfig/GRPOConfig, turning unknown or bad fields into an EvalkitError that names them."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise EvalkitError(
            f"train.trainer_args: {config_class.__name__} has no field(s) {unknown} (check the TRL version's docs)"
        )
    try:
        return config_class(**args)
    except (ValueError, TypeError) as exc:
        raise EvalkitError(f"{config_class.__name__}: {exc}") from exc


def log_summary(trainer: Any) -> dict[str, float]:
    """The last logged value of every numeric training metric (loss, rewards/<name>/mean, ...)."""
    summary: dict[str, float] = {}
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                summary[key] = float(value)
    return summary


def save_checkpoint(
    trainer: Any, processor: Any, config: TrainConfig, output_dir: Path, card: ModelCard, provenance: dict[str, Any]
) -> ModelCard:
    """Write the model (LoRA merged when asked), the processor and `evalkit_card.yaml` into `output_dir`.

    `trainer.save_model` runs on every process (ZeRO-3 gathers the shards there); the main process alone merges a
    LoRA adapter and writes the processor and the card.
    """
    from evalkit.model_adapters.qwen3vl_processor import quiet_progress_bars

    output_dir.mkdir(parents=True, exist_ok=True)
    merge = config.lora.enabled and config.lora.merge
    with quiet_progress_bars():
        if not merge:
            trainer.save_model(str(output_dir))
        if trainer.accelerator.is_main_process:
            if merge:
                model = trainer.accelerator.unwrap_model(trainer.model)
                model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
                model.save_pretrained(str(output_dir), safe_serialization=True)
            processor.save_pretrained(str(output_dir))
            restore_stock_processor(config.model.checkpoint, output_dir, config.model.revision, pixel_budget(card))
    trained = card.model_copy(
        update={
            "name": config.name,
            "checkpoint": str(output_dir),
            "description": config.description or f"{config.recipe.upper()} of {card.checkpoint} by evalkit train",
            "source": config.source or card.source,
            "training": provenance,
        }
    )
    if trainer.accelerator.is_main_process:
        write_card(trained, output_dir)
    trainer.accelerator.wait_for_everyone()
    return trained


_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "video_preprocessor_config.json")


def restore_stock_processor(
    base: str, output_dir: Path, revision: str | None = None, size: dict[str, int] | None = None
) -> None:
    """Save the processor in the hub's layout, with the pixel budget trained with.

    Without torchvision, a stock Qwen3-VL processor is loaded as evalkit's image-only subclass, and saving it
    would name that class, which vLLM and plain transformers cannot load. When the base checkpoint names another
    processor class, its processor files are copied back (the tokenizer files stay as saved); an evalkit-built
    base is rewritten into the hub layout. Either way `size` (the card's budget) replaces the image processor's
    bounds: the hub's allow 16.7 M pixels, and TRL's vLLM and `evalkit run` read only the checkpoint's config.
    """
    from evalkit.model_adapters.qwen3vl_processor import PROCESSOR_CLASS_NAME, write_hub_layout

    def base_file(name: str) -> Path | None:
        local = Path(base) / name
        if local.is_file():
            return local
        if Path(base).is_dir():
            return None
        try:
            from transformers.utils import cached_file

            found = cached_file(
                base, name, revision=revision, _raise_exceptions_for_missing_entries=False, local_files_only=True
            )
        except (OSError, ValueError):
            return None
        return Path(found) if found else None

    sources = {name: base_file(name) for name in (*_PROCESSOR_FILES, "tokenizer_config.json")}
    named = []
    for file in sources.values():
        if file is not None:
            try:
                named.append(json.loads(file.read_text(encoding="utf-8")).get("processor_class"))
            except (OSError, ValueError):
                continue
    if any(named) and PROCESSOR_CLASS_NAME not in named:
        import shutil

        for name in _PROCESSOR_FILES:
            if sources[name] is not None:
                shutil.copyfile(sources[name], output_dir / name)
            elif (output_dir / name).is_file():  # e.g. the image-only processor's nested processor_config.json
                (output_dir / name).unlink()
        tokenizer_config = output_dir / "tokenizer_config.json"
        if tokenizer_config.is_file():
            data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
            if data.get("processor_class") == PROCESSOR_CLASS_NAME:
                data["processor_class"] = next(n for n in named if n)
                tokenizer_config.write_text(json.dumps(data, indent=2), encoding="utf-8")
    write_hub_layout(output_dir, size)


def write_card(card: ModelCard, output_dir: Path) -> Path:
    data = card.model_dump(mode="json", exclude_none=True)
    # The checkpoint is the folder itself (resolve_model fills it in), so the folder can be moved or shipped.
    data["checkpoint"] = "."
    path = Path(output_dir) / CARD_IN_CHECKPOINT
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    return path


def provenance(
    config: TrainConfig,
    config_path: Path | None,
    card: ModelCard,
    *,
    steps: int,
    n_examples: int,
    started: float,
    final_metrics: dict[str, float],
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    from evalkit.run.runner import git_sha

    versions = {"evalkit": evalkit.__version__}
    for module in ("torch", "transformers", "trl", "peft"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    record: dict[str, Any] = {
        "recipe": config.recipe,
        "config": _project_relative(config_path) if config_path else None,
        "overrides": list(overrides or []),
        "base_checkpoint": config.model.checkpoint,
        "base_card": card.name,
        "base_training": card.training,
        "data": [s.model_dump(exclude_none=True) for s in config.data.train],
        "n_examples": n_examples,
        "steps": steps,
        "seed": config.train.seed,
        "learning_rate": config.train.learning_rate,
        "lora": config.lora.model_dump() if config.lora.enabled else None,
        "final_metrics": {k: round(v, 6) for k, v in sorted(final_metrics.items())},
        "versions": versions,
        "git_sha": git_sha(),
        "seconds": round(time.time() - started, 1),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if config.model.build is not None:
        record["built"] = config.model.build.model_dump()
    if config.grpo is not None:
        record["rewards"] = [r.name for r in config.grpo.rewards]
        record["grpo"] = config.grpo.model_dump(exclude={"rewards"}, exclude_none=True)
    if config.data.thinking_traces:
        record["thinking_traces"] = config.data.thinking_traces
    return record


def _project_relative(path: Path) -> str:
    from evalkit.registry import PROJECT_ROOT

    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def in_process_evaluation_blocker(config: TrainConfig) -> str | None:
    """Why the recipe's `evaluate:` block must not run inside this training process, or None.

    After DeepSpeed, with TRL's (sleeping) vLLM engine, or with several processes, rank 0 still holds the sharded
    optimiser state, the engine's memory or its peers: generation there competes with them for the GPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > 1:
        return f"{world} training processes"
    if uses_deepspeed(config):
        return "DeepSpeed is still resident"
    if config.grpo is not None and config.grpo.use_vllm:
        return "TRL's vLLM engine is still resident"
    return None


def evaluation_commands(output_dir: Path, config: TrainConfig, data_root_path: Path | None) -> list[str]:
    """The `evalkit run` commands equivalent to the recipe's `evaluate:` block (one per task)."""
    import shlex

    spec = config.evaluate
    if spec is None:
        return []
    commands = []
    for name in spec.tasks:
        parts = ["evalkit", "run", "--model", str(output_dir), "--task", name, "--batch-size", str(spec.batch_size)]
        if spec.limit:
            parts += ["--limit", str(spec.limit)]
        if spec.db:
            parts += ["--db", spec.db]
        if data_root_path is not None:
            parts += ["--data-root", str(data_root_path)]
        commands.append(shlex.join(parts))
    return commands


def evaluate_checkpoint(
    output_dir: Path, config: TrainConfig, data_root_path: Path | None, db: Path | None
) -> dict[str, dict[str, float | None]]:
    """Run the harness on the saved checkpoint, exactly as `evalkit run --model <output_dir>` does."""
    from evalkit.results.store import DEFAULT_DB
    from evalkit.run.evaluate import evaluate

    spec = config.evaluate
    if spec is None:
        return {}
    tasks = []
    for name in spec.tasks:
        for task in resolve_tasks(name):
            if spec.split:
                task = task.model_copy(update={"dataset": task.dataset.model_copy(update={"split": spec.split})})
            extra = [MetricSpec(name=m) for m in spec.extra_metrics if m not in task.metric_names]
            if extra:
                task = task.model_copy(update={"metrics": [*task.metrics, *extra]})
            tasks.append(task)
    summaries = evaluate(
        str(output_dir),
        tasks,
        db=Path(db or spec.db or DEFAULT_DB),
        data_root=data_root_path,
        limit=spec.limit,
        batch_size=spec.batch_size,
    )
    return {s.task: {k: (round(v, 6) if v is not None else None) for k, v in s.metrics.items()} for s in summaries}
