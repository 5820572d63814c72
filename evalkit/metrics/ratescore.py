"""RaTEScore (Zhao et al., EMNLP 2024): entity-aware similarity of a generated and a reference radiology report,
as the `ratescore` package (0.6.0, `RaTEScore.compute_score`) computes it; ReXrank reports it. Higher is better.

Per report pair:
1. sentences: medspacy's PyRuSH splitter; a sentence of no words or under 3 characters is dropped;
2. entities: a DeBERTa token classifier (Angelakeke/RaTE-NER-Deberta) tags each sentence's tokens in BIO tags of
   five types (ABNORMALITY, NON-ABNORMALITY, DISEASE, NON-DISEASE, ANATOMY); spans are decoded with the package's
   rules, which only start an entity on a B- tag and only close one before an O or a B- tag (`decode_spans`);
3. each entity string is embedded by BioLORD-2023-C's [CLS] state (inputs cut at 30 tokens);
4. each entity of one side is matched to its most cosine-similar entity of the other; the match's similarity is
   weighted by the affinity of the two types (the published "long" or "short" matrix) and by `neg_weight` when a
   positive type meets its negated type; P and R are those weighted means in the two directions, the score their
   harmonic mean; 0.5 when either report has no entity, 0 when P + R is 0.

Departure, by design: the package pairs reports by position in its list of per-report entities, and a text with no
sentence adds no entry, so every later report in the same call is paired with the wrong one (recorded in
tests/fixtures/ratescore_reference.json, `empty_case`). evalkit scores each pair on its own; such a text has no
entity and scores 0.5, which is what the package gives when it is the last report.

Needs medspacy (sentence splitting) and both models' weights locally; `available()` says which is missing.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from evalkit.metrics import register_metric
from evalkit.metrics._annotations import weights_fingerprint
from evalkit.metrics._weights import model_dir
from evalkit.metrics.base import Metric, MetricOptions, SampleScore, setting
from evalkit.sample import Parsed, Sample

NER_MODEL = "Angelakeke/RaTE-NER-Deberta"
EMBEDDING_MODEL = "FremyCompany/BioLORD-2023-C"
NO_ENTITY_SCORE = 0.5  # the package's score when either report has no entity
MAX_NER_TOKENS = 512
MAX_ENTITY_TOKENS = 30
SKIPPED_TOKENS = frozenset({"[CLS]", "[SEP]"})

# The published type-affinity matrices (ratescore 0.6.0, RaTEScore/scorer.py: DEFAULT_MATRIX_LONG / _SHORT), keyed
# (type of the entity being matched, type of its best match); `neg_weight` scales a positive/negated type pair.
_TYPES = ("ABNORMALITY", "ANATOMY", "DISEASE", "NON-ABNORMALITY", "NON-DISEASE")
_LONG = (
    (0.4276119164393705, 0.6240929990607657, 0.0034478181112993847, 0.5431049700217344, 0.27005425386213877),
    (0.7487824274337533, 0.2856134859160784, 0.4592143222158069, 0.02097055139911715, 0.00013736314126696204),
    (0.8396510075734789, 0.9950209388542061, 0.8460555030578727, 0.9820689020512646, 0.3789136708096537),
    (0.16546764653692908, 0.018670610691852826, 0.719397354576018, 0.0009357166071730684, 0.0927333564267591),
    (0.7759420231214385, 0.1839139293714062, 0.10073046076318157, 0.03860183811876373, 0.34065681486566446),
)
_SHORT = (
    (0.4070293318365468, 0.6952639610605605, 0.28342529466226446, 0.9479148658006686, 0.23875064111146294),
    (0.5829759950441763, 0.7709590751917746, 0.0006059634829551632, 0.794672584951181, 0.27982942400798977),
    (0.8840397619834857, 0.9637659445696822, 0.19018958438059513, 0.6962283914800402, 0.943727057946997),
    (0.1712744286898638, 0.4485149671497294, 0.00045065329822896076, 0.0007887930317199857, 0.8555432840895761),
    (0.9555801066212176, 0.13122106162635216, 0.6072996585919443, 0.05650711141169969, 0.3214769399791204),
)
NEG_WEIGHT = {"long": 0.8716553966489615, "short": 0.3611577852354489}
AFFINITY = {
    name: {(a, b): rows[i][j] for i, a in enumerate(_TYPES) for j, b in enumerate(_TYPES)}
    for name, rows in (("long", _LONG), ("short", _SHORT))
}
# A positive type matched to a negated one (either direction), or a disease to a negated abnormality and back.
NEGATED_PAIRS = frozenset(
    {
        (a, b)
        for pos, neg in (("DISEASE", "NON-DISEASE"), ("ABNORMALITY", "NON-ABNORMALITY"))
        for a, b in ((pos, neg), (neg, pos))
    }
    | {("NON-DISEASE", "ABNORMALITY"), ("NON-ABNORMALITY", "DISEASE")}
    | {("DISEASE", "NON-ABNORMALITY"), ("ABNORMALITY", "NON-DISEASE")}
)

_lock = threading.Lock()
_loaded: dict[tuple[str, ...], Any] = {}


# --- the scoring core (pure functions; models passed in) ---------------------------------------------------------
def keep_sentence(sentence: str) -> bool:
    """The package keeps a split sentence with at least one word and at least 3 characters (after stripping)."""
    return bool(sentence.split()) and len(sentence) >= 3


def decode_spans(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first, last, type) token spans from BIO tags, by the package's rules (`RaTEScore/utils.py: post_process`).

    A tag only acts when a next tag exists: B before I opens an entity; B before B or O is a one-token entity
    (before B the same token also re-opens one); I before B or O closes the open entity (if any), and before B
    opens the next. An entity still open at the end, with no entity closed before it, runs to the last token
    before [SEP].
    """
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    closed = False  # the package's `end` is not None
    kind: str | None = None
    for i in range(min(len(tokens), len(tags))):
        tag = tags[i]
        if tokens[i] in SKIPPED_TOKENS or tag == "O" or i + 1 >= len(tags):
            continue
        following = tags[i + 1][:2]
        if tag.startswith("B-"):
            if following == "I-":
                start, kind = i, tag[2:]
            elif following == "B-":
                spans.append((i, i, tag[2:]))
                start, closed, kind = i, True, tag[2:]
            elif tags[i + 1].startswith("O"):
                spans.append((i, i, tag[2:]))
                start, closed, kind = None, False, None
        elif tag.startswith("I-") and (following == "B-" or tags[i + 1].startswith("O")):
            if start is not None:
                spans.append((start, i, kind or ""))
            if following == "B-":
                start, closed, kind = i, True, tag[2:]
            else:
                start, closed, kind = None, False, None
    if start is not None and not closed:
        spans.append((start, len(tokens) - 2, kind or ""))
    return spans


