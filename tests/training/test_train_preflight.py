"""The training pre-flight (issue 19, certain #2): numbers from card, recipe and checkpoint config, no weights.

The checkpoint here is Qwen3-VL-8B's config.json (no weights at all) with a tiny tokenizer and the hub's image
processor config: if the pre-flight let a run through, loading the weights would fail with another error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.resources import PROJECT_ROOT
from evalkit.training.config import load_train_config
from evalkit.training.modeling import base_card
from evalkit.training.preflight import GIB, image_tokens, kv_bytes_per_token, run_preflight

# Qwen/Qwen3-VL-8B-Instruct's config.json, the fields the pre-flight reads.
QWEN3VL_8B = {
    "model_type": "qwen3_vl",
    "architectures": ["Qwen3VLForConditionalGeneration"],
    "tie_word_embeddings": False,
    "text_config": {
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 36,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 151936,
        "max_position_embeddings": 262144,
        "dtype": "bfloat16",
    },
    "vision_config": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "patch_size": 16},
}
HUB_SIZE = {"shortest_edge": 65536, "longest_edge": 16777216}


@pytest.fixture(scope="module")
def config_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Qwen3-VL-8B's config, the hub's image processor config, a (tiny) tokenizer, and no weights."""
    folder = tmp_path_factory.mktemp("qwen3vl-8b") / "ckpt"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(
            PROJECT_ROOT / "evalkit" / "model_adapters" / "checkpoints" / "demo-qwen3vl-base" / name, folder / name
        )
    image = {"patch_size": 16, "merge_size": 2, "temporal_patch_size": 2, "size": HUB_SIZE}
    image.update(processor_class="Qwen3VLProcessor", image_processor_type="Qwen2VLImageProcessorFast")
    (folder / "preprocessor_config.json").write_text(json.dumps(image), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(QWEN3VL_8B), encoding="utf-8")
    return folder


def _sets(checkpoint: Path, *extra: str) -> list[str]:
    return [
        f"model.checkpoint={checkpoint}",
        "data.train=[{task: phantom-report, limit: 4}]",
        "train.gpu_memory_gib=80",
        *extra,
    ]


def test_qwen3vl_8b_kv_cache_and_image_tokens() -> None:
    assert kv_bytes_per_token(QWEN3VL_8B, 2) == 144 * 1024  # 2 x 36 layers x 8 KV heads x 128 x bf16
    assert kv_bytes_per_token(QWEN3VL_8B, 2) * 262144 == 36 * GIB
    settings = {"patch_size": 16, "merge_size": 2, "size": HUB_SIZE}
    assert image_tokens((2500, 3000), settings, None) == 7332  # the hub's bounds
    assert image_tokens((2500, 3000), settings, {"shortest_edge": 1024, "longest_edge": 451584}) == 437


def test_grpo_report_with_vllm_context_that_cannot_fit_stops_before_loading(config_only: Path, data_root: Path) -> None:
    overrides = _sets(config_only, "grpo.vllm_max_model_length=null")
    args = ["train", "grpo", "-c", "grpo-report", "--data-root", str(data_root)]
    for item in overrides:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "max_model_len 262,144" in out and "36.0 GiB for one full sequence" in out
    assert "vLLM needs 36.0 GiB of KV cache for one 262,144-token sequence" in out
    assert "Fix: set grpo.vllm_max_model_length to at most" in out
    assert "cannot load" not in out  # refused before the (absent) weights were looked for


def test_shipped_grpo_recipes_fit_an_80gb_gpu(
    config_only: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    for recipe in ("grpo-report", "grpo-grounding"):
        config = load_train_config(Path(recipe), _sets(config_only), recipe="grpo")
        assert config.grpo is not None and config.grpo.vllm_max_model_length == 4096
    from evalkit.training.data import build_rows
    from evalkit.training.modeling import sources

    config = load_train_config(Path("grpo-report"), _sets(config_only), recipe="grpo")
    card = base_card(config)
    report = run_preflight(config, card, build_rows(sources(config), card, data_root))
    assert report.max_model_len == 4096 and report.kv_need_bytes == 576 * 1024**2
    assert report.kv_budget_bytes is not None and report.kv_need_bytes < report.kv_budget_bytes
    assert 7 * GIB < report.kv_budget_bytes < 9 * GIB  # 24 GiB at 0.3 utilization, minus 8.6 B bf16 weights
    assert report.sequence_tokens_max <= 4096


def test_sft_without_a_budget_refuses_radiographs_that_overflow_max_length(
    config_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    from evalkit.data.phantom import generate_phantom
    from evalkit.training.data import build_rows
    from evalkit.training.modeling import sources

    root = tmp_path / "data"
    folder = generate_phantom(root / "phantom", n_train=1, n_validate=1, n_test=1)
    for path in (folder / "images").iterdir():
        Image.new("L", (2500, 3000)).save(path)
    overrides = [f"model.checkpoint={config_only}", "data.train=[{task: phantom-report, limit: 1}]"]
    config = load_train_config(Path("sft"), overrides, recipe="sft")
    card = base_card(config)
    assert card.image.max_pixels == 451584  # sft.yaml's budget
    rows = build_rows(sources(config), card, root, with_completion=True)
    report = run_preflight(config, card, rows)
    assert report.image_tokens_max == 437 and report.sequence_tokens_max < 4096

    unbounded = card.model_copy(
        update={"image": card.image.model_copy(update={"min_pixels": None, "max_pixels": None})}
    )
    with pytest.raises(EvalkitError, match=r"sft.max_length 4,096 is below the longest prompt .*7,332 of them image"):
        run_preflight(config, unbounded, rows)
