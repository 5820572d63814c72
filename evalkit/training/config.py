"""Recipe YAML schema (pydantic), loaded with errors that name the file and the field, as evalkit's specs are.

A recipe is one YAML file (see `evalkit/training/configs/`): `recipe` (sft | grpo), `model`, `data`, `train` (the
optimiser and batch settings every trainer shares), `lora`, and the section of its recipe (`sft` or `grpo`),
plus an optional `evaluate` block run through the harness after training. `--set key.path=value` overrides
are applied to the YAML data before validation, so they are checked exactly like the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from evalkit.config import Strict, load_yaml, parse_spec
from evalkit.errors import EvalkitError

RECIPES = ("sft", "grpo")


class BuildSpec(Strict):
    """Build a small random-weight Qwen3-VL locally (CPU demo, tests, GPU check): no hub, no download."""

    text_hidden: int = 64
    layers: int = 2
    vision_depth: int = 2
    vision_hidden: int = 32
    seed: int = 0
    card_name: str | None = Field(default=None, description="Card name of the built (untrained) model.")
    vocab_from_data: bool = Field(
        default=True, description="Train the BPE tokenizer on the recipe's prompts and answers (shorter sequences)."
    )


class ModelSpec(Strict):
    checkpoint: str = Field(description="Hub id, local folder, or (with `build`) where to build the model.")
    revision: str | None = None
    card: str | None = Field(
        default=None,
        description="Card name, card YAML or checkpoint folder whose conventions (box format, thinking, prompts, "
        "decoding) the trained model keeps. Default: the checkpoint's own evalkit_card.yaml, else Qwen3-VL's.",
    )
    card_overrides: dict[str, Any] = Field(default_factory=dict, description="Fields changed on that card.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: str | None = None
    freeze_vision: bool = Field(default=False, description="Keep the vision tower frozen (the paper trains it).")
    trust_remote_code: bool = False
    build: BuildSpec | None = None


class SourceSpec(Strict):
    task: str = Field(description="Task name, task group or task YAML path.")
    split: str = "train"
    limit: int | None = Field(default=None, ge=1)
    repeat: int = Field(default=1, ge=1)
    dataset: str | None = Field(default=None, description="For a task group: the data set (loader) to keep.")


class DataSpec(Strict):
    root: str | None = Field(default=None, description="Data root (default: --data-root, $EVALKIT_DATA_ROOT, ./data).")
    train: list[SourceSpec] = Field(min_length=1)
    shuffle_seed: int | None = 0
    thinking_traces: str | None = Field(
        default=None,
        description="JSONL of {sample_id, thinking[, answer, task]}: cold-start SFT on <think>...</think> traces.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `train: [phantom-report, {task: mimic-cxr-report, limit: 100}]`
        if isinstance(data, dict) and isinstance(data.get("train"), list):
            data = dict(data)
            data["train"] = [{"task": t} if isinstance(t, str) else t for t in data["train"]]
        return data


class LoraSpec(Strict):
    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"
    merge: bool = Field(default=True, description="Merge the adapter into the weights when saving.")


class TrainSpec(Strict):
    """Settings every recipe shares; mapped onto TRL's SFTConfig / GRPOConfig (transformers TrainingArguments)."""

    output_dir: str
    seed: int = 0
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_train_epochs: float = 1.0
    max_steps: int = Field(default=-1, description="Stop after this many optimiser steps (-1: epochs decide).")
    per_device_train_batch_size: int = Field(default=1, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    bf16: bool | Literal["auto"] = "auto"
    gradient_checkpointing: bool = False
    logging_steps: int = 10
    save_strategy: Literal["no", "steps", "epoch"] = "no"
    save_steps: int = 500
    dataloader_num_workers: int = 0
    deepspeed: str | None = Field(default=None, description="DeepSpeed JSON (e.g. ZeRO-3), passed to the trainer.")
    report_to: list[str] | str = "none"
    gpu_memory_gib: float | None = Field(
        default=None,
        gt=0,
        description="GPU memory the pre-flight plans vLLM's budget with (default: the visible GPU's own).",
    )
    trainer_args: dict[str, Any] = Field(
        default_factory=dict, description="Any other SFTConfig/GRPOConfig field, passed through unchanged."
    )


class SFTSpec(Strict):
    max_length: int | None = Field(default=4096, description="Truncate longer sequences (None: no truncation).")
    completion_only_loss: bool = True
    require_thinking_traces: bool = Field(
        default=False, description="A cold-start recipe: refuse to run without data.thinking_traces."
    )


class RewardSpec(Strict):
    name: str = Field(description="Log name; a preset (soft_f1_iou, neg_radcliq, ...) fills the other fields.")
    metric: str | None = None
    options: dict[str, Any] | None = None
    negate: bool | None = None
    failure_value: float | None = None
    weight: float = 1.0
    profile: str | None = Field(
        default=None, description="Convention profile for parsing completions (default radvlm-grpo: the seed reward's)."
    )


class GRPOSpec(Strict):
    rewards: list[RewardSpec] = Field(min_length=1)
    num_generations: int = Field(default=8, ge=2)
    beta: float = Field(default=0.0, ge=0, description="KL coefficient (0: no reference model).")
    epsilon: float = 0.2
    epsilon_high: float | None = None
    max_completion_length: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    steps_per_generation: int | None = None
    prompts_per_rollout: int | None = Field(
        default=None, description="Prompts per generation batch (the paper's batch); sets steps_per_generation."
    )
    prompts_per_update: int | None = Field(
        default=None, description="Prompts per optimiser step (the paper's mini-batch); sets gradient accumulation."
    )
    mask_truncated_completions: bool = False
    log_completions: bool = False
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    vllm_max_model_length: int | None = None
    vllm_enable_sleep_mode: bool = False
    vllm_server_base_url: str | None = None
    vllm_server_host: str = "0.0.0.0"
    vllm_server_port: int = 8000

    @model_validator(mode="before")
    @classmethod
    def _reward_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("rewards"), list):
            data = dict(data)
            data["rewards"] = [{"name": r} if isinstance(r, str) else r for r in data["rewards"]]
        return data

    @model_validator(mode="after")
    def _batches(self) -> GRPOSpec:
        for field_name in ("prompts_per_rollout", "prompts_per_update"):
            value = getattr(self, field_name)
            if value is not None and value < 1:
                raise ValueError(f"'{field_name}' must be at least 1")
        if self.prompts_per_rollout and self.prompts_per_update:
            if self.prompts_per_rollout % self.prompts_per_update:
                raise ValueError("'prompts_per_rollout' must be a multiple of 'prompts_per_update'")
        return self


