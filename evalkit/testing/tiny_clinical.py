"""Tiny random models with the *real* architectures of the clinical metrics, for tests, parity fixtures and the
benchmark. Nothing here is a metric: numbers from these weights mean nothing clinically.

Weights are filled deterministically from the parameter *name* (numpy's PCG64 seeded with crc32(name)), so the
same file can be rebuilt in another environment (the reference-package venv that makes the parity fixtures)
with the same values for every parameter both sides share. Works with transformers 4.57 and 5.x.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

VOCAB_WORDS = (
    "the a an of in is are and or no not with without there to at on left right upper lower lobe lung lungs "
    "heart size normal enlarged mild moderate severe small large pleural effusion effusions pneumothorax "
    "consolidation opacity opacities edema atelectasis cardiomegaly nodule mass tube line catheter tip "
    "clear stable unchanged new since prior comparison bilateral basilar base bases focal acute process "
    "cardiopulmonary silhouette mediastinal contours within limits cm mm seen likely represent may be "
    "evidence of pulmonary vascular congestion interval increase decrease removed placed terminates above "
    "below carina right-sided support devices fracture rib ribs chest pa lateral view views frontal none"
).split()
PIECES = ("##s", "##ed", "##ing", "##al", "##ly", "##es", "##ion", "##ic", "##ar", "##y", "##e")
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
CHARS = tuple("0123456789.,:;-/()?!%'\"")


def vocabulary() -> list[str]:
    return list(dict.fromkeys([*SPECIAL, *CHARS, *VOCAB_WORDS, *PIECES, *(f"##{c}" for c in "0123456789")]))


def write_tiny_bert(
    folder: Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 512,
    model_type: str = "bert",
) -> Path:
    """A BERT (or DistilBERT) config + WordPiece tokenizer files (no weights) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = vocabulary()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    if model_type == "distilbert":
        config = {
            "model_type": "distilbert",
            "architectures": ["DistilBertModel"],
            "vocab_size": len(words),
            "dim": hidden,
            "n_layers": layers,
            "n_heads": heads,
            "hidden_dim": 2 * hidden,
            "max_position_embeddings": max_positions,
            "pad_token_id": 0,
        }
        tokenizer_class = "DistilBertTokenizer"
    else:
        config = {
            "model_type": "bert",
            "architectures": ["BertModel"],
            "vocab_size": len(words),
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": 2 * hidden,
            "max_position_embeddings": max_positions,
            "type_vocab_size": 2,
            "pad_token_id": 0,
        }
        tokenizer_class = "BertTokenizer"
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": tokenizer_class,
        "do_lower_case": True,
        "model_max_length": max_positions,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1), encoding="utf-8")
    return folder


def fill(name: str, shape: tuple[int, ...], scale: float = 0.5) -> np.ndarray:
    """Deterministic values for the parameter `name`: the same in every environment."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name.endswith("LayerNorm.weight") or name.endswith("layer_norm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def deterministic_state(shapes: dict[str, tuple[int, ...]], scale: float = 0.5) -> dict[str, Any]:
    import torch

    return {name: torch.from_numpy(fill(name, tuple(shape), scale)) for name, shape in shapes.items()}


def bert_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the BERT in `folder` (built from its config, no weights needed)."""
    from transformers import AutoConfig, AutoModel

    model = AutoModel.from_config(AutoConfig.from_pretrained(str(folder)))
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("position_ids")}


def save_bert_weights(folder: Path, scale: float = 0.5) -> None:
    """Write deterministic weights next to the config (what `from_pretrained` of a reference package needs)."""
    from transformers import AutoConfig, AutoModel

    model = AutoModel.from_config(AutoConfig.from_pretrained(str(folder)))
    state = deterministic_state(bert_shapes(folder), scale)
    model.load_state_dict(state, strict=False)
    model.save_pretrained(str(folder))


def state_digest(state: dict[str, Any]) -> str:
    """sha256 of a state dict's names and float32 values: tells two environments' tiny models apart."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(state[name].detach().float().cpu().numpy()).tobytes())
    return digest.hexdigest()


def checkpoint_digest(path: Path) -> str:
    """`state_digest` of a CheXbert checkpoint's `model_state_dict`."""
    import torch

    return state_digest(torch.load(path, map_location="cpu", weights_only=True)["model_state_dict"])


def folder_weights_digest(folder: Path) -> str:
    """`state_digest` of the weights `save_pretrained` wrote in `folder` (model.safetensors)."""
    from safetensors.torch import load_file

    return state_digest(load_file(str(Path(folder) / "model.safetensors")))


def files_digest(folder: Path, names: tuple[str, ...]) -> str:
    """sha256 of the named files' bytes (tokenizer files trained in different environments must agree)."""
    import hashlib

    digest = hashlib.sha256()
    for name in names:
        digest.update((Path(folder) / name).read_bytes())
    return digest.hexdigest()