def weighted_match(
    source: Any, target: Any, source_types: Sequence[str], target_types: Sequence[str], matrix: str
) -> float:
    """Affinity-weighted mean similarity of each `source` entity to its best `target` match (one direction)."""
    import torch

    source = torch.nn.functional.normalize(source, p=2, dim=1)
    target = torch.nn.functional.normalize(target, p=2, dim=1)
    total = weights = 0.0
    for row, kind in zip(source, source_types, strict=True):
        value, j = torch.topk(target @ row, 1)  # one matrix-vector product per entity, as the package (same ties)
        pair = (kind, target_types[int(j[0])])
        value = float(value[0])
        weight = AFFINITY[matrix][pair]
        total += value * weight * (NEG_WEIGHT[matrix] if pair in NEGATED_PAIRS else 1.0)
        weights += weight
    return total / weights if weights else 0.0


def pair_score(reference: tuple[Any, list[str]], prediction: tuple[Any, list[str]], matrix: str) -> float:
    """RaTEScore of one pair from each side's (entity embeddings, entity types)."""
    (ref_emb, ref_types), (pred_emb, pred_types) = reference, prediction
    if not ref_types or not pred_types:
        return NO_ENTITY_SCORE
    precision = weighted_match(ref_emb, pred_emb, ref_types, pred_types, matrix)
    recall = weighted_match(pred_emb, ref_emb, pred_types, ref_types, matrix)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


