"""The transformers adapter on a tiny random Qwen3-VL built in a temporary folder (CPU, a few seconds)."""

from __future__ import annotations

import os

# Before transformers is imported: without it every failed hub lookup retries for minutes.
os.environ["HF_HUB_OFFLINE"] = "1"

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.runs import _card
from PIL import Image

from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import Adapter, GenerationRequest
from evalkit.model_adapters.qwen3vl_processor import PROCESSOR_CLASS_NAME, load_processor
from evalkit.model_adapters.transformers_local import TransformersAdapter, generated_length
from evalkit.sample import Sample
from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

pytest.importorskip("transformers")


def _request(index: int, prompt: str, image: Any, **decoding: object) -> GenerationRequest:
    sample = Sample(sample_id=f"s{index}", task="smoke", image_paths=[f"s{index}.png"])
    return GenerationRequest(sample=sample, prompt=prompt, images=[image], decoding=dict(decoding))


def _grey(level: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    return Image.new("L", size, level).convert("RGB")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen3vl(tmp_path_factory.mktemp("models") / "tiny-qwen3vl", seed=0)


@pytest.fixture(scope="module")
def adapter(checkpoint: Path) -> TransformersAdapter:
    return TransformersAdapter(_card(checkpoint), device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def requests() -> list[GenerationRequest]:
    noise = np.random.default_rng(0).integers(0, 256, size=(300, 200), dtype=np.uint8)
    return [
        _request(0, "Describe the findings of this chest radiograph.", _grey(40)),
        _request(1, "Locate the pleural effusion. Answer with a JSON box.", _grey(128)),
        _request(2, "Report?", Image.fromarray(noise).convert("RGB")),
    ]


def test_build_is_small_fast_and_deterministic(checkpoint: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    again = build_tiny_qwen3vl(tmp_path / "again", seed=0)
    elapsed = time.perf_counter() - started
    assert elapsed < 5, f"build took {elapsed:.2f} s"
    assert sum(f.stat().st_size for f in again.iterdir()) < 2_000_000
    for name in ("model.safetensors", "tokenizer.json", "config.json", "preprocessor_config.json"):
        assert (again / name).read_bytes() == (checkpoint / name).read_bytes(), name
    other = build_tiny_qwen3vl(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (checkpoint / "model.safetensors").read_bytes()


def test_processor_loads_by_class_and_keeps_think_tags(checkpoint: Path) -> None:
    processor = load_processor(checkpoint)
    assert type(processor).__name__ == PROCESSOR_CLASS_NAME
    assert processor.image_processor.patch_size == 16 and processor.image_processor.merge_size == 2
    tokenizer = processor.tokenizer
    ids = tokenizer("<think>effusion</think>[1, 2]<|im_end|>")["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>effusion</think>[1, 2]"
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    image = "<|vision_start|><|image_pad|><|vision_end|>"
    assert text == f"<|im_start|>user\n{image}Hi<|im_end|>\n<|im_start|>assistant\n"


def test_built_checkpoint_has_the_hub_layout_and_loads_without_torchvision(
    checkpoint: Path, requests: list[GenerationRequest]
) -> None:
    # vLLM loads Qwen3-VL with the stock Qwen3VLProcessor and needs video_preprocessor_config.json; without
    # torchvision AutoProcessor cannot build that, so load_processor falls back to the image-only processor.
    assert not (checkpoint / "processor_config.json").exists()
    for name in ("preprocessor_config.json", "video_preprocessor_config.json", "tokenizer_config.json"):
        assert json.loads((checkpoint / name).read_text())["processor_class"] == "Qwen3VLProcessor", name
    video = json.loads((checkpoint / "video_preprocessor_config.json").read_text())
    assert video["video_processor_type"] == "Qwen3VLVideoProcessor" and video["patch_size"] == 16
    processor = load_processor(checkpoint)
    assert processor.image_processor.merge_size == 2
    result = TransformersAdapter(_card(checkpoint), device="cpu").generate(requests[:1])[0]
    assert result.error is None and result.text


def test_shipped_demo_checkpoint_in_the_old_layout_still_loads() -> None:
    from evalkit.registry import PROJECT_ROOT

    folder = PROJECT_ROOT / "evalkit" / "model_adapters" / "checkpoints" / "demo-qwen3vl-sft"
    assert json.loads((folder / "processor_config.json").read_text())["processor_class"] == PROCESSOR_CLASS_NAME
    assert type(load_processor(folder)).__name__ == PROCESSOR_CLASS_NAME


def test_module_import_does_not_load_torch() -> None:
    code = "import sys, evalkit.model_adapters.transformers_local; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_batch_gives_one_result_per_request_in_order(
    adapter: TransformersAdapter, requests: list[GenerationRequest]
) -> None:
    assert isinstance(adapter, Adapter)
    results = adapter.generate(requests)
    assert len(results) == len(requests)
    for result in results:
        assert result.error is None
        assert result.text
        assert result.tokens is not None and 0 < result.tokens <= 12
        assert result.latency_s is not None and result.latency_s > 0
    # A random model still reads its input: different images and prompts give different answers.
    assert len({r.text for r in results}) == len(results)


def test_greedy_is_deterministic_and_batching_does_not_change_outputs(
    adapter: TransformersAdapter, requests: list[GenerationRequest]
) -> None:
    first = [r.text for r in adapter.generate(requests)]
    second = [r.text for r in adapter.generate(requests)]
    assert first == second
    # Prompts have different lengths, so this checks that left padding leaves each output unchanged.
    one_by_one = [adapter.generate([request])[0].text for request in requests]
    assert one_by_one == first


def test_sampling_is_seeded(adapter: TransformersAdapter, requests: list[GenerationRequest]) -> None:
    sampled = [_request(i, r.prompt, r.images[0], temperature=1.0, seed=7) for i, r in enumerate(requests)]
    first = adapter.generate(sampled)
    assert [r.text for r in first] == [r.text for r in adapter.generate(sampled)]
    assert all(r.error is None for r in first)


def test_request_decoding_overrides_card(adapter: TransformersAdapter, requests: list[GenerationRequest]) -> None:
    short = _request(0, requests[0].prompt, requests[0].images[0], max_new_tokens=3)
    result = adapter.generate([short])[0]
    assert result.tokens is not None and result.tokens <= 3


def test_card_pixel_limits_change_image_tokens(checkpoint: Path, requests: list[GenerationRequest]) -> None:
    default = TransformersAdapter(_card(checkpoint), device="cpu")
    small = TransformersAdapter(_card(checkpoint, image={"min_pixels": 1024, "max_pixels": 64 * 64}), device="cpu")
    request = requests[0]
    # 256x256 gives 16 image tokens by default (128x128 cap) and 4 with a 64x64 cap.
    default_tokens = default.generate([request])[0].meta["prompt_tokens"]
    small_tokens = small.generate([request])[0].meta["prompt_tokens"]
    assert default_tokens - small_tokens == 16 - 4
    assert default.fingerprint() != small.fingerprint()


def test_bad_request_becomes_an_error_result(adapter: TransformersAdapter, requests: list[GenerationRequest]) -> None:
    expected = [r.text for r in adapter.generate(requests)]
    thin = _request(9, "Describe.", _grey(100, size=(1, 1000)))  # aspect ratio over Qwen's limit of 200
    broken = _request(10, "Describe.", "not an image")
    results = adapter.generate([requests[0], thin, requests[1], broken, requests[2]])
    assert [r.text for r in results[::2]] == expected
    assert all(r.error is None for r in results[::2])
    assert results[1].error and "aspect ratio" in results[1].error
    assert results[3].error
    assert results[1].text == "" and results[3].text == ""


def test_fingerprint_tracks_card_and_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    first = TransformersAdapter(_card(checkpoint), device="cpu").fingerprint()
    second = TransformersAdapter(_card(checkpoint), device="cpu").fingerprint()
    assert first == second
    longer = _card(checkpoint, decoding={"temperature": 0, "max_new_tokens": 64})
    assert TransformersAdapter(longer, device="cpu").fingerprint() != first

    # Same path and card, different weights (a retrained checkpoint saved over the old one).
    path = tmp_path / "model"
    build_tiny_qwen3vl(path, seed=0)
    before = TransformersAdapter(_card(path), device="cpu").fingerprint()
    build_tiny_qwen3vl(path, seed=1)
    after = TransformersAdapter(_card(path), device="cpu").fingerprint()
    assert before != after


def test_token_count_stops_at_first_eos() -> None:
    assert generated_length([5, 6, 2, 0, 0], {0, 2}) == 3
    assert generated_length([5, 6, 7], {0, 2}) == 3
    assert generated_length([2, 0], {0, 2}) == 1


@pytest.mark.parametrize("checkpoint_name", ["results/models/does-not-exist", "no-such-org/no-such-model"])
def test_missing_checkpoint_names_the_path(tmp_path: Path, checkpoint_name: str) -> None:
    missing = str(tmp_path / checkpoint_name) if checkpoint_name.startswith("results") else checkpoint_name
    with pytest.raises(EvalkitError, match=checkpoint_name):
        TransformersAdapter(_card(missing), device="cpu")


def test_batches_pass_one_image_list_per_prompt(
    adapter: TransformersAdapter, requests: list[GenerationRequest], capsys: pytest.CaptureFixture[str]
) -> None:
    # Gemma3's processor (MedGemma) refuses a flat image list for a batch of several prompts; the adapter used to
    # send one and fall back, silently, to one request at a time.
    real = adapter.processor
    calls: list[int] = []

    class GemmaLike:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def __call__(self, text: list[str], images: Any = None, **kwargs: Any) -> Any:
            calls.append(len(text))
            if images is not None and len(text) > 1 and not all(isinstance(i, list) for i in images):
                raise ValueError("Received inconsistently sized batches of images and text")
            return real(text=text, images=images, **kwargs)

    gemma_like = TransformersAdapter.from_model(adapter.card, adapter.model, GemmaLike(), batch_size=8)
    results = gemma_like.generate(requests)
    assert all(r.error is None for r in results)
    assert calls == [len(requests)]  # one batched call, no fallback
    assert "one request at a time" not in capsys.readouterr().err