# --- CheXbert --------------------------------------------------------------------------------------------------
def write_tiny_chexbert(folder: Path, *, hidden: int = 64, layers: int = 2) -> tuple[Path, Path]:
    """(chexbert.pth, tokenizer folder): the `bert_labeler` layout with `module.` prefixes, as in the real file.

    hidden=64 gives one attention head per 64 dimensions, which is what the loader infers without a config.
    """
    import torch

    folder = Path(folder)
    tokenizer = write_tiny_bert(folder / "bert", hidden=hidden, layers=layers, heads=max(1, hidden // 64))
    state = {f"module.bert.{k}": v for k, v in deterministic_state(bert_shapes(tokenizer), 0.3).items()}
    for i in range(14):
        classes = 4 if i < 13 else 2
        state.update(
            {
                f"module.linear_heads.{i}.weight": torch.from_numpy(fill(f"head{i}.weight", (classes, hidden), 1.0)),
                f"module.linear_heads.{i}.bias": torch.from_numpy(fill(f"head{i}.bias", (classes,), 0.5)),
            }
        )
    checkpoint = folder / "chexbert.pth"
    torch.save({"model_state_dict": state, "epoch": 0}, checkpoint)
    return checkpoint, tokenizer


# --- RadGraph (DyGIE++) ----------------------------------------------------------------------------------------
NER_LABELS = (
    "Anatomy::definitely present",
    "Observation::definitely present",
    "Observation::uncertain",
    "Observation::definitely absent",
)
RELATION_LABELS = ("modify", "located_at", "suggestive_of")


def radgraph_config(
    transformer: str, *, max_length: int = 24, feature_size: int = 8, hidden: int = 16, max_span_width: int = 4
) -> dict[str, Any]:
    """A radgraph `config.json` (allennlp DyGIE), shaped like the released ones but tiny."""
    bert = {"type": "pretrained_transformer_mismatched", "model_name": transformer, "max_length": max_length}
    return {
        "dataset_reader": {"type": "dygie", "max_span_width": max_span_width, "token_indexers": {"bert": bert}},
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": bert}},
            "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
            "module_initializer": {"regexes": [[".*weight", {"type": "xavier_normal"}]]},
            "feature_size": feature_size,
            "max_span_width": max_span_width,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": hidden, "dropout": 0.4},
            "loss_weights": {"ner": 0.2, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": 0.5},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 0.2, "arguments": 1.0},
                },
            },
        },
    }


def write_radgraph_vocabulary(folder: Path, dataset: str) -> None:
    vocabulary = Path(folder) / "vocabulary"
    vocabulary.mkdir(parents=True, exist_ok=True)
    (vocabulary / "non_padded_namespaces.txt").write_text("*tags\n*labels\n", encoding="utf-8")
    # Label namespaces are not padded: line i is index i, and the null NER label "" must be index 0.
    (vocabulary / f"{dataset}__ner_labels.txt").write_text("\n" + "\n".join(NER_LABELS) + "\n", encoding="utf-8")
    (vocabulary / f"{dataset}__relation_labels.txt").write_text("\n".join(RELATION_LABELS) + "\n", encoding="utf-8")


def radgraph_head_shapes(config: dict[str, Any], hidden_size: int, dataset: str) -> dict[str, tuple[int, ...]]:
    """Shapes of the span-width embedding and the NER / relation heads (the keys our port reads)."""
    model = config["model"]
    feature, width = model["feature_size"], model["max_span_width"]
    ff = model["feedforward_params"]
    dims = ff["hidden_dims"] if isinstance(ff["hidden_dims"], list) else [ff["hidden_dims"]] * ff["num_layers"]
    span = 2 * hidden_size + feature
    shapes: dict[str, tuple[int, ...]] = {"_endpoint_span_extractor._span_width_embedding.weight": (width, feature)}

    def feedforward(prefix: str, input_dim: int) -> None:
        for i, out in enumerate(dims):
            shapes[f"{prefix}._linear_layers.{i}.weight"] = (out, input_dim)
            shapes[f"{prefix}._linear_layers.{i}.bias"] = (out,)
            input_dim = out

    ner = f"_ner._ner_scorers.{dataset}__ner_labels"
    feedforward(f"{ner}.0._module", span)
    shapes[f"{ner}.1._module.weight"] = (len(NER_LABELS), dims[-1])
    shapes[f"{ner}.1._module.bias"] = (len(NER_LABELS),)
    pruner = f"_relation._mention_pruners.{dataset}__relation_labels._scorer"
    feedforward(f"{pruner}.0._module", span)
    shapes[f"{pruner}.1._module.weight"] = (1, dims[-1])
    shapes[f"{pruner}.1._module.bias"] = (1,)
    feedforward(f"_relation._relation_feedforwards.{dataset}__relation_labels", 3 * span)
    shapes[f"_relation._relation_scorers.{dataset}__relation_labels.weight"] = (len(RELATION_LABELS), dims[-1])
    shapes[f"_relation._relation_scorers.{dataset}__relation_labels.bias"] = (len(RELATION_LABELS),)
    return shapes


TRANSFORMER_PREFIX = "_embedder.token_embedder_bert._matched_embedder.transformer_model."


def _radgraph_scale(name: str) -> float:
    if name.startswith(TRANSFORMER_PREFIX):
        if "LayerNorm" in name:
            return 0.5
        return 1.0 if "embeddings" in name else 0.05
    if "_mention_pruners" in name and "_scorer.1" in name:
        return 0.02
    return 0.3


