"""A tiny random-weight Qwen3-VL built locally, for tests and the CPU demo (no model hub, no torchvision).

The model has the real Qwen3-VL architecture (vision tower with deepstack, M-RoPE text decoder) at toy size,
a byte-level BPE tokenizer trained here on radiology-style text, the Qwen chat template and an image-only
processor. Its outputs are noise, but every code path a real checkpoint exercises (chat template, image
placeholders, left padding, batched `generate`, saving and reloading) runs in well under a second.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.model_adapters.qwen3vl_processor import image_only_processor_class, quiet_progress_bars, write_hub_layout

# Special tokens in Qwen's order; ids follow this order (0..6), so the model config can point at them.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Thinking tags are ordinary added tokens (not special): `skip_special_tokens=True` must keep them.
THINK_TOKENS: tuple[str, ...] = ("<think>", "</think>")

INIT_STD = 0.3
# Written next to a locally built model: how it was built (config, seed), so a base shipped without weights can
# be rebuilt bit for bit (`materialize_base`).
BUILD_STAMP = "evalkit_build.json"

# Qwen2-VL/Qwen3-VL chat template, reduced to what evalkit sends: system/user/assistant turns whose content
# is a string or a list of {"type": "image"} / {"type": "text", "text": ...} parts.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

DEFAULT_CORPUS: tuple[str, ...] = (
    "No acute cardiopulmonary process.",
    "The lungs are clear without focal consolidation, pleural effusion or pneumothorax.",
    "Heart size is normal. The mediastinal and hilar contours are unremarkable.",
    "There is mild cardiomegaly with a small left pleural effusion.",
    "Patchy opacity in the right lower lobe may reflect atelectasis or pneumonia.",
    "Moderate right pleural effusion with adjacent compressive atelectasis.",
    "Small left apical pneumothorax is seen, without mediastinal shift.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Nasogastric tube courses below the diaphragm and out of view.",
    "Right internal jugular central venous catheter tip projects over the cavoatrial junction.",
    "Pulmonary vascular congestion and mild interstitial edema.",
    "Degenerative changes of the thoracic spine. No displaced rib fracture.",
    "Calcified granuloma in the left upper lobe, unchanged.",
    "Bibasilar atelectasis. Lung volumes are low.",
    "A nodular opacity in the right mid lung measures 12 mm.",
    "Findings: enlarged cardiac silhouette, blunting of the costophrenic angles.",
    "Impression: interval improvement of the right lower lobe consolidation.",
    "Frontal and lateral views of the chest were obtained.",
    "Comparison is made to the prior radiograph from the previous day.",
    "Persistent left retrocardiac opacity, likely atelectasis; superimposed infection cannot be excluded.",
    "The osseous structures are intact. Surgical clips project over the upper abdomen.",
    "Median sternotomy wires and mediastinal clips are noted. Prosthetic aortic valve.",
    "Hyperinflated lungs with flattening of the hemidiaphragms, consistent with emphysema.",
    "Increased reticular markings at the lung bases, suggestive of chronic interstitial lung disease.",
    "There is a rounded mass in the left hilum measuring approximately 3 cm.",
    "Multiple bilateral pulmonary nodules concerning for metastatic disease.",
    "Tortuous and calcified thoracic aorta. Aortic knob calcification.",
    "Elevation of the right hemidiaphragm. Subsegmental linear atelectasis in the left base.",
    "Layering bilateral effusions, larger on the right, with bibasilar airspace disease.",
    "Left chest wall pacemaker with leads terminating in the right atrium and right ventricle.",
    "Recommend follow-up chest CT to further evaluate the pulmonary nodule.",
    "Dense consolidation in the lingula with air bronchograms.",
    "Widened mediastinum; correlation with clinical history is advised.",
    "Free air under the diaphragm is not identified. Bowel gas pattern is nonspecific.",
    "Fracture of the posterior left seventh and eighth ribs, new since the prior study.",
    "Hilar enlargement, upper zone redistribution and Kerley B lines suggest fluid overload.",
    "Fibrotic changes and volume loss in the upper lobes, compatible with prior tuberculosis.",
    "Cardiomediastinal silhouette is stable. Trachea is midline.",
    "Portable semi-upright AP radiograph of the chest in an intubated patient.",
    "Mild pulmonary edema has improved. Small residual effusions bilaterally.",
    "Enlarged cardiac silhouette with a globular configuration, suggesting pericardial effusion.",
    "The right PICC line terminates in the superior vena cava.",
    "Chest tube in the right hemithorax with decreased pneumothorax.",
    "Subcutaneous emphysema along the right lateral chest wall.",
    "Scoliosis of the thoracolumbar spine, convex to the right.",
    "Lateral view confirms a posterior costophrenic sulcus effusion.",
    "Region: left lung, right lung, upper zone, middle zone, lower zone, apex, base, hilum, mediastinum.",
    "Grounding: output the box as [x1, y1, x2, y2] with coordinates between 0 and 1000.",
    "Support devices are in unchanged position. No new focal opacity.",
    "Lung opacity, effusion, cardiomegaly, edema, consolidation, pneumonia, atelectasis, pneumothorax.",
    "Please locate the finding in the image and give its bounding box.",
    "Describe the findings of this chest radiograph.",
    "Provide a radiology report for the given chest X-ray.",
    "<think>The left costophrenic angle is blunted, which suggests an effusion.</think>",
    "The answer is [120, 340, 480, 760].",
    '{"bbox_2d": [12, 305, 498, 911], "label": "pleural effusion"}',
    '[{"bbox_2d": [0, 0, 1000, 1000], "label": "cardiomegaly"}, {"bbox_2d": [250, 500, 750, 999]}]',
    "[0.12, 0.34, 0.56, 0.78] (0.05,0.10),(0.95,0.90) <box>(100,200),(300,400)</box>",
    "0 1 2 3 4 5 6 7 8 9 10 25 50 75 100 250 500 750 999 1000 0.0 0.25 0.5 0.75 1.0",
    "{ } [ ] ( ) , : ; . - _ \" ' < > / = + * % # @ ! ? \n \t",
)


def _rope_section(head_dim: int) -> list[int]:
    """Split of rotary dims over (time, height, width); Qwen3-VL uses [24, 20, 20] for head_dim 128."""
    half = head_dim // 2
    spatial = (half * 20) // 64
    return [half - 2 * spatial, spatial, spatial]


def _train_tokenizer(corpus: list[str], vocab_size: int) -> Any:
    """Byte-level BPE that splits digits one by one (as Qwen does), so box coordinates tokenise evenly."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    from tokenizers import AddedToken

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        padding_side="left",
        model_max_length=4096,
        clean_up_tokenization_spaces=False,
    )
    fast.add_tokens([AddedToken(t, special=False, normalized=False) for t in THINK_TOKENS])
    fast.chat_template = CHAT_TEMPLATE
    return fast


