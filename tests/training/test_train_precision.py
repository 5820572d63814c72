"""Training precision, model loading order and the post-training evaluation (issue 19: L5, L6, L7)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from evalkit.errors import EvalkitError
from evalkit.resources import PROJECT_ROOT
from evalkit.training import modeling
from evalkit.training.config import load_train_config

DEMO_SFT = PROJECT_ROOT / "evalkit" / "model_adapters" / "checkpoints" / "demo-qwen3vl-sft"


def _sft(*extra: str) -> Any:
    overrides = [f"model.checkpoint={DEMO_SFT}", "data.train=[{task: phantom-report, limit: 2}]", *extra]
    return load_train_config(Path("sft"), overrides, recipe="sft")


def test_bf16_update_at_the_recipe_learning_rate_is_rounded_away() -> None:
    import torch

    weight = torch.tensor(0.02, dtype=torch.bfloat16)
    assert weight + 1e-5 * 1.0 == weight  # an AdamW step of about lr (1e-5) on a typical weight: lost
    assert torch.tensor(0.02) + 1e-5 != torch.tensor(0.02)  # in fp32 it lands


def test_pure_bf16_full_fine_tune_without_deepspeed_is_refused(data_root: Path, monkeypatch) -> None:
    from evalkit.training.data import build_rows
    from evalkit.training.preflight import run_preflight

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    config = _sft()
    card = modeling.base_card(config)
    rows = build_rows(modeling.sources(config), card, data_root, with_completion=True)
    with pytest.raises(EvalkitError, match=r"model.dtype bfloat16 with a full fine-tune and no DeepSpeed.*zero3"):
        run_preflight(config, card, rows)
    for ok in (_sft("model.dtype=float32"), _sft("lora.enabled=true")):
        run_preflight(ok, card, rows)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    run_preflight(config, card, rows)


def test_auto_dtype_keeps_fp32_master_weights_without_deepspeed(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(modeling, "device_kind", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert modeling.torch_dtype(_sft("model.dtype=auto")) == torch.float32
    assert modeling.torch_dtype(_sft("model.dtype=auto", "lora.enabled=true")) == torch.bfloat16
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert modeling.torch_dtype(_sft("model.dtype=auto")) == torch.bfloat16


def test_evaluate_block_is_not_run_beside_vllm_or_deepspeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit.training.sft import TrainResult, finish

    called: list[Path] = []
    monkeypatch.setattr(modeling, "evaluate_checkpoint", lambda out, *a: called.append(out) or {"t": {"m": 1.0}})
    monkeypatch.setattr(modeling, "is_main_process", lambda: True)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    sets = [f"model.checkpoint={DEMO_SFT}", "evaluate.tasks=[phantom-report]", "evaluate.limit=5"]
    grpo = load_train_config(Path("grpo-report"), [*sets, "grpo.use_vllm=true"], recipe="grpo")
    card = modeling.base_card(grpo)
    result = finish(TrainResult(tmp_path, card, 1, 1.0), grpo, tmp_path / "data", None)
    assert called == [] and result.evaluation == {}
    err = capsys.readouterr().err
    assert "TRL's vLLM engine is still resident" in err
    assert f"evalkit run --model {tmp_path} --task phantom-report --batch-size 16 --limit 5" in err

    plain = load_train_config(Path("grpo-report"), [*sets, "grpo.use_vllm=false"], recipe="grpo")
    result = finish(TrainResult(tmp_path, card, 1, 1.0), plain, tmp_path / "data", None)
    assert called == [tmp_path] and result.evaluation == {"t": {"m": 1.0}}


@pytest.mark.slow  # imports TRL (about 6 s)
def test_trainer_config_exists_before_the_model_is_loaded(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Under ZeRO-3 the trainer config registers DeepSpeed's config; only then does from_pretrained shard at init.
    from evalkit.training import sft

    events: list[str] = []
    real = modeling.make_trl_config

    class Loaded(Exception):
        pass

    def make(config_class: type, args: dict[str, Any]) -> Any:
        events.append("trainer config")
        return real(config_class, args)

    def load(config: Any, card: Any = None) -> Any:
        events.append("load")
        raise Loaded

    monkeypatch.setattr(modeling, "make_trl_config", make)
    monkeypatch.setattr(modeling, "load_model_and_processor", load)
    config = _sft("model.dtype=float32", f"train.output_dir={data_root / 'out'}")
    with pytest.raises(Loaded):
        sft.run_sft(config, data_root=data_root)
    assert events == ["trainer config", "load"]
