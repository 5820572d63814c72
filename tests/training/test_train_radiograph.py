"""Training on radiograph-sized images from a checkpoint in the hub's Qwen3-VL layout (issue 19, certain #1).

The hub's `preprocessor_config.json` allows 16.7 M pixels: a 2,560 x 3,072 image is 7,680 image tokens, which TRL
refuses at `max_length: 4096`. Training must apply the card's budget (1,024..451,584 pixels: 437 tokens) and save
it in the trained checkpoint's processor config, which is all TRL's vLLM and `evalkit run` read.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("trl")
from evalkit.answers import smart_resize
from evalkit.config import parse_spec
from evalkit.model_adapters.qwen3vl_processor import HUB_PROCESSOR_CLASS, load_processor
from evalkit.testing.tiny_qwen3vl import HUB_IMAGE_SIZE, build_hub_qwen3vl
from evalkit.training.config import TrainConfig
from evalkit.training.modeling import restore_stock_processor

pytestmark = pytest.mark.slow  # builds a model and trains on the CPU (about 25 s for the module)

BUDGET = {"shortest_edge": 1024, "longest_edge": 451584}
RADIOGRAPH = (2560, 3072)


@pytest.fixture(scope="module")
def hub_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hub_qwen3vl(tmp_path_factory.mktemp("hub") / "qwen3vl")


@pytest.fixture(scope="module")
def radiograph_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom set whose train images are upscaled to 2,560 x 3,072 (boxes are fractions: they stay valid)."""
    from evalkit.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("radiographs")
    folder = generate_phantom(root / "phantom", n_train=2, n_validate=1, n_test=1)
    index = folder / "phantom.json"
    data = json.loads(index.read_text(encoding="utf-8"))
    for path in sorted((folder / "images").iterdir()):
        with Image.open(path) as image:
            image.convert("L").resize(RADIOGRAPH, Image.BILINEAR).save(path, compress_level=1)
    for record in data["records"]:
        record["image_size"] = list(RADIOGRAPH)
    index.write_text(json.dumps(data), encoding="utf-8")
    return root


def _image_tokens(folder: Path) -> int:
    processor = load_processor(folder)
    grid = processor.image_processor(images=[Image.new("RGB", RADIOGRAPH)])["image_grid_thw"]
    return int(grid.prod()) // processor.image_processor.merge_size**2


def _saved_size(folder: Path) -> dict[str, int]:
    config = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    assert config["processor_class"] == HUB_PROCESSOR_CLASS
    assert (folder / "video_preprocessor_config.json").is_file()
    return config["size"]


def _recipe(base: Path, out: Path, recipe: str, **section: Any) -> TrainConfig:
    data: dict[str, Any] = {
        "recipe": recipe,
        "name": f"radiograph-{recipe}",
        "model": {"checkpoint": str(base), "card_overrides": {"decoding": {"max_new_tokens": 8}}},
        "data": {"train": [{"task": "phantom-report", "limit": 2}]},
        "train": {"output_dir": str(out), "learning_rate": 1e-3, "max_steps": 1, "logging_steps": 1, **section},
    }
    if recipe == "sft":
        data["sft"] = {"max_length": 4096}
    else:
        data["grpo"] = {"rewards": ["rouge_l"], "num_generations": 2, "max_completion_length": 8}
    return parse_spec(TrainConfig, data, Path(f"{recipe}.yaml"))


def test_hub_layout_is_unbounded_and_restore_writes_the_budget(hub_base: Path, tmp_path: Path) -> None:
    # The base is what a released Qwen3-VL ships: stock processor class, unbounded size, a video config.
    assert _saved_size(hub_base) == HUB_IMAGE_SIZE
    width, height = smart_resize(*RADIOGRAPH, factor=32, min_pixels=65536, max_pixels=16777216)
    assert width * height // 32**2 == 7680  # what TRL would see at max_length 4096 without the budget
    out = tmp_path / "trained"
    shutil.copytree(hub_base, out)
    restore_stock_processor(str(hub_base), out, None, BUDGET)
    assert _saved_size(out) == BUDGET  # the hub's 16.7 M-pixel bound is not copied back
    assert _image_tokens(out) == 437


def test_sft_and_grpo_steps_on_a_radiograph_keep_the_budget(
    hub_base: Path, radiograph_root: Path, tmp_path: Path
) -> None:
    from evalkit.training.grpo import run_grpo
    from evalkit.training.sft import run_sft

    sft = run_sft(_recipe(hub_base, tmp_path / "sft", "sft", per_device_train_batch_size=2), data_root=radiograph_root)
    assert sft.steps == 1 and "loss" in sft.final_metrics
    assert _saved_size(sft.output_dir) == BUDGET
    assert sft.card.image.max_pixels == BUDGET["longest_edge"]
    assert _image_tokens(sft.output_dir) == 437

    grpo_config = _recipe(sft.output_dir, tmp_path / "grpo", "grpo", per_device_train_batch_size=2)
    grpo = run_grpo(grpo_config, data_root=radiograph_root)
    assert grpo.steps == 1
    assert _saved_size(grpo.output_dir) == BUDGET
