"""Supervised fine-tuning (and cold-start thinking SFT) on TRL's SFTTrainer.

The data are prompt/completion pairs from `evalkit.training.data` (the task's own prompts; the reference report, or the
reference boxes in the card's box format, as the completion; `<think>` traces for the cold start), trained with
the loss on the completion only. Multi-GPU / multi-node runs go through `accelerate launch` with the configs in
`evalkit/training/configs/accelerate/` (DeepSpeed ZeRO-3 included); nothing here is distributed code of its own.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.config import ModelCard
from evalkit.training import modeling
from evalkit.training.config import TrainConfig
from evalkit.training.data import build_rows, read_thinking_traces, to_dataset
from evalkit.training.preflight import run_preflight


@dataclass
class TrainResult:
    output_dir: Path
    card: ModelCard
    steps: int
    seconds: float
    final_metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, dict[str, float | None]] = field(default_factory=dict)
    log_history: list[dict[str, Any]] = field(default_factory=list)


def corpus_of(rows: list[dict[str, Any]]) -> list[str]:
    """Prompt and answer texts, for the tokenizer of a locally built model."""
    texts = [m["content"] for row in rows for m in row["prompt"] if isinstance(m.get("content"), str)]
    texts += [m["content"] for row in rows for m in row.get("completion", []) if isinstance(m.get("content"), str)]
    return texts


def run_sft(
    config: TrainConfig,
    *,
    config_path: Path | None = None,
    overrides: list[str] | None = None,
    data_root: Path | None = None,
    output_dir: Path | None = None,
    db: Path | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train, save the checkpoint with its `evalkit_card.yaml`, and evaluate it if the recipe asks."""
    started = time.time()
    out = Path(output_dir or config.train.output_dir)
    card = modeling.base_card(config)
    root = modeling.data_root(config, data_root)
    traces = read_thinking_traces(Path(config.data.thinking_traces)) if config.data.thinking_traces else None
    rows = build_rows(
        modeling.sources(config),
        card,
        root,
        with_completion=True,
        thinking_traces=traces,
        shuffle_seed=config.data.shuffle_seed,
    )
    modeling.build_model_if_asked(config, corpus_of(rows), card)
    run_preflight(config, card, rows)  # before any weights are loaded
    from trl import SFTConfig, SFTTrainer  # after the pre-flight: importing TRL takes seconds

    assert config.sft is not None
    args = modeling.common_trainer_args(config, out)
    args.update(
        max_length=config.sft.max_length,
        completion_only_loss=config.sft.completion_only_loss,
    )
    # The trainer config first: under ZeRO-3 it registers the DeepSpeed config, so that from_pretrained below
    # builds the model sharded (zero.Init) instead of whole on every process.
    trl_config = modeling.make_trl_config(SFTConfig, args)
    model, processor = modeling.load_model_and_processor(config, card)
    trainer = SFTTrainer(
        model=model,
        args=trl_config,
        train_dataset=to_dataset(rows),
        processing_class=processor,
        peft_config=modeling.peft_config(config),
        callbacks=callbacks,
    )
    return train_and_save(trainer, processor, config, config_path, card, out, len(rows), started, overrides, root, db)


def train_and_save(
    trainer: Any,
    processor: Any,
    config: TrainConfig,
    config_path: Path | None,
    card: ModelCard,
    out: Path,
    n_examples: int,
    started: float,
    overrides: list[str] | None,
    root: Path | None,
    db: Path | None,
) -> TrainResult:
    """Train, then write the checkpoint with its card and provenance: the same tail for SFT and GRPO."""
    trainer.train()
    final = modeling.log_summary(trainer)
    record = modeling.provenance(
        config,
        config_path,
        card,
        steps=trainer.state.global_step,
        n_examples=n_examples,
        started=started,
        final_metrics=final,
        overrides=overrides,
    )
    trained = modeling.save_checkpoint(trainer, processor, config, out, card, record)
    result = TrainResult(out, trained, trainer.state.global_step, time.time() - started, final)
    result.log_history = list(trainer.state.log_history)
    return finish(result, config, root, db)


def finish(result: TrainResult, config: TrainConfig, root: Path | None, db: Path | None) -> TrainResult:
    """Evaluate with the harness when the recipe has an `evaluate` block; record the numbers in the card."""
    if config.evaluate is None or not modeling.is_main_process():
        return result
    blocker = modeling.in_process_evaluation_blocker(config)
    if blocker is not None:
        commands = "\n  ".join(modeling.evaluation_commands(result.output_dir, config, root))
        print(
            f"evaluate: not run inside the training process ({blocker}); run it in a fresh process:\n  {commands}",
            file=sys.stderr,
            flush=True,
        )
        return result
    result.evaluation = modeling.evaluate_checkpoint(result.output_dir, config, root, db)
    training = dict(result.card.training or {})
    training["evaluation"] = result.evaluation
    result.card = result.card.model_copy(update={"training": training})
    modeling.write_card(result.card, result.output_dir)
    return result
