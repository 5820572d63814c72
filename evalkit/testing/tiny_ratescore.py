"""Tiny random models with RaTEScore's real architectures: a DeBERTa-v2 token classifier with RaTE-NER's five entity
types in BIO tags (as Angelakeke/RaTE-NER-Deberta) and an MPNet encoder (as FremyCompany/BioLORD-2023-C).

Weights are filled from each parameter's name (`tiny_clinical.fill`), so the reference venv (ratescore 0.6.0,
transformers 4.38) and the project venv (transformers 5) build the same numbers. Both use a WordPiece tokenizer
(`tiny_clinical.vocabulary`): the tokenizer is loaded through AutoTokenizer on both sides, so its class is not part
of what the parity test checks; the architectures and every step after tokenisation are.
"""

from __future__ import annotations

import json
from pathlib import Path

from evalkit.testing.tiny_clinical import deterministic_state, write_tiny_bert

ENTITY_TYPES = ("ABNORMALITY", "NON-ABNORMALITY", "DISEASE", "NON-DISEASE", "ANATOMY")
LABELS = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))


def _write_config(folder: Path, config: dict) -> None:
    existing = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": existing["vocab_size"]}, indent=1))


def _save(folder: Path, head: bool, scale: float) -> None:
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification

    config = AutoConfig.from_pretrained(str(folder))
    model = (AutoModelForTokenClassification if head else AutoModel).from_config(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    state = deterministic_state(shapes, scale)
    if head:  # random heads favour one tag; an even spread gives every decoding rule and entity type some use
        state["classifier.weight"] = state["classifier.weight"] * 4.0
        state["classifier.bias"] = torch.tensor([3.0 if label.startswith("B-") else 0.0 for label in LABELS])
    model.load_state_dict(state, strict=False)
    model.save_pretrained(str(folder))


def write_tiny_ratescore(root: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2) -> dict[str, Path]:
    """`root/ner` (DebertaV2ForTokenClassification) and `root/embed` (MPNetModel), weights and tokenizers."""
    root = Path(root)
    ner, embed = write_tiny_bert(root / "ner", hidden=hidden), write_tiny_bert(root / "embed", hidden=hidden)
    common = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads}
    _write_config(
        ner,
        {
            **common,
            "model_type": "deberta-v2",
            "architectures": ["DebertaV2ForTokenClassification"],
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 512,
            "relative_attention": True,
            "position_buckets": 256,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "max_relative_positions": -1,
            "type_vocab_size": 0,
            "layer_norm_eps": 1e-7,
            "pad_token_id": 0,
            "id2label": dict(enumerate(LABELS)),
            "label2id": {label: i for i, label in enumerate(LABELS)},
        },
    )
    _write_config(
        embed,
        {
            **common,
            "model_type": "mpnet",
            "architectures": ["MPNetModel"],
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": 514,
            "relative_attention_num_buckets": 32,
            "layer_norm_eps": 1e-5,
            "pad_token_id": 0,
        },
    )
    _save(ner, head=True, scale=0.5)
    _save(embed, head=False, scale=0.5)
    return {"ner": ner, "embed": embed}
