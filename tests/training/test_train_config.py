"""Recipe YAML validation: every shipped recipe loads; bad files and overrides name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from evalkit.errors import EvalkitError
from evalkit.training.config import TrainConfig, load_train_config
from evalkit.training.demo import GRPO_CONFIG, SFT_CONFIG

CONFIGS = sorted((ROOT / "evalkit" / "training" / "configs").glob("*.yaml"))
PAPER = {"sft.yaml", "coldstart-thinking.yaml", "grpo-report.yaml", "grpo-grounding.yaml"}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _minimal(recipe: str = "sft") -> dict:
    data = {
        "recipe": recipe,
        "name": "m",
        "model": {"checkpoint": "ckpt"},
        "data": {"train": ["phantom-report"]},
        "train": {"output_dir": "out", "learning_rate": 1e-5},
    }
    if recipe == "grpo":
        data["grpo"] = {"rewards": ["rouge_l"]}
    return data


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_recipes_validate(path: Path, tmp_path: Path) -> None:
    overrides = [f"data.thinking_traces={tmp_path / 't.jsonl'}"] if path.name == "coldstart-thinking.yaml" else []
    config = load_train_config(path, overrides)
    assert isinstance(config, TrainConfig)
    assert {p.name for p in CONFIGS} >= PAPER | {SFT_CONFIG.name, GRPO_CONFIG.name}


def test_paper_values_carry_their_source() -> None:
    for name in ("grpo-report.yaml", "grpo-grounding.yaml"):
        path = SFT_CONFIG.parent / name
        config = load_train_config(path)
        grpo = config.grpo
        assert grpo is not None
        assert (grpo.num_generations, grpo.beta, grpo.epsilon, grpo.epsilon_high) == (8, 0.01, 0.2, 0.28)
        assert (grpo.max_completion_length, grpo.prompts_per_rollout, grpo.prompts_per_update) == (1024, 512, 128)
        assert config.train.learning_rate == 1e-6
        text = path.read_text(encoding="utf-8")
        for field in ("num_generations", "beta", "epsilon", "epsilon_high", "max_completion_length", "learning_rate"):
            line = next(li for li in text.splitlines() if li.strip().startswith(f"{field}:"))
            assert "RadVLM-GRPO" in line, line
    sft = load_train_config(SFT_CONFIG.parent / "sft.yaml")
    assert (sft.train.learning_rate, sft.train.warmup_ratio, sft.train.num_train_epochs) == (1e-5, 0.1, 1)
    assert sft.train.lr_scheduler_type == "cosine" and not sft.model.freeze_vision


def test_cold_start_needs_traces() -> None:
    with pytest.raises(EvalkitError, match=r"needs 'data\.thinking_traces'"):
        load_train_config(SFT_CONFIG.parent / "coldstart-thinking.yaml")


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    data = _minimal()
    data["train"]["learnin_rate"] = 1e-4
    path = _write(tmp_path, data)
    with pytest.raises(EvalkitError) as info:
        load_train_config(path)
    message = str(info.value)
    assert str(path) in message and "field 'train.learnin_rate': unknown field" in message


def test_bad_values_name_the_field(tmp_path: Path) -> None:
    data = _minimal("grpo")
    data["grpo"]["num_generations"] = 1
    data["train"]["learning_rate"] = "fast"
    with pytest.raises(EvalkitError) as info:
        load_train_config(_write(tmp_path, data))
    message = str(info.value)
    assert "field 'grpo.num_generations'" in message and "field 'train.learning_rate'" in message


def test_recipe_sections_must_match(tmp_path: Path) -> None:
    data = _minimal("sft")
    data["grpo"] = {"rewards": ["rouge_l"]}
    with pytest.raises(EvalkitError, match="recipe 'sft' takes no 'grpo' section"):
        load_train_config(_write(tmp_path, data))
    data = _minimal("grpo")
    del data["grpo"]
    with pytest.raises(EvalkitError, match="needs a 'grpo' section"):
        load_train_config(_write(tmp_path, data))
    with pytest.raises(EvalkitError, match="this is `evalkit train grpo`"):
        load_train_config(_write(tmp_path, _minimal("sft")), recipe="grpo")
    data = _minimal("grpo")
    data["grpo"]["prompts_per_rollout"], data["grpo"]["prompts_per_update"] = 500, 128
    with pytest.raises(EvalkitError, match="multiple of 'prompts_per_update'"):
        load_train_config(_write(tmp_path, data))


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    data = _minimal("grpo")
    data["data"]["train"] = [{"task": "phantom-report"}, "phantom-anatomy-grounding"]
    path = _write(tmp_path, data)
    config = load_train_config(
        path,
        ["train.max_steps=7", "grpo.beta=0.01", "data.train.0.limit=5", "lora.enabled=true", "grpo.rewards=[gleu]"],
    )
    assert config.train.max_steps == 7 and config.grpo is not None and config.grpo.beta == 0.01
    assert config.data.train[0].limit == 5 and config.lora.enabled
    assert [r.name for r in config.grpo.rewards] == ["gleu"]
    with pytest.raises(EvalkitError) as info:
        load_train_config(path, ["train.max_stepz=7"])
    assert str(path) in str(info.value) and "--set train.max_stepz=7" in str(info.value)
    assert "field 'train.max_stepz': unknown field" in str(info.value)
    with pytest.raises(EvalkitError, match=r"expected key\.path=value"):
        load_train_config(path, ["train.max_steps"])
    with pytest.raises(EvalkitError, match="'name' is not a mapping"):
        load_train_config(path, ["name.x=1"])
    with pytest.raises(EvalkitError, match=r"'data\.train\.1' is not a mapping"):
        load_train_config(path, ["data.train.1.limit=1"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="file not found"):
        load_train_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: [sft\n", encoding="utf-8")
    with pytest.raises(EvalkitError, match="not valid YAML"):
        load_train_config(bad)
    bad.write_text("- sft\n", encoding="utf-8")
    with pytest.raises(EvalkitError, match="expected a mapping"):
        load_train_config(bad)


def test_paper_batch_terms_map_onto_trl() -> None:
    from evalkit.training.grpo import batch_args

    config = load_train_config(SFT_CONFIG.parent / "grpo-grounding.yaml")
    # 8 processes x 16 completions per micro-step: 128 prompts x 8 = 1024 completions per optimiser step,
    # 512 prompts x 8 = 4096 completions per rollout.
    assert batch_args(config, world=8) == {"gradient_accumulation_steps": 8, "steps_per_generation": 32}
    assert batch_args(config, world=1) == {"gradient_accumulation_steps": 64, "steps_per_generation": 256}
    with pytest.raises(EvalkitError, match=r"grpo\.prompts_per_update"):
        batch_args(config, world=3)


def test_trainer_args_pass_through_and_unknown_fields(tmp_path: Path) -> None:
    pytest.importorskip("trl")
    from trl import GRPOConfig

    from evalkit.training.grpo import grpo_args
    from evalkit.training.modeling import make_trl_config
    from evalkit.training.rewards import build_reward

    config = load_train_config(
        GRPO_CONFIG, ["train.trainer_args={top_k: 5}", "grpo.beta=0.01", f"train.output_dir={tmp_path}"]
    )
    rewards = [build_reward("soft_f1_iou", _card_for_tests())]
    args = make_trl_config(GRPOConfig, grpo_args(config, tmp_path, rewards))
    assert (args.top_k, args.beta, args.epsilon_high, args.num_generations) == (5, 0.01, 0.28, 8)
    assert args.temperature == 0.5 and args.use_cpu and not args.remove_unused_columns
    with pytest.raises(EvalkitError, match=r"no field\(s\) \['not_a_field'\]"):
        make_trl_config(GRPOConfig, {"output_dir": str(tmp_path), "not_a_field": 1})


def _card_for_tests():
    from evalkit.config import ModelCard

    return ModelCard(name="m", adapter="transformers", checkpoint="x", box_format="unit01")