class EvaluateSpec(Strict):
    """Run the harness on the trained checkpoint (as `evalkit run --model <output_dir>` would)."""

    tasks: list[str] = Field(min_length=1)
    split: str | None = Field(default=None, description="Default: each task's own split (its held-out test set).")
    limit: int | None = Field(default=None, ge=1)
    db: str | None = None
    batch_size: int = 16
    extra_metrics: list[str] = Field(default_factory=list, description="Metrics scored besides the task's own.")


class TrainConfig(Strict):
    recipe: Literal["sft", "grpo"]
    name: str = Field(description="Name of the trained model on the leaderboard (its card name).")
    description: str = ""
    source: str = ""
    model: ModelSpec
    data: DataSpec
    train: TrainSpec
    lora: LoraSpec = Field(default_factory=LoraSpec)
    sft: SFTSpec | None = None
    grpo: GRPOSpec | None = None
    evaluate: EvaluateSpec | None = None

    @model_validator(mode="after")
    def _recipe_section(self) -> TrainConfig:
        other = "grpo" if self.recipe == "sft" else "sft"
        if getattr(self, other) is not None:
            raise ValueError(f"recipe '{self.recipe}' takes no '{other}' section")
        if self.recipe == "sft" and self.sft is None:
            self.sft = SFTSpec()
        if self.recipe == "grpo" and self.grpo is None:
            raise ValueError("recipe 'grpo' needs a 'grpo' section with at least 'rewards'")
        if self.sft is not None and self.sft.require_thinking_traces and not self.data.thinking_traces:
            raise ValueError(
                "this cold-start recipe needs 'data.thinking_traces' (a JSONL of sample_id + thinking); "
                "pass --set data.thinking_traces=FILE"
            )
        if self.recipe == "grpo" and self.data.thinking_traces:
            raise ValueError("'data.thinking_traces' is for SFT (cold start); GRPO samples its own thinking")
        return self


def apply_overrides(data: dict[str, Any], overrides: list[str], path: Path) -> dict[str, Any]:
    """`key.sub=value` strings applied to YAML data; values are parsed as YAML (numbers, booleans, lists)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise EvalkitError(f"--set '{item}': expected key.path=value (e.g. train.max_steps=10)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise EvalkitError(f"--set '{item}': value is not valid YAML: {exc}") from exc
        node: Any = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
                continue
            if not isinstance(node, dict):
                raise EvalkitError(f"{path}: --set '{item}': '{'.'.join(parts[: depth + 1])}' is not a mapping")
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        last = parts[-1]
        if isinstance(node, list) and last.isdigit() and int(last) < len(node):
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise EvalkitError(f"{path}: --set '{item}': '{'.'.join(parts[:-1])}' is not a mapping")
    return data


def bundled_recipe(path: Path) -> Path:
    if path.exists():
        return path
    from evalkit.resources import bundled

    folder = bundled("training_configs")
    parts = path.parts
    for prefix in (("evalkit", "training", "configs"), ("training", "configs")):  # the checkout's path, old and new
        if parts[: len(prefix)] == prefix:
            parts = parts[len(prefix) :]
            break
    candidate = folder.joinpath(*parts) if parts else folder
    if candidate.suffix not in (".yaml", ".yml"):
        candidate = candidate.with_name(candidate.name + ".yaml")
    return candidate if candidate.is_file() else path


def load_train_config(path: Path, overrides: list[str] | None = None, recipe: str | None = None) -> TrainConfig:
    """Read, override and validate a recipe; `recipe` (from the CLI sub-command) must match the file's.

    A path that does not exist but names a bundled recipe (`sft`, `cpu-demo-sft.yaml`,
    `evalkit/training/configs/sft.yaml`) reads the bundled one, so the documented commands work from a wheel install.
    """
    path = bundled_recipe(Path(path))
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise EvalkitError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    if overrides:
        data = apply_overrides(data, overrides, path)
    label = Path(f"{path} (with --set {' '.join(overrides)})") if overrides else path
    config = parse_spec(TrainConfig, data, label)
    if recipe is not None and config.recipe != recipe:
        raise EvalkitError(f"{path}: field 'recipe' is '{config.recipe}', but this is `evalkit train {recipe}`")
    return config
