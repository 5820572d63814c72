"""GRPO on TRL's GRPOTrainer, with rewards that are evalkit metrics (`evalkit.training.rewards`).

Generation runs through TRL: `model.generate` by default, or vLLM (`grpo.use_vllm`) in TRL's `colocate` mode
(in the training processes) or `server` mode (a `trl vllm-serve` process on other GPUs). Scaling out is
`accelerate launch --config_file evalkit/training/configs/accelerate/zero3.yaml -m evalkit.cli train grpo --config ...`
(multi-node: zero3-multinode.yaml); there is no RL loop or distributed code here.

The paper's batch terms map onto TRL's as follows (G = num_generations, W = number of processes):
`prompts_per_update` x G completions per optimiser step = per_device_train_batch_size x W x
gradient_accumulation_steps; `prompts_per_rollout` x G completions per generation round =
per_device_train_batch_size x W x steps_per_generation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.training import modeling
from evalkit.training.config import TrainConfig
from evalkit.training.data import build_rows, to_dataset
from evalkit.training.preflight import run_preflight
from evalkit.training.rewards import MetricReward, build_reward
from evalkit.training.sft import TrainResult, corpus_of, train_and_save


def world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def batch_args(config: TrainConfig, world: int | None = None) -> dict[str, Any]:
    """gradient_accumulation_steps / steps_per_generation from the paper's prompt counts, when given."""
    assert config.grpo is not None
    grpo, train = config.grpo, config.train
    world = world or world_size()
    per_step = train.per_device_train_batch_size * world  # completions per micro-step, all processes
    args: dict[str, Any] = {}
    if grpo.prompts_per_update is not None:
        completions = grpo.prompts_per_update * grpo.num_generations
        if completions % per_step:
            raise EvalkitError(
                f"grpo.prompts_per_update: {grpo.prompts_per_update} prompts x {grpo.num_generations} generations = "
                f"{completions} completions is not a multiple of train.per_device_train_batch_size x processes "
                f"= {per_step}"
            )
        args["gradient_accumulation_steps"] = completions // per_step
    if grpo.prompts_per_rollout is not None:
        completions = grpo.prompts_per_rollout * grpo.num_generations
        if completions % per_step:
            raise EvalkitError(
                f"grpo.prompts_per_rollout: {completions} completions per rollout is not a multiple of "
                f"train.per_device_train_batch_size x processes = {per_step}"
            )
        args["steps_per_generation"] = completions // per_step
    elif grpo.steps_per_generation is not None:
        args["steps_per_generation"] = grpo.steps_per_generation
    return args


def grpo_args(config: TrainConfig, output_dir: Path, rewards: list[MetricReward]) -> dict[str, Any]:
    assert config.grpo is not None
    grpo = config.grpo
    args = modeling.common_trainer_args(config, output_dir)
    args.update(
        num_generations=grpo.num_generations,
        beta=grpo.beta,
        epsilon=grpo.epsilon,
        epsilon_high=grpo.epsilon_high,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        top_p=grpo.top_p,
        loss_type=grpo.loss_type,
        scale_rewards=grpo.scale_rewards,
        num_iterations=grpo.num_iterations,
        mask_truncated_completions=grpo.mask_truncated_completions,
        log_completions=grpo.log_completions,
        reward_weights=[r.weight for r in rewards],
        # Reward functions read the reference columns (reference_text, reference_boxes, image_size, ...).
        remove_unused_columns=False,
        use_vllm=grpo.use_vllm,
    )
    args.update(batch_args(config))
    if grpo.use_vllm:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise EvalkitError(
                "grpo.use_vllm is true but vLLM is not installed here (pip install 'evalkit[vllm]'), "
                "or set grpo.use_vllm=false to generate with transformers"
            ) from exc
        args.update(vllm_mode=grpo.vllm_mode)
        if grpo.vllm_mode == "colocate":
            args.update(
                vllm_gpu_memory_utilization=grpo.vllm_gpu_memory_utilization,
                vllm_tensor_parallel_size=grpo.vllm_tensor_parallel_size,
                vllm_enable_sleep_mode=grpo.vllm_enable_sleep_mode,
            )
            if grpo.vllm_max_model_length:
                args["vllm_max_model_length"] = grpo.vllm_max_model_length
        else:
            args.update(vllm_server_host=grpo.vllm_server_host, vllm_server_port=grpo.vllm_server_port)
            if grpo.vllm_server_base_url:
                args["vllm_server_base_url"] = grpo.vllm_server_base_url
    # Anything in train.trainer_args wins (it is the documented escape hatch).
    args.update(config.train.trainer_args)
    return args


def run_grpo(
    config: TrainConfig,
    *,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    data_root: Path | None = None,
    output_dir: Path | None = None,
    db: Path | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train with GRPO, save the checkpoint with its `evalkit_card.yaml`, and evaluate it if the recipe asks."""
    assert config.grpo is not None
    started = time.time()
    out = Path(output_dir or config.train.output_dir)
    card = modeling.base_card(config)
    root = modeling.data_root(config, data_root)
    rows = build_rows(modeling.sources(config), card, root, shuffle_seed=config.data.shuffle_seed)
    modeling.build_model_if_asked(config, corpus_of(rows), card)
    run_preflight(config, card, rows)  # before any weights are loaded (reward models included)
    rewards = [build_reward(spec.model_dump(exclude_none=True), card) for spec in config.grpo.rewards]
    kinds = {row["parser"] for row in rows}
    for kind in kinds:
        if not any(r.parser == kind for r in rewards):
            names = ", ".join(r.__name__ for r in rewards)
            what = "grounding" if kind == "boxes" else "report"
            raise EvalkitError(f"grpo.rewards: the data has {what} tasks but no reward scores them (rewards: {names})")
    from trl import GRPOConfig, GRPOTrainer  # after the pre-flight: importing TRL takes seconds

    # The trainer config first: under ZeRO-3 it registers the DeepSpeed config, so that from_pretrained below
    # builds the model sharded (zero.Init) instead of whole on every process.
    trl_config = modeling.make_trl_config(GRPOConfig, grpo_args(config, out, rewards))
    model, processor = modeling.load_model_and_processor(config, card)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=trl_config,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=modeling.peft_config(config),
        callbacks=callbacks,
    )
    return train_and_save(trainer, processor, config, config_path, card, out, len(rows), started, overrides, root, db)
