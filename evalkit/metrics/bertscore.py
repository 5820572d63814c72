"""BERTScore F1 with the bert-score package itself (0.3.13 works on transformers 5), cached per pair.

Default settings are RadVLM-GRPO's (its vilmedic `BertScore`): distilbert-base-uncased, layer 5, no idf,
baseline rescaling (bert-score's own `rescale_baseline/en/distilbert-base-uncased.tsv`), `score(cands=
predictions, refs=references)`. The model is loaded from a local folder (`model_path`, `$EVALKIT_METRIC_WEIGHTS/
<model_type>` or the Hugging Face cache), never downloaded.

What is cached is the per-pair (P, R, F), keyed by the hashes of both texts and the exact settings + weights:
token-level embeddings of each text would make the compute-once cache ~100 kB per report, while the pair
result is 3 numbers, and a BERTScore forward pass is cheap next to RadGraph or CheXbert. idf weighting is not
offered: it makes every pair's score depend on the whole reference corpus, which no paper we follow used.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalkit.metrics import register_metric
from evalkit.metrics._annotations import annotate, pair_hash, weights_fingerprint
from evalkit.metrics._weights import model_dir
from evalkit.metrics.base import MetricOptions, ModelBackedMetric, SampleScore, setting
from evalkit.sample import Parsed, Sample

CODE_VERSION = "2"  # 2: RoBERTa first-word "Ġ" restored under transformers 5 (_patch_tokenizer)
_scorers: dict[tuple[str, ...], Any] = {}
_lock = threading.Lock()


def packaged_baseline(model_type: str, lang: str = "en") -> Path | None:
    spec = importlib.util.find_spec("bert_score")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "rescale_baseline" / lang / f"{model_type}.tsv"
    return path if path.is_file() else None


def _patch_tokenizer(tokenizer: Any) -> None:
    """Make a transformers 5 tokenizer encode as bert-score's code expects of transformers 4.

    1. bert-score encodes an empty sentence with `build_inputs_with_special_tokens([])`, which transformers 5
       tokenizers no longer have: give the instance one that returns what transformers 4 returned for []
       ([CLS] [SEP] for BERT, <s> </s> for RoBERTa).
    2. For RoBERTa/GPT-2 tokenizers bert-score calls `encode(sent, add_prefix_space=True)`; transformers 4's
       byte-level tokenizers prepended a space (so the first word is "Ġword", as every other word), transformers
       5 silently ignores the argument and the first word loses its "Ġ". Every BERTScore with a RoBERTa model
       (RadCliQ-v1's distilroberta-base feature included) then differs from the published numbers. The wrapper
       restores transformers 4's rule (`prepare_for_tokenization`: prepend " " unless the text starts with
       whitespace); tests/test_bertscore_tokens.py proves the ids equal transformers 4's.
    """
    try:
        tokenizer.build_inputs_with_special_tokens([])
    except AttributeError:
        specials = tokenizer("", add_special_tokens=True)["input_ids"]

        def build(ids: list[int], ids_pair: list[int] | None = None) -> list[int]:
            return [*specials[:1], *ids, *(ids_pair or []), *specials[1:]]

        tokenizer.build_inputs_with_special_tokens = build
    if getattr(tokenizer, "_evalkit_prefix_space", False) or not _ignores_prefix_space(tokenizer):
        return
    encode = tokenizer.encode

    def encode_with_prefix_space(text: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.pop("add_prefix_space", False) and isinstance(text, str) and text and not text[0].isspace():
            text = " " + text
        return encode(text, *args, **kwargs)

    tokenizer.encode = encode_with_prefix_space
    tokenizer._evalkit_prefix_space = True


def _ignores_prefix_space(tokenizer: Any) -> bool:
    """True for a byte-level BPE tokenizer on which `encode(..., add_prefix_space=True)` adds no space."""
    try:
        from transformers import GPT2Tokenizer, RobertaTokenizer
    except ImportError:
        return False
    if not isinstance(tokenizer, GPT2Tokenizer | RobertaTokenizer):
        return False  # bert-score passes add_prefix_space only to these
    probe = "a"
    return (
        tokenizer.encode(probe, add_special_tokens=False, add_prefix_space=True)
        == tokenizer.encode(probe, add_special_tokens=False)
        != tokenizer.encode(" " + probe, add_special_tokens=False)
    )


class BertScoreClient:
    """One BERTScore configuration: availability, a shared scorer, and cached pair scores."""

    def __init__(self, options: dict[str, Any], *, model_type: str, num_layers: int, collapse_spaces: bool = False):
        self.model_type = options.get("model_type", model_type)
        self.num_layers = int(options.get("num_layers", num_layers))
        self.model_path = options.get("model_path")
        self.rescale = bool(options.get("rescale_with_baseline", True))
        self.baseline_option = options.get("baseline_path")
        self.device = options.get("device")
        self.batch_size = int(options.get("batch_size", 64))
        self.idf = bool(options.get("idf", False))
        # CXR-Report-Metric (RadCliQ) squeezes runs of spaces before scoring; RadVLM does not.
        self.collapse_spaces = collapse_spaces

    def _folder(self) -> Path | None:
        return model_dir(self.model_path or self.model_type)

    def _baseline(self) -> Path | None:
        if self.baseline_option:
            path = Path(self.baseline_option).expanduser()
            return path if path.is_file() else None
        return packaged_baseline(self.model_type)

    def unavailable(self) -> str | None:
        if importlib.util.find_spec("bert_score") is None:  # find, not import: importing it takes seconds
            return "the bert-score package is not installed (pip install 'evalkit[clinical]')"
        if self.idf:
            return "idf weighting is not supported (scores would depend on the whole corpus); drop the idf option"
        if self._folder() is None:
            name = self.model_path or self.model_type
            return (
                f"model '{name}' not found locally; put it in $EVALKIT_METRIC_WEIGHTS/{self.model_type}/ or the "
                f"Hugging Face cache (huggingface-cli download {self.model_type}), or pass model_path=PATH"
            )
        if self.rescale and self._baseline() is None:
            return f"no rescale baseline for '{self.model_type}'; pass baseline_path=FILE.tsv"
        return None

    def scorer(self):
        folder = self._folder()
        if folder is None:
            raise FileNotFoundError(self.unavailable())
        baseline = self._baseline() if self.rescale else None
        key = (str(folder.resolve()), str(self.num_layers), str(baseline), str(self.device), str(self.batch_size))
        with _lock:
            if key not in _scorers:
                from bert_score import BERTScorer

                scorer = BERTScorer(
                    model_type=str(folder),
                    num_layers=self.num_layers,
                    batch_size=self.batch_size,
                    lang="en",
                    rescale_with_baseline=self.rescale,
                    baseline_path=str(baseline) if baseline else None,
                    device=self.device,
                )
                _patch_tokenizer(scorer._tokenizer)
                _scorers[key] = scorer
            return _scorers[key]

    def version(self) -> str:
        """Cache version from the files alone (no model load): layer, rescaling, weights, baseline."""
        folder = self._folder()
        if folder is None:
            raise FileNotFoundError(self.unavailable())
        baseline = self._baseline() if self.rescale else None
        return (
            f"{CODE_VERSION}:L{self.num_layers}:{'rescaled' if self.rescale else 'raw'}:"
            f"{weights_fingerprint(folder)}:{weights_fingerprint(baseline) if baseline else '-'}"
        )

    def prepare(self, text: str) -> str:
        return re.sub(r" +", " ", text) if self.collapse_spaces else text

    def pair_scores(self, references: Sequence[str], predictions: Sequence[str], store: Any) -> list[dict[str, float]]:
        """{"p", "r", "f"} per (reference, prediction) pair; each distinct pair scored once ever."""
        refs = [self.prepare(r) for r in references]
        preds = [self.prepare(p) for p in predictions]
        keys = [pair_hash(r, p) for r, p in zip(refs, preds, strict=True)]
        inputs = dict(zip(keys, zip(refs, preds, strict=True), strict=True))

        def compute(pairs: list[tuple[str, str]]) -> list[dict[str, float]]:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                # bert-score's baseline tensor comes from a read-only numpy array: harmless, and noisy.
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                p, r, f = self.scorer().score(
                    [c for _, c in pairs], [ref for ref, _ in pairs], batch_size=self.batch_size
                )
            return [{"p": float(a), "r": float(b), "f": float(c)} for a, b, c in zip(p, r, f, strict=True)]

        found = annotate(
            keys,
            inputs,
            compute,
            annotator=f"bertscore:{self.model_type}",
            version=self.version(),
            store=store,
            batch_size=1024,
        )
        return [found[k] for k in keys]


@register_metric
class BertScoreF1(ModelBackedMetric):
    """BERTScore F1 per sample, mean over samples (RadVLM-GRPO settings by default)."""

    name = "bertscore"
    version = "1"
    requires = "bert-score and distilbert-base-uncased available locally"
    description = "BERTScore F1 (distilbert-base-uncased, layer 5, rescaled with baseline), mean over samples"

    class Options(MetricOptions):
        model_type: str = "distilbert-base-uncased"
        num_layers: int = 5
        model_path: str | None = None
        rescale_with_baseline: bool = True
        baseline_path: str | None = None
        idf: bool = False
        device: str | None = setting()
        batch_size: int = setting(64)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client = BertScoreClient(options, model_type="distilbert-base-uncased", num_layers=5)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        scores = self.client.pair_scores(refs, preds, self.cache)
        return [SampleScore(s["f"], {"precision": s["p"], "recall": s["r"]}) for s in scores]