def write_tiny_radgraph(
    cache_dir: Path,
    model_type: str = "radgraph-xl",
    *,
    max_length: int = 24,
    extra_state: dict[str, tuple[int, ...]] | None = None,
) -> tuple[Path, Path]:
    """(model folder `cache_dir/<model_type>` with config.json, vocabulary/, weights.th; transformer folder).

    `extra_state` adds keys the reference model also has (coref, events), filled the same way, so that the
    reference package can load the file with strict=True.
    """
    import torch

    cache_dir = Path(cache_dir)
    transformer = write_tiny_bert(cache_dir / "transformer", hidden=32, layers=2, heads=2, max_positions=64)
    folder = cache_dir / model_type
    folder.mkdir(parents=True, exist_ok=True)
    config = radgraph_config(str(transformer), max_length=max_length)
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    write_radgraph_vocabulary(folder, model_type)
    shapes = {TRANSFORMER_PREFIX + k: v for k, v in bert_shapes(transformer).items()}
    shapes.update(radgraph_head_shapes(config, 32, model_type))
    shapes.update(extra_state or {})
    state = {name: torch.from_numpy(fill(name, tuple(shape), _radgraph_scale(name))) for name, shape in shapes.items()}
    # Small transformer weights keep words distinct (a random deep stack blurs them); biases keep the random
    # model from tagging every span and relating every pair.
    for name in state:
        if name.endswith("1._module.bias") and "_ner_scorers" in name:
            state[name] -= 1.5
        if name.endswith(".bias") and "_relation_scorers" in name:
            state[name] -= 1.0
    torch.save(state, folder / "weights.th")
    return folder, transformer


# --- RoBERTa (RadCliQ's BERTScore model is distilroberta-base) ------------------------------------------------
def write_tiny_roberta(folder: Path, *, hidden: int = 32, layers: int = 2, heads: int = 2) -> Path:
    """A RoBERTa config + byte-level BPE tokenizer trained on the tiny vocabulary (vocab.json, merges.txt)."""
    from tokenizers import ByteLevelBPETokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    corpus = [" ".join(VOCAB_WORDS), " ".join(reversed(VOCAB_WORDS)), "0 1 2 3 4 5 6 7 8 9 . , ; : ( ) / - %"]
    tokenizer.train_from_iterator(
        corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    tokenizer.save_model(str(folder))
    vocab_size = tokenizer.get_vocab_size()
    config = {
        "model_type": "roberta",
        "architectures": ["RobertaModel"],
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": 2 * hidden,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "RobertaTokenizer",
        "model_max_length": 512,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1), encoding="utf-8")
    return folder


def write_baseline(path: Path, layers: int, values: tuple[float, float, float] = (0.3, 0.3, 0.3)) -> Path:
    """A bert-score rescale baseline file (one row per layer: LAYER,P,R,F)."""
    rows = ["LAYER,P,R,F"] + [f"{i},{values[0]},{values[1]},{values[2]}" for i in range(layers + 1)]
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return Path(path)


def write_all(root: Path) -> dict[str, dict[str, Any]]:
    """Every tiny clinical model under `root`; returns the per-metric options that point the metrics at them."""
    root = Path(root)
    chexbert, chexbert_tokenizer = write_tiny_chexbert(root / "chexbert")
    radgraph_xl, _ = write_tiny_radgraph(root / "radgraph", "radgraph-xl")
    radgraph_v1, _ = write_tiny_radgraph(root / "radgraph-v1", "radgraph")
    distilbert = write_tiny_bert(root / "distilbert", hidden=32, layers=6, heads=2, model_type="distilbert")
    save_bert_weights(distilbert, 0.3)
    roberta = write_tiny_roberta(root / "distilroberta")
    save_bert_weights(roberta, 0.3)
    chexbert_options = {"checkpoint": str(chexbert), "tokenizer": str(chexbert_tokenizer), "device": "cpu"}
    bertscore = {
        "model_path": str(distilbert),
        "baseline_path": str(write_baseline(root / "distilbert.tsv", 6)),
        "device": "cpu",
    }
    radcliq = {
        "radgraph": {"model_dir": str(radgraph_v1), "model_type": "radgraph", "device": "cpu"},
        "chexbert": chexbert_options,
        "bertscore": {
            "model_path": str(roberta),
            "baseline_path": str(write_baseline(root / "distilroberta.tsv", 2)),
            "num_layers": 2,
            "device": "cpu",
        },
    }
    radgraph = {"model_dir": str(radgraph_xl), "device": "cpu"}
    options: dict[str, dict[str, Any]] = {"bertscore": bertscore, "radcliq_v1": radcliq}
    for name in ("radgraph_f1_simple", "radgraph_f1_partial", "radgraph_f1_complete"):
        options[name] = radgraph
    for name in ("chexbert_micro_f1_14", "chexbert_macro_f1_14", "chexbert_micro_f1_5", "chexbert_macro_f1_5"):
        options[name] = chexbert_options
    return options
