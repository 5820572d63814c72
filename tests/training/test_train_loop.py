"""A few real SFT and GRPO steps (TRL, CPU) on a tiny locally built Qwen3-VL.

Checks that weights change, that the rewards TRL logs are exactly evalkit's metric values on the same
completions, and that `evalkit train` writes a checkpoint that `evalkit run --model <dir>` evaluates.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("trl")

from evalkit.answers import parse_output
from evalkit.cli import app
from evalkit.config import parse_spec
from evalkit.metrics import get_metric
from evalkit.registry import resolve_model
from evalkit.sample import Sample
from evalkit.training import grpo as grpo_module
from evalkit.training.config import TrainConfig
from evalkit.training.rewards import MetricReward, build_reward, completion_text

TINY_BUILD = {"text_hidden": 64, "layers": 2, "vision_depth": 2, "vision_hidden": 32, "seed": 0, "card_name": "t-base"}

pytestmark = pytest.mark.slow  # training runs (TRL on the CPU): the full suite, not the fast lane


def _sft_recipe(root: Path, **train: Any) -> dict[str, Any]:
    return {
        "recipe": "sft",
        "name": "tiny-sft",
        "model": {
            "checkpoint": str(root / "seed0" / "base"),
            "card_overrides": {"box_format": "unit01", "decoding": {"max_new_tokens": 12}},
            "build": TINY_BUILD,
        },
        "data": {
            "train": [
                {"task": "phantom-report", "limit": 4},
                {"task": "phantom-anatomy-grounding", "limit": 4},
            ]
        },
        "train": {
            "output_dir": str(root / "seed0" / "sft"),
            "learning_rate": 1e-3,
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "logging_steps": 1,
            **train,
        },
        "sft": {"max_length": None},
    }


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _changed(before: dict[str, Any], after: dict[str, Any]) -> int:
    return sum(not before[k].float().equal(after[k].float()) for k in before)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict[str, Any]:
    """`evalkit train sft` through the CLI, then GRPO through the API with recording rewards."""
    root = tmp_path_factory.mktemp("train")
    recipe = root / "sft.yaml"
    recipe.write_text(yaml.safe_dump(_sft_recipe(root)), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", "sft", "--config", str(recipe), "--data-root", str(data_root)])
    assert result.exit_code == 0, result.output

    calls: list[dict[str, Any]] = []

    class Recording(MetricReward):
        def __call__(self, prompts, completions, **columns):  # type: ignore[override]
            values = super().__call__(prompts, completions, **columns)
            calls.append({"name": self.__name__, "completions": completions, "columns": columns, "values": values})
            return values

    def recording_reward(spec, card):
        built = build_reward(spec, card)
        reward = Recording(
            built.metric_name,
            card,
            name=built.__name__,
            options=built.metric.options,
            negate=built.negate,
            failure_value=built.failure_value,
            weight=built.weight,
        )
        return reward

    grpo_recipe = {
        "recipe": "grpo",
        "name": "tiny-grpo",
        "model": {"checkpoint": str(root / "seed0" / "sft")},
        "data": {
            "train": [
                {"task": "phantom-report", "limit": 4},
                {"task": "phantom-anatomy-grounding", "limit": 4},
            ]
        },
        "train": {
            "output_dir": str(root / "seed0" / "grpo"),
            "learning_rate": 1e-3,
            "max_steps": 2,
            "per_device_train_batch_size": 8,
            "logging_steps": 1,
            "lr_scheduler_type": "constant",
        },
        "grpo": {
            "rewards": ["soft_f1_iou", "rouge_l", "gleu"],
            "num_generations": 4,
            "max_completion_length": 16,
            "temperature": 1.0,
        },
    }
    config = parse_spec(TrainConfig, grpo_recipe, Path("grpo.yaml"))
    original = grpo_module.build_reward
    grpo_module.build_reward = recording_reward
    try:
        grpo_result = grpo_module.run_grpo(config, data_root=data_root)
    finally:
        grpo_module.build_reward = original
    return {"root": root, "sft_output": result.output, "grpo": grpo_result, "calls": calls, "data_root": data_root}


def test_sft_writes_a_checkpoint_with_its_card_and_changes_weights(chain: dict[str, Any]) -> None:
    seed = chain["root"] / "seed0"
    assert "tiny-sft: sft finished, 3 steps" in chain["sft_output"]
    assert _changed(_weights(seed / "base"), _weights(seed / "sft")) > 0
    card = resolve_model(str(seed / "sft"))
    assert card.name == "tiny-sft" and card.adapter == "transformers" and card.box_format == "unit01"
    assert card.checkpoint == str((seed / "sft").resolve())
    training = card.training or {}
    assert training["recipe"] == "sft" and training["steps"] == 3 and training["seed"] == 0
    assert training["base_checkpoint"] == str(seed / "base") and training["base_card"] == "t-base"
    assert [d["task"] for d in training["data"]] == ["phantom-report", "phantom-anatomy-grounding"]
    assert "train_loss" in training["final_metrics"] and training["versions"]["trl"]
    assert resolve_model(str(seed / "base")).name == "t-base"  # the untrained model is evaluable too


def test_grpo_changes_weights_and_logs_exactly_the_metrics(chain: dict[str, Any]) -> None:
    seed = chain["root"] / "seed0"
    result = chain["grpo"]
    assert result.steps == 2
    assert _changed(_weights(seed / "sft"), _weights(seed / "grpo")) > 0
    card = resolve_model(str(seed / "grpo"))
    assert card.training["rewards"] == ["soft_f1_iou", "rouge_l", "gleu"]
    assert card.training["base_training"]["recipe"] == "sft"  # provenance chains back to the SFT run

    calls = chain["calls"]
    assert {c["name"] for c in calls} == {"soft_f1_iou", "rouge_l", "gleu"}
    compared = 0
    for call in calls:
        metric = get_metric(call["name"])
        columns = call["columns"]
        for i, completion in enumerate(call["completions"]):
            value = call["values"][i]
            parser = columns["parser"][i]
            if (parser == "boxes") != (metric.kind == "grounding"):
                assert value is None
                continue
            parsed = parse_output(completion_text(completion), parser, "unit01", "none", columns["image_size"][i])
            sample = Sample(
                sample_id=columns["sample_id"][i],
                task=columns["task"][i],
                image_paths=[],
                reference_text=columns["reference_text"][i] or None,
                reference_boxes=columns["reference_boxes"][i],
            )
            expected = metric.score([parsed], [sample])[0].value if parsed.parse_error is None else 0.0
            assert value == pytest.approx(expected, abs=1e-9)
            compared += 1
    assert compared >= 16

    # TRL's per-component logs are the means of exactly these values, step by step.
    logs = [entry for entry in result.log_history if "rewards/rouge_l/mean" in entry]
    assert len(logs) == 2
    for step, entry in enumerate(logs):
        for name in ("soft_f1_iou", "rouge_l", "gleu"):
            values = [v for c in calls if c["name"] == name for v in c["values"]]
            per_step = len(values) // 2
            chunk = [v for v in values[step * per_step : (step + 1) * per_step] if v is not None]
            assert entry[f"rewards/{name}/mean"] == pytest.approx(sum(chunk) / len(chunk), abs=1e-5)
            assert not math.isnan(entry[f"{name}/failure_rate"])


def test_evalkit_run_accepts_the_checkpoints(chain: dict[str, Any], tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    runner = CliRunner()
    for stage in ("base", "sft", "grpo"):
        folder = chain["root"] / "seed0" / stage
        args = ["run", "--model", str(folder), "--task", "phantom-anatomy-grounding", "--limit", "2"]
        result = runner.invoke(app, [*args, "--db", str(db), "--data-root", str(chain["data_root"])])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["leaderboard", "--db", str(db), "--json"])
    models = {row["model"] for row in yaml.safe_load(result.output)}
    assert models == {"t-base", "tiny-sft", "tiny-grpo"}


def test_ship_checkpoints_and_recreate_the_base(chain: dict[str, Any], tmp_path: Path) -> None:
    from evalkit.training.demo import SHIPPED_NAMES, materialize_base, ship_checkpoints

    seed = chain["root"] / "seed0"
    written = ship_checkpoints(seed, tmp_path / "ship")
    assert not (written["base"] / "model.safetensors").exists()
    for stage in ("sft", "grpo"):
        card = resolve_model(str(written[stage]))
        assert card.name == SHIPPED_NAMES[stage] and card.training["recipe"] == stage
        weights = _weights(written[stage])
        assert all(str(t.dtype) == "torch.float16" for t in weights.values() if t.is_floating_point())
    assert sum(f.stat().st_size for f in (tmp_path / "ship").rglob("*") if f.is_file()) < 2_000_000
    # The untrained weights are the seeded init: recreated bit for bit from the shipped config and stamp.
    base = materialize_base(written["base"], tmp_path / "models")
    built, recreated = _weights(seed / "base"), _weights(base)
    assert built.keys() == recreated.keys() and _changed(built, recreated) == 0
    assert resolve_model(str(base)).name == SHIPPED_NAMES["base"]
    assert materialize_base(written["base"], tmp_path / "models") == base  # reused


def test_lora_sft_is_merged_into_a_plain_checkpoint(chain: dict[str, Any], tmp_path: Path) -> None:
    from evalkit.training.sft import run_sft

    recipe = _sft_recipe(chain["root"], max_steps=2, output_dir=str(tmp_path / "lora"))
    recipe["lora"] = {"enabled": True, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    result = run_sft(parse_spec(TrainConfig, recipe, Path("lora.yaml")), data_root=chain["data_root"])
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    base, merged = _weights(chain["root"] / "seed0" / "base"), _weights(tmp_path / "lora")
    assert base.keys() == merged.keys()  # no lora_A / lora_B tensors left: loads without PEFT
    changed = [k for k in base if not base[k].equal(merged[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert result.card.training["lora"]["r"] == 4
