"""CheXbert F1 (micro / macro over 14 and over 5 observations), as f1chexbert 0.0.2 computes it.

The labeller is our own thin module with the architecture of the original (`bert_labeler`: BERT-base + 13
four-way heads + one two-way head on the [CLS] state) that loads the original `chexbert.pth`. We do not import
f1chexbert: it calls `encode_plus` (gone in transformers 5) and sklearn's private `_check_targets` (changed in
scikit-learn 1.7). Tokenisation, truncation and the label mapping follow f1chexbert line by line:

- text: strip, newlines -> spaces, runs of whitespace -> one space, strip; `tokenizer.tokenize`; ids are
  [CLS] + ids + [SEP], cut to 511 + [SEP] when longer than 512; an empty text is [CLS] [SEP].
- label ("rrg" mode of f1chexbert): head class 1 (positive) and 3 (uncertain) -> 1, 0 (blank) and 2 (negative) -> 0.
- F1: sklearn's `classification_report` "micro avg" / "macro avg" f1 over the 14 conditions (No Finding last)
  and over the 5 (Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion), zero_division -> 0.

Per-sample statistics are the binary label vectors of reference and prediction, so the corpus value and every
bootstrap resample are re-aggregated from counts, never by re-running the model. The same forward pass gives
the [CLS] embedding used by RadCliQ's s_emb (CXR-Report-Metric's `encode.py`), cached alongside the labels.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evalkit.chexpert import CHEXPERT_FIVE, CHEXPERT_LABELS
from evalkit.metrics import register_metric
from evalkit.metrics._annotations import annotate_texts, decode_array, encode_array, weights_fingerprint
from evalkit.metrics._weights import (
    RRG_SCORERS,
    first_existing,
    hf_cached_file,
    model_dir,
    user_cache_dir,
    weights_root,
)
from evalkit.metrics.base import MetricOptions, ModelBackedMetric, SampleScore, setting
from evalkit.sample import Parsed, Sample

CONDITIONS = CHEXPERT_LABELS  # CheXbert's heads, in order
FIVE = CHEXPERT_FIVE
ALL_INDEX = tuple(range(len(CONDITIONS)))
FIVE_INDEX = tuple(i for i, c in enumerate(CONDITIONS) if c in FIVE)  # f1chexbert: np.where(np.isin(...))
CODE_VERSION = "1"
MAX_LEN = 512
_HOW_TO = (
    "put chexbert.pth (from the Hugging Face repository StanfordAIMI/RRG_scorers) at "
    "$EVALKIT_METRIC_WEIGHTS/chexbert/chexbert.pth, or pass the metric option checkpoint=PATH"
)
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json")  # either makes a usable BERT tokenizer folder


def find_checkpoint(option: str | None = None) -> Path | None:
    """chexbert.pth: the option, $EVALKIT_METRIC_WEIGHTS/chexbert/, the HF cache, or f1chexbert's own cache."""
    if option:
        return Path(option).expanduser() if Path(option).expanduser().is_file() else None
    root = weights_root()
    return first_existing(
        [
            root / "chexbert" / "chexbert.pth" if root else None,
            root / "chexbert.pth" if root else None,
            hf_cached_file(RRG_SCORERS, "chexbert.pth"),
            user_cache_dir("chexbert") / "chexbert.pth",
        ]
    )


def clean_report(text: str) -> str:
    """f1chexbert's pandas preprocessing: strip, '\\n' -> ' ', whitespace runs -> ' ', strip."""
    text = text.strip().replace("\n", " ")
    return re.sub(r"\s+", " ", text).strip()


def rrg_labels(classes: Sequence[int]) -> list[int]:
    """f1chexbert's "rrg" mode: positive (1) and uncertain (3) count as present; blank and negative do not."""
    return [1 if c in (1, 3) else 0 for c in classes]


