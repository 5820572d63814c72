"""A tiny random-weight Qwen2.5-VL in the hub's file layout, built locally (no hub, no torchvision).

The family of DeepMedix-R1 (`deepmedix-r1` card). Same toy tokenizer and chat template as the tiny Qwen3-VL
(`tiny_qwen3vl`), Qwen2.5-VL's own vision settings (patch 14, merge 2, window attention, CLIP mean/std) and the
processor files a released Qwen2.5-VL ships (`preprocessor_config.json` and `video_preprocessor_config.json` naming
`Qwen2_5_VLProcessor`), written directly so no video processor (torchvision) is needed to save them. Used by the
vLLM contract check (scripts/vllm_contract/), which renders evalkit's requests to it with vLLM's own code.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.testing.tiny_qwen3vl import DEFAULT_CORPUS, INIT_STD, SPECIAL_TOKENS, _train_tokenizer, greedy_generation

PATCH_SIZE = 14
MERGE_SIZE = 2
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
PROCESSOR_CLASS = "Qwen2_5_VLProcessor"


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_tiny_qwen25vl(
    out_dir: Path, seed: int = 0, *, min_pixels: int = 32 * 32, max_pixels: int = 128 * 128
) -> Path:
    """Build, save and return a random-weight Qwen2.5-VL checkpoint directory (hub layout).

    Args:
        out_dir: Where to save; created if needed.
        seed: Seeds the weights; the same seed gives the same weights and tokenizer.
        min_pixels: The saved image processor's lower pixel bound.
        max_pixels: Its upper bound.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(list(DEFAULT_CORPUS), vocab_size=1536)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    head_dim, hidden = 16, 64
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": 2,
        "num_attention_heads": hidden // head_dim,
        "num_key_value_heads": hidden // head_dim // 2,
        "max_position_embeddings": 4096,
        "initializer_range": INIT_STD,
        # Qwen2.5-VL's M-RoPE ([16, 24, 24] of 64 rotary pairs at head_dim 128), scaled to head_dim 16.
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
        "pad_token_id": ids["<|endoftext|>"],
        "bos_token_id": None,
        "eos_token_id": ids["<|im_end|>"],
    }
    vision_config = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
        "window_size": 112,
        "fullatt_block_indexes": [1],
        "out_hidden_size": hidden,
        "initializer_range": INIT_STD,
    }
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    greedy_generation(model, ids)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "chat_template.jinja").write_text(str(tokenizer.chat_template), encoding="utf-8")
    shared = {
        "patch_size": PATCH_SIZE,
        "temporal_patch_size": 2,
        "merge_size": MERGE_SIZE,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "rescale_factor": 1 / 255,
        "processor_class": PROCESSOR_CLASS,
    }
    _write_json(
        out_dir / "preprocessor_config.json",
        {
            **shared,
            "image_processor_type": "Qwen2VLImageProcessor",
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
            "size": {"shortest_edge": min_pixels, "longest_edge": max_pixels},
        },
    )
    _write_json(
        out_dir / "video_preprocessor_config.json",
        {
            **shared,
            "video_processor_type": "Qwen2VLVideoProcessor",
            "size": {"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28},
        },
    )
    return out_dir
