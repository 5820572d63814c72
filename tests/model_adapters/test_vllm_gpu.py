"""The vLLM adapter on a real engine (tiny random Qwen3-VL): runs only where vLLM and a CUDA GPU are present."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
from PIL import Image

from evalkit.config import ModelCard
from evalkit.model_adapters.base import GenerationRequest
from evalkit.sample import Sample


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.vllm,
    pytest.mark.gpu,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
    pytest.mark.skipif(not _cuda(), reason="no CUDA GPU"),
]


def test_real_engine_answers_every_request(tmp_path: Path) -> None:
    from evalkit.model_adapters.vllm_engine import VLLMAdapter
    from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

    checkpoint = build_tiny_qwen3vl(tmp_path / "tiny", text_hidden=128, layers=2)
    card = ModelCard.model_validate(
        {
            "name": "tiny-vllm",
            "adapter": "vllm",
            "checkpoint": str(checkpoint),
            "family": "qwen3-vl",
            "box_format": "qwen1000",
            "decoding": {"temperature": 0, "max_new_tokens": 16},
            "options": {"resize_factor": 32},
            "serving": {"engine_args": {"max_model_len": 2048, "gpu_memory_utilization": 0.3, "enforce_eager": True}},
        }
    )
    adapter = VLLMAdapter(card)
    requests = [
        GenerationRequest(
            sample=Sample(sample_id=f"s{i}", task="t", image_paths=[]),
            prompt=f"Describe image {i}.",
            images=[Image.new("RGB", (256, 256), (i * 40, 80, 120))],
        )
        for i in range(4)
    ]
    first = adapter.generate(requests)
    assert len(first) == 4 and all(r.error is None for r in first)
    assert all(r.tokens is not None and 0 < r.tokens <= 16 for r in first)
    assert [r.text for r in adapter.generate(requests)] == [r.text for r in first], "greedy must repeat"