def mrope_parameters(head_dim: int) -> dict:
    """Real Qwen3-VL rope settings: theta 5e6, interleaved M-RoPE covering head_dim / 2 rotary pairs."""
    return {
        "rope_type": "default",
        "rope_theta": 5_000_000.0,
        "mrope_section": _rope_section(head_dim),
        "mrope_interleaved": True,
    }


def qwen3vl_config(text_config: dict, vision_config: dict, ids: dict[str, int]):
    """A Qwen3VLConfig wired to a tokenizer's special-token ids (shared by the tiny model and the GPU checks)."""
    from transformers import Qwen3VLConfig

    special = {"pad_token_id": ids["<|endoftext|>"], "bos_token_id": None, "eos_token_id": ids["<|im_end|>"]}
    text = {**text_config, **special}
    return Qwen3VLConfig(
        text_config=text,
        vision_config=vision_config,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def greedy_generation(model: Any, ids: dict[str, int], *, clear_bos: bool = True) -> None:
    """Greedy generation that ends at <|im_end|> or <|endoftext|> and pads with <|endoftext|> (the tiny model's
    and the GPU checks' generation config; `clear_bos` drops the config's BOS, which Qwen chat prompts lack)."""
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    if clear_bos:
        model.generation_config.bos_token_id = None
    model.generation_config.do_sample = False


def qwen3vl_image_processor(max_pixels: int, min_pixels: int = 32 * 32) -> Any:
    """Qwen3-VL's own image settings (patch 16, temporal patch 2, merge 2, mean/std 0.5) with a pixel budget."""
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def build_tiny_qwen3vl(
    out_dir: Path,
    seed: int = 0,
    *,
    text_hidden: int = 64,
    layers: int = 2,
    vision_depth: int = 2,
    vision_hidden: int = 32,
    vocab_corpus: list[str] | None = None,
    min_pixels: int = 32 * 32,
    max_pixels: int = 128 * 128,
) -> Path:
    """Build, save and return a random-weight Qwen3-VL checkpoint directory (model, tokenizer, processor).

    The folder has the hub's file layout (`preprocessor_config.json` and `video_preprocessor_config.json` naming
    `Qwen3VLProcessor`), so vLLM and stock transformers load it as they load a released Qwen3-VL.

    Args:
        out_dir: Where to save; created if needed, existing files are overwritten.
        seed: Seeds the weights; the same seed gives byte-identical weights and tokenizer.
        text_hidden: Text decoder hidden size (a multiple of 16: heads have dimension 16).
        layers: Number of text decoder layers.
        vision_depth: Number of vision transformer blocks.
        vision_hidden: Vision hidden size (a multiple of 16).
        vocab_corpus: Text to train the BPE tokenizer on; defaults to built-in radiology and box-answer text.
        min_pixels: The saved image processor's lower pixel bound.
        max_pixels: Its upper bound (the default keeps tests fast; `HUB_IMAGE_SIZE` is the hub's own).
    """
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    if text_hidden % 16 or vision_hidden % 16:
        raise ValueError(f"text_hidden ({text_hidden}) and vision_hidden ({vision_hidden}) must be multiples of 16")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    corpus = list(vocab_corpus) if vocab_corpus is not None else list(DEFAULT_CORPUS)
    tokenizer = _train_tokenizer(corpus, vocab_size=1536)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}

    head_dim = 16
    text_config = {
        "vocab_size": len(tokenizer),
        "hidden_size": text_hidden,
        "intermediate_size": text_hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": text_hidden // head_dim,
        "num_key_value_heads": max(1, text_hidden // head_dim // 2),
        "head_dim": head_dim,
        "max_position_embeddings": 4096,
        # Larger than the usual 0.02 so the random model's greedy output depends on the image and prompt
        # (at 0.02 it repeats one token whatever the input, which would hide batching and padding bugs).
        "initializer_range": INIT_STD,
        # Real Qwen3-VL: theta 5e6, interleaved M-RoPE; the section must cover head_dim / 2 rotary pairs.
        "rope_parameters": mrope_parameters(head_dim),
    }
    vision_config = {
        "depth": vision_depth,
        "hidden_size": vision_hidden,
        "intermediate_size": vision_hidden * 2,
        "num_heads": vision_hidden // 16,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": text_hidden,
        # A perfect square (the learned position grid is interpolated to each image's patch grid).
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [0],
        "initializer_range": INIT_STD,
    }
    config = qwen3vl_config(text_config, vision_config, ids)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    greedy_generation(model, ids)

    # Qwen3-VL's own settings but (by default) few pixels: a 256x256 image is scaled to 128x128, i.e. 8x8 patches
    # and 16 image tokens after the 2x2 merge.
    image_processor = qwen3vl_image_processor(max_pixels=max_pixels, min_pixels=min_pixels)
    processor = image_only_processor_class()(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=CHAT_TEMPLATE
    )

    with quiet_progress_bars():
        model.save_pretrained(out_dir)
        processor.save_pretrained(out_dir)
    write_hub_layout(out_dir)
    return out_dir


# The hub's Qwen3-VL image bounds (preprocessor_config.json of Qwen/Qwen3-VL-8B-Instruct): a 2,500 x 3,000
# radiograph becomes thousands of image tokens unless a pixel budget is set.
HUB_IMAGE_SIZE: dict[str, int] = {"shortest_edge": 65536, "longest_edge": 16777216}


def build_hub_qwen3vl(out_dir: Path, seed: int = 0, **options: Any) -> Path:
    """A tiny Qwen3-VL whose processor files are the hub's own, unbounded size included (what training starts from
    when it starts from `Qwen/Qwen3-VL-8B-Instruct`)."""
    return build_tiny_qwen3vl(
        out_dir, seed, min_pixels=HUB_IMAGE_SIZE["shortest_edge"], max_pixels=HUB_IMAGE_SIZE["longest_edge"], **options
    )


def materialize_base(folder: Path, cache: Path | None = None) -> Path:
    """A folder with weights for a base shipped without them: the seeded random init, recreated under `cache`.

    `build_tiny_qwen3vl` initialises with `torch.manual_seed(seed)` then the model constructor, so the same
    config and seed give the same tensors; the recreated folder is reused on later calls.
    """
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return folder
    stamp_file = folder / BUILD_STAMP
    if not stamp_file.is_file():
        raise EvalkitError(f"{folder}: no weights and no {BUILD_STAMP} to recreate them from")
    stamp = json.loads(stamp_file.read_text(encoding="utf-8"))
    from evalkit.resources import cache_dir

    target = Path(cache if cache is not None else cache_dir() / "models") / folder.name
    if (target / "model.safetensors").is_file() and (target / BUILD_STAMP).is_file():
        if json.loads((target / BUILD_STAMP).read_text(encoding="utf-8")) == stamp:
            return target
    import torch
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target)
    torch.manual_seed(int(stamp["build"]["seed"]))
    model = Qwen3VLForConditionalGeneration(Qwen3VLConfig.from_pretrained(str(folder))).eval()
    model.generation_config = GenerationConfig.from_pretrained(str(folder))
    with quiet_progress_bars():
        model.save_pretrained(str(target))
    return target