class CheXbertLabeler:
    """The CheXbert `bert_labeler` architecture with the original weights, batched, eval mode, no grad."""

    def __init__(self, checkpoint: Path, tokenizer: str, device: str | None = None, batch_size: int = 32) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.batch_size = batch_size
        tokenizer_dir = model_dir(tokenizer, required_file=TOKENIZER_FILES)
        if tokenizer_dir is None:
            raise FileNotFoundError(f"tokenizer '{tokenizer}' not found locally")
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model_state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        config = _config_from_state(state, checkpoint)
        self.bert = BertModel(config)
        heads = [torch.nn.Linear(config.hidden_size, 4) for _ in range(13)] + [torch.nn.Linear(config.hidden_size, 2)]
        self.heads = torch.nn.ModuleList(heads)
        bert_state = {k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")}
        head_state = {k.removeprefix("linear_heads."): v for k, v in state.items() if k.startswith("linear_heads.")}
        missing, _ = self.bert.load_state_dict(bert_state, strict=False)
        # f1chexbert loads with strict=False; a truly missing weight would leave random numbers, so we refuse.
        missing = [k for k in missing if not k.endswith("position_ids") and not k.startswith("pooler.")]
        if missing:
            raise ValueError(f"{checkpoint}: not a CheXbert checkpoint (missing {missing[:3]}...)")
        self.heads.load_state_dict(head_state, strict=True)
        self.bert.to(self.device).eval()
        self.heads.to(self.device).eval()

    def encode(self, text: str) -> list[int]:
        tokenizer = self.tokenizer
        tokens = tokenizer.tokenize(clean_report(text))
        if not tokens:
            return [tokenizer.cls_token_id, tokenizer.sep_token_id]
        ids = [tokenizer.cls_token_id, *tokenizer.convert_tokens_to_ids(tokens), tokenizer.sep_token_id]
        if len(ids) > MAX_LEN:
            ids = [*ids[: MAX_LEN - 1], tokenizer.sep_token_id]
        return ids

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        """Per text: {"classes": 14 head argmaxes, "emb": base64 float32 [CLS] state}."""
        torch = self.torch
        encoded = [self.encode(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out: list[dict[str, Any]] = [{} for _ in texts]
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                width = max(len(encoded[i]) for i in index)
                ids = torch.zeros((len(index), width), dtype=torch.long)
                mask = torch.zeros((len(index), width), dtype=torch.float)
                for row, i in enumerate(index):
                    ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, : len(encoded[i])] = 1
                hidden = self.bert(ids.to(self.device), attention_mask=mask.to(self.device))[0][:, 0, :]
                classes = torch.stack([head(hidden).argmax(dim=1) for head in self.heads], dim=1).cpu().tolist()
                embeddings = hidden.float().cpu().numpy()
                for row, i in enumerate(index):
                    out[i] = {"classes": classes[row], "emb": encode_array(embeddings[row])}
        return out


def _config_from_state(state: dict[str, Any], checkpoint: Path):
    """BERT config from the weights' shapes (bert-base-uncased for the real file); a config.json beside wins."""
    from transformers import BertConfig

    beside = checkpoint.parent / "config.json"
    if beside.is_file():
        return BertConfig.from_json_file(str(beside))
    vocab, hidden = state["bert.embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("bert.encoder.layer."))
    return BertConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=state["bert.encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["bert.embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["bert.embeddings.token_type_embeddings.weight"].shape[0],
    )


def _tokenizer_fingerprint(folder: Path) -> str:
    files = [folder / name for name in _TOKENIZER_FILES if (folder / name).is_file()]
    return weights_fingerprint(*files)


_labelers: dict[tuple[str, str, str, int], CheXbertLabeler] = {}
_lock = threading.Lock()


def get_labeler(checkpoint: Path, tokenizer: str, device: str | None, batch_size: int) -> CheXbertLabeler:
    """One labeler per (weights, tokenizer, device) in the process, shared by the four CheXbert metrics and RadCliQ."""
    key = (str(Path(checkpoint).resolve()), tokenizer, str(device), batch_size)
    with _lock:
        if key not in _labelers:
            _labelers[key] = CheXbertLabeler(Path(checkpoint), tokenizer, device, batch_size)
        return _labelers[key]


class CheXbertClient:
    """What metrics share: option parsing, availability, and cached annotation of texts."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.checkpoint_option = options.get("checkpoint")
        self.tokenizer = options.get("tokenizer", "bert-base-uncased")
        self.device = options.get("device")
        self.batch_size = int(options.get("batch_size", 32))

    def unavailable(self) -> str | None:
        checkpoint = find_checkpoint(self.checkpoint_option)
        if checkpoint is None:
            where = f"{self.checkpoint_option} does not exist" if self.checkpoint_option else "chexbert.pth not found"
            return f"{where}; {_HOW_TO}"
        if model_dir(self.tokenizer, required_file=TOKENIZER_FILES) is None:
            return (
                f"tokenizer '{self.tokenizer}' not found locally; put its files (vocab.txt, tokenizer_config.json) "
                f"in $EVALKIT_METRIC_WEIGHTS/{self.tokenizer.split('/')[-1]}/ or in the Hugging Face cache "
                f"(huggingface-cli download {self.tokenizer}), or pass the metric option tokenizer=PATH"
            )
        return None

    def version(self) -> str:
        """Annotator version from the files alone (no model load): code version + weights + tokenizer."""
        checkpoint = find_checkpoint(self.checkpoint_option)
        tokenizer_dir = model_dir(self.tokenizer, required_file=TOKENIZER_FILES)
        if checkpoint is None or tokenizer_dir is None:
            raise FileNotFoundError(self.unavailable())
        return f"{CODE_VERSION}:{weights_fingerprint(checkpoint)}:{_tokenizer_fingerprint(tokenizer_dir)}"

    def labeler(self) -> CheXbertLabeler:
        checkpoint = find_checkpoint(self.checkpoint_option)
        if checkpoint is None:
            raise FileNotFoundError(self.unavailable())
        return get_labeler(checkpoint, self.tokenizer, self.device, self.batch_size)

    def annotate(self, texts: Sequence[str], store: Any) -> list[dict[str, Any]]:
        """Labels + embedding per text; the model is loaded only if some text is in no cache."""
        return annotate_texts(
            texts,
            lambda batch: self.labeler()(batch),
            annotator="chexbert",
            version=self.version(),
            store=store,
            batch_size=256,
        )


def embedding(annotation: dict[str, Any]) -> np.ndarray:
    return decode_array(annotation["emb"])


def f1_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, average: str) -> np.ndarray:
    """Micro / macro F1 over the last axis (labels); zero_division -> 0 as in classification_report."""
    if average == "micro":
        tp, fp, fn = tp.sum(axis=-1), fp.sum(axis=-1), fn.sum(axis=-1)
        denominator = 2 * tp + fp + fn
        return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    denominator = 2 * tp + fp + fn
    per_label = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    return per_label.mean(axis=-1)


CHEXBERT_REQUIRES = "CheXbert weights (chexbert.pth) and the bert-base-uncased tokenizer, available locally"


class CheXbertOptions(MetricOptions):
    """What every metric on CheXbert's labels takes (the F1s here, the finding diagnostics in health_chexbert)."""

    checkpoint: str | None = None
    tokenizer: str = "bert-base-uncased"
    device: str | None = setting()
    batch_size: int = setting(32)


class _CheXbertF1(ModelBackedMetric):
    corpus = True
    version = "1"
    requires = CHEXBERT_REQUIRES
    labels: ClassVar[tuple[int, ...]] = ALL_INDEX
    average: ClassVar[str] = "micro"
    Options = CheXbertOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client = CheXbertClient(options)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        annotations = self.client.annotate(refs + preds, self.cache)
        out = []
        for ref_ann, pred_ann in zip(annotations[: len(refs)], annotations[len(refs) :], strict=True):
            ref = [rrg_labels(ref_ann["classes"])[i] for i in self.labels]
            pred = [rrg_labels(pred_ann["classes"])[i] for i in self.labels]
            stats = {"ref": ref, "pred": pred}
            out.append(SampleScore(self.aggregate([None], [stats]), stats))
        return out

    def _matrix(self, stats: Sequence[dict[str, Any]]) -> np.ndarray:
        k = len(self.labels)
        if not stats:
            return np.zeros((0, 3 * k))
        ref = np.array([s["ref"] for s in stats], dtype=float).reshape(len(stats), k)
        pred = np.array([s["pred"] for s in stats], dtype=float).reshape(len(stats), k)
        return np.hstack([ref * pred, (1 - ref) * pred, ref * (1 - pred)])

    def aggregate(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> float:
        if not stats:
            return float("nan")
        return float(self.from_sums(self._matrix(stats).sum(axis=0)))

    def sufficient_matrix(self, values: Sequence[float | None], stats: Sequence[dict[str, Any]]) -> np.ndarray:
        # Columns: TP, FP, FN per label; micro and macro F1 are functions of their sums.
        return self._matrix(stats)

    def from_sums(self, sums: np.ndarray) -> np.ndarray:
        k = len(self.labels)
        return f1_from_counts(sums[..., :k], sums[..., k : 2 * k], sums[..., 2 * k :], self.average)


@register_metric
class CheXbertMicroF1All(_CheXbertF1):
    name = "chexbert_micro_f1_14"
    description = "CheXbert micro F1 over the 14 observations (f1chexbert, positive+uncertain = present)"


@register_metric
class CheXbertMacroF1All(_CheXbertF1):
    name = "chexbert_macro_f1_14"
    average = "macro"
    description = "CheXbert macro F1 over the 14 observations (f1chexbert)"


@register_metric
class CheXbertMicroF1Five(_CheXbertF1):
    name = "chexbert_micro_f1_5"
    labels = FIVE_INDEX
    description = "CheXbert micro F1 over 5 observations (cardiomegaly, edema, consolidation, atelectasis, effusion)"


@register_metric
class CheXbertMacroF1Five(_CheXbertF1):
    name = "chexbert_macro_f1_5"
    labels = FIVE_INDEX
    average = "macro"
    description = "CheXbert macro F1 over the 5 observations (f1chexbert)"
