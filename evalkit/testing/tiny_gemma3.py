"""A tiny random-weight Gemma3 (MedGemma's family) in the hub's file layout, built locally (no hub, no torchvision).

The real Gemma3 architecture at toy size: SigLIP vision tower (64-px images, patch 4, so the hub's 256 image tokens
per image survive), Gemma3 text decoder, a byte-level BPE tokenizer trained here with Gemma's special tokens
(`<start_of_turn>`, `<start_of_image>`, `<image_soft_token>`, ...), Gemma's chat template (roles user/model, image
parts as `<start_of_image>`) and the processor files a released MedGemma ships (`preprocessor_config.json` naming
`Gemma3ImageProcessor`, `processor_config.json` with `image_seq_length`). Used by the vLLM contract check.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.testing.tiny_qwen3vl import DEFAULT_CORPUS, INIT_STD

SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
)
NEWLINE_RUNS = (4, 3, 2, 1)
IMAGE_SEQ_LENGTH = 256  # MedGemma's mm_tokens_per_image
IMAGE_SIZE = 64
PROCESSOR_CLASS = "Gemma3Processor"
# Gemma3's chat template, reduced to what evalkit sends (string content or image/text parts).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image_url' in part %}<start_of_image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _tokenizer() -> object:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(DEFAULT_CORPUS), trainer=trainer)
    # Gemma's tokenizer puts <bos> first when special tokens are added (a raw prompt; chat templates write it).
    bos = tokenizer.token_to_id("<bos>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        additional_special_tokens=list(SPECIAL_TOKENS[4:]),
        padding_side="left",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    # Gemma's vocabulary holds runs of newlines as single tokens; vLLM's Gemma3 processor looks them up.
    fast.add_tokens([AddedToken("\n" * n, special=False, normalized=False) for n in NEWLINE_RUNS])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_gemma3(out_dir: Path, seed: int = 0) -> Path:
    """Build, save and return a random-weight Gemma3 checkpoint directory (hub layout).

    Args:
        out_dir: Where to save; created if needed.
        seed: Seeds the weights; the same seed gives the same weights and tokenizer.
    """
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}  # type: ignore[attr-defined]
    text = {
        "vocab_size": len(tokenizer),  # type: ignore[arg-type]
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 4096,
        "sliding_window": 64,
        "initializer_range": INIT_STD,
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<bos>"],
        "eos_token_id": [ids["<eos>"], ids["<end_of_turn>"]],
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": 4,
    }
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=IMAGE_SEQ_LENGTH,
        boi_token_index=ids["<start_of_image>"],
        eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"],
    )
    torch.manual_seed(seed)
    Gemma3ForConditionalGeneration(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)  # type: ignore[attr-defined]
    (out_dir / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    image = {
        "image_processor_type": "Gemma3ImageProcessor",
        "processor_class": PROCESSOR_CLASS,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_pan_and_scan": False,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    }
    for name, data in (
        ("preprocessor_config.json", image),
        ("processor_config.json", {"image_seq_length": IMAGE_SEQ_LENGTH, "processor_class": PROCESSOR_CLASS}),
    ):
        (out_dir / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out_dir