class RaTEModels:
    """The two models and their tokenizers; `entities` and `embed` run them as the package does."""

    def __init__(self, ner_dir: Path, embedding_dir: Path, device: str | None = None, batch_size: int = 16) -> None:
        import torch
        from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

        self.device = torch.device(device or "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(ner_dir))
        self.ner = AutoModelForTokenClassification.from_pretrained(str(ner_dir)).eval().to(self.device)
        self.labels = {int(k): v for k, v in self.ner.config.id2label.items()}
        self.embed_tokenizer = AutoTokenizer.from_pretrained(str(embedding_dir))
        self.embedder = AutoModel.from_pretrained(str(embedding_dir)).eval().to(self.device)
        self.batch_size = batch_size

    def entities(self, sentences: Sequence[Sequence[str]]) -> list[list[tuple[str, str]]]:
        """Per text (its kept sentences), its (entity string, type) list in order."""
        import torch

        flat = [(t, s) for t, text in enumerate(sentences) for s in text]
        out: list[list[tuple[str, str]]] = [[] for _ in sentences]
        for at in range(0, len(flat), self.batch_size):
            batch = flat[at : at + self.batch_size]
            inputs = self.tokenizer(
                [s for _, s in batch], max_length=MAX_NER_TOKENS, padding=True, truncation=True, return_tensors="pt"
            ).to(self.device)
            with torch.no_grad():
                predicted = self.ner(**inputs).logits.argmax(dim=2).tolist()
            for row, (t, _) in enumerate(batch):
                ids = inputs["input_ids"][row][inputs["attention_mask"][row] > 0].tolist()
                tokens = self.tokenizer.convert_ids_to_tokens(ids)
                tags = [self.labels[k] for k in predicted[row][: len(tokens)]]
                out[t].extend(
                    (self.tokenizer.convert_tokens_to_string(tokens[a : b + 1]), kind)
                    for a, b, kind in decode_spans(tokens, tags)
                )
        return out

    def embed(self, entities: Sequence[tuple[str, str]]) -> tuple[Any, list[str]]:
        """One report's entity embeddings (the encoder's [CLS] state, one batch per report) and types."""
        import torch

        if not entities:
            return torch.zeros((0, 0)), []
        encoded = self.embed_tokenizer(
            [e for e, _ in entities], truncation=True, padding=True, return_tensors="pt", max_length=MAX_ENTITY_TOKENS
        ).to(self.device)
        with torch.no_grad():
            states = self.embedder(**encoded).last_hidden_state[:, 0, :].cpu()
        return states, [kind for _, kind in entities]


def split_sentences(texts: Sequence[str]) -> list[list[str]]:
    """Each text's sentences by medspacy's PyRuSH (as the package loads it), the package's short ones dropped."""
    with _lock:
        if "medspacy" not in _loaded:
            import medspacy

            _loaded["medspacy"] = medspacy.load(medspacy_enable=["medspacy_pyrush"])
        nlp = _loaded["medspacy"]
    out = []
    for text in texts:
        kept = [str(s).strip() for s in nlp(text).sents]
        out.append([s for s in kept if keep_sentence(s)])
    return out


def ratescores(
    models: RaTEModels, reference_sentences: Sequence[Sequence[str]], prediction_sentences: Sequence[Sequence[str]],
    matrix: str = "long",
) -> list[float]:  # fmt: skip
    """RaTEScore of each (reference, prediction) pair, from their split sentences."""
    n = len(reference_sentences)
    found = models.entities([*reference_sentences, *prediction_sentences])
    return [pair_score(models.embed(found[i]), models.embed(found[n + i]), matrix) for i in range(n)]


# --- the metric --------------------------------------------------------------------------------------------------
@register_metric
class RaTEScore(Metric):
    """RaTEScore per report (the `ratescore` package's definition), mean over reports; higher is better."""

    name = "ratescore"
    version = "1"
    requires = "medspacy, and RaTE-NER-Deberta + BioLORD-2023-C weights available locally"
    description = "RaTEScore (entity-aware, ratescore 0.6.0's definition), mean; ReXrank's RaTEScore"

    class Options(MetricOptions):
        ner_model: str = NER_MODEL
        embedding_model: str = EMBEDDING_MODEL
        affinity_matrix: Literal["long", "short"] = "long"
        device: str | None = setting()
        batch_size: int = setting(16)

    def _dirs(self) -> tuple[Path | None, Path | None]:
        return model_dir(self.typed_options.ner_model), model_dir(self.typed_options.embedding_model)

    def available(self) -> str | None:
        if importlib.util.find_spec("medspacy") is None:
            return (
                "medspacy is not installed (RaTEScore splits sentences with it): pip install medspacy (kept out of "
                "evalkit[clinical]: medspacy 1.3 pulls spacy 3.7, which downgrades numpy to 1.26)"
            )
        missing = [
            name for name, folder in zip(("ner_model", "embedding_model"), self._dirs(), strict=True) if not folder
        ]
        if missing:
            names = [getattr(self.typed_options, m) for m in missing]
            return "; ".join(
                f"model '{n}' not found locally: huggingface-cli download {n}, or put it in "
                f"$EVALKIT_METRIC_WEIGHTS/{n.split('/')[-1]}/, or pass {m}=PATH"
                for n, m in zip(names, missing, strict=True)
            )
        return None

    def fingerprint(self) -> str:
        ner, embedding = self._dirs()
        if ner is None or embedding is None:
            raise FileNotFoundError(self.available())
        return f"{weights_fingerprint(ner)}:{weights_fingerprint(embedding)}"

    def models(self) -> RaTEModels:
        ner, embedding = self._dirs()
        if ner is None or embedding is None:
            raise FileNotFoundError(self.available())
        key = (str(ner.resolve()), str(embedding.resolve()), str(self.typed_options.device))
        with _lock:
            if key not in _loaded:
                _loaded[key] = RaTEModels(ner, embedding, self.typed_options.device, self.typed_options.batch_size)
            return _loaded[key]

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = split_sentences([s.reference_text or "" for s in samples])
        preds = split_sentences([p.answer or "" for p in predictions])
        values = ratescores(self.models(), refs, preds, self.typed_options.affinity_matrix)
        return [SampleScore(float(v)) for v in values]
