"""RadGraph F1 (simple / partial / complete reward levels), as the radgraph package 0.1.18 computes it.

The annotator is our own port of the inference path of radgraph's DyGIE++ model (allennlp code vendored in
that package): we do not import radgraph, whose tokenizer path calls `encode_plus` (gone in transformers 5) and
which pins allennlp-era internals. The port loads the original model folder (`config.json`, `vocabulary/`,
`weights.th` from StanfordAIMI/RRG_scorers `<model_type>.tar.gz`) and reproduces, step by step:

1. Preprocessing: radgraph-xl (and every other type, through a precedence slip in radgraph's `utils.py`):
   escaped `\\n`/`\\f`/`\\u2122`/`\\"` replacements, whitespace collapse, nltk's `wordpunct_tokenize`
   (`\\w+|[^\\w\\s]+`) and five punctuation fix-ups; the original "radgraph" model: its own regex. The whole
   report is one "sentence"; the dataset reader maps the words "/." and "/?" to "." and "?".
2. Word pieces per word (allennlp's mismatched indexer; a word with no piece gets a zero vector), long inputs
   folded into segments of `max_length` with [CLS]/[SEP] per segment and unfolded again, each word = the mean
   of its pieces' last-layer states.
3. Every span of up to `max_span_width` words: [first word; last word; width embedding].
4. NER: feed-forward scorer, a fixed 0 score for the null label, argmax. Relations: mention pruner keeps the
   top ceil(0.5 * words) spans (in document order), pairs [a; b; a*b] -> feed-forward + both mention scores,
   null label fixed at 0, argmax.
5. radgraph's `get_entity` post-processing into {"entities": {"1": {tokens, label, start_ix, end_ix,
   relations: [[label, target]]}}} and its `compute_reward` for the three levels.

Scores follow `F1RadGraph`: an empty reference or prediction scores 0 without annotation, a pair where either
side has no entity scores 0, and the corpus value is the mean over samples. Coreference propagation and event
extraction are not ported: the released RadGraph models do not use them (loss weight 0, coref_prop 0), and
the loader refuses a config that does. Parity with the package is tested on tiny random models of this
architecture (tests/metrics/test_metrics_radgraph.py).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from evalkit.metrics import register_metric
from evalkit.metrics._annotations import annotate_texts, weights_fingerprint
from evalkit.metrics._weights import (
    RRG_SCORERS,
    extract_archive,
    hf_cached_file,
    model_dir,
    user_cache_dir,
    weights_root,
)
from evalkit.metrics.base import MetricOptions, ModelBackedMetric, SampleScore, setting
from evalkit.sample import Parsed, Sample

CODE_VERSION = "1"
MODEL_TYPES = ("radgraph", "radgraph-xl", "echograph", "modern-radgraph-xl")
DEFAULT_MODEL = "radgraph-xl"
TRANSFORMER_PREFIX = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
_WORDPUNCT = re.compile(r"\w+|[^\w\s]+")
PAIRS_PER_BLOCK = 16_384
DEFAULT_MAX_WORDS = 1_000  # a report has a few hundred words; relation scoring is quadratic in words
_RADGRAPH_V1 = re.compile("(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )")


# --- 1. preprocessing -------------------------------------------------------------------------------------------
def _xl_preprocess(text: str) -> str:
    text = text.replace("\\n", "  ").replace("\\f", "  ").replace("\\u2122", "      ")
    text = text.replace("\n", " ").replace('\\"', "``")
    tokenized = " ".join(_WORDPUNCT.findall(re.sub(r"\s+", " ", text)))
    for old, new in ((").", ") ."), ("%.", "% ."), (".'", ". '"), ("%,", "% ,"), ("%)", "% )")):
        tokenized = tokenized.replace(old, new)
    return tokenized


def preprocess(text: str, model_type: str) -> list[str]:
    """The words radgraph feeds its model for one report (radgraph `utils.preprocess_reports`)."""
    if model_type == "radgraph":
        return _RADGRAPH_V1.sub(" ", text).split()
    # radgraph tests `model_type == "radgraph-xl" or "modern-radgraph-xl"`, which is always true: every other
    # model type, echograph included, gets the radgraph-xl preprocessing.
    return _xl_preprocess(text).split()


def _normalize_word(word: str) -> str:
    return word[1:] if word in ("/.", "/?") else word


# --- 5. post-processing and rewards ----------------------------------------------------------------------------
def get_entities(ner: list[list[Any]], relations: list[list[Any]], words: list[str]) -> dict[str, Any]:
    """radgraph's `get_entity`: entities numbered from 1 in prediction order, each with its relations (in
    prediction order) to targets that are entities, by target number; relations to non-entities are dropped."""
    number: dict[tuple[int, int], str] = {}
    for idx, (start, end, _) in enumerate(ner):
        number.setdefault((start, end), str(idx + 1))  # list.index semantics: the first entity with that span
    outgoing: dict[tuple[int, int], list[list[str]]] = {}
    for rel in relations:
        target = number.get((rel[2], rel[3]))
        if target is not None:
            outgoing.setdefault((rel[0], rel[1]), []).append([rel[4], target])
    entities: dict[str, Any] = {}
    for idx, (start, end, label) in enumerate(ner):
        entities[str(idx + 1)] = {
            "tokens": " ".join(words[start : end + 1]),
            "label": label,
            "start_ix": start,
            "end_ix": end,
            "relations": list(outgoing.get((start, end), [])),
        }
    return entities


def _f1(hyp: set, ref: set) -> float:
    precision = sum(1 for x in hyp if x in ref) / len(hyp) if hyp else 0.0
    recall = sum(1 for x in ref if x in hyp) / len(ref) if ref else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _candidates(annotation: dict[str, Any], level: str) -> set:
    entities = annotation["entities"]
    out: set = set()
    for entity in entities.values():
        if level == "simple":
            out.add((entity["tokens"], entity["label"]))
        elif not entity["relations"]:
            out.add((entity["tokens"], entity["label"]))
        elif level == "partial":
            out.add((entity["tokens"], entity["label"], True))
        else:  # complete: relations compare lower-cased tokens (entities without relations do not)
            out.update(
                (entity["tokens"].lower(), entity["label"], r[0], entities[r[1]]["tokens"].lower())
                for r in entity["relations"]
            )
    return out


def rewards(hypothesis: dict[str, Any], reference: dict[str, Any]) -> tuple[float, float, float]:
    """radgraph's `compute_reward(..., "all")`: (simple, partial, complete); 0 when either has no entity."""
    if not hypothesis["entities"] or not reference["entities"]:
        return 0.0, 0.0, 0.0
    return tuple(
        _f1(_candidates(hypothesis, lv), _candidates(reference, lv)) for lv in ("simple", "partial", "complete")
    )


# --- 2-4. the model ---------------------------------------------------------------------------------------------
class RadGraphAnnotator:
    """DyGIE++ inference for radgraph's released models (NER + relations), batched over documents."""

    def __init__(
        self,
        folder: Path,
        model_type: str,
        transformer: str | None = None,
        device: str | None = None,
        batch_size: int = 16,
        max_words: int = DEFAULT_MAX_WORDS,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.torch = torch
        self.model_type = model_type
        self.batch_size = batch_size
        self.max_words = max_words
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        model = config["model"]
        weights = model.get("loss_weights", {})
        if model.get("modules", {}).get("coref", {}).get("coref_prop", 0) or weights.get("coref", 0):
            raise ValueError(f"{folder}/config.json uses coreference; only NER + relation models are supported")
        if not (weights.get("ner", 0) > 0 and weights.get("relation", 0) > 0):
            raise ValueError(f"{folder}/config.json: NER and relation loss weights must both be positive")
        bert = config["dataset_reader"]["token_indexers"]["bert"]
        self.max_length = bert.get("max_length")
        self.max_span_width = int(config["dataset_reader"]["max_span_width"])
        self.spans_per_word = float(model["modules"]["relation"]["spans_per_word"])
        transformer_dir = model_dir(transformer or bert["model_name"])
        if transformer_dir is None:
            raise FileNotFoundError(f"transformer '{transformer or bert['model_name']}' not found locally")
        self.tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir))
        self.transformer = AutoModel.from_config(AutoConfig.from_pretrained(str(transformer_dir)))
        self.ner_labels = _read_labels(folder / "vocabulary" / f"{model_type}__ner_labels.txt")
        self.relation_labels = _read_labels(folder / "vocabulary" / f"{model_type}__relation_labels.txt")
        if self.ner_labels[0] != "":
            raise ValueError(f"{folder}: the null NER label must come first in the vocabulary")
        state = torch.load(folder / "weights.th", map_location="cpu", weights_only=True)
        self._load(state, model)

    def _load(self, state: dict[str, Any], model: dict[str, Any]) -> None:
        torch = self.torch
        ns_ner = f"{self.model_type}__ner_labels"
        ns_rel = f"{self.model_type}__relation_labels"
        ff = model["feedforward_params"]
        layers = int(ff["num_layers"])
        hidden = ff["hidden_dims"] if isinstance(ff["hidden_dims"], list) else [ff["hidden_dims"]] * layers

        def feedforward(prefix: str) -> torch.nn.Sequential:
            modules: list[torch.nn.Module] = []
            for i in range(layers):
                weight = state[f"{prefix}._linear_layers.{i}.weight"]
                linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
                linear.weight.data.copy_(weight)
                linear.bias.data.copy_(state[f"{prefix}._linear_layers.{i}.bias"])
                modules += [linear, torch.nn.ReLU()]
            if [m.out_features for m in modules[::2]] != list(hidden):
                raise ValueError(f"weights.th: {prefix} does not match feedforward_params in config.json")
            return torch.nn.Sequential(*modules)

        def linear(prefix: str) -> torch.nn.Linear:
            weight = state[f"{prefix}.weight"]
            layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
            layer.weight.data.copy_(weight)
            layer.bias.data.copy_(state[f"{prefix}.bias"])
            return layer

        try:
            transformer_state = {
                k.removeprefix(TRANSFORMER_PREFIX): v for k, v in state.items() if k.startswith(TRANSFORMER_PREFIX)
            }
            missing, _ = self.transformer.load_state_dict(transformer_state, strict=False)
            missing = [k for k in missing if not k.endswith("position_ids")]
            if missing:
                raise ValueError(f"weights.th lacks transformer weights {missing[:3]}")
            self.width_embedding = state["_endpoint_span_extractor._span_width_embedding.weight"].clone()
            ner = f"_ner._ner_scorers.{ns_ner}"
            self.ner_ff, self.ner_out = feedforward(f"{ner}.0._module"), linear(f"{ner}.1._module")
            pruner = f"_relation._mention_pruners.{ns_rel}._scorer"
            self.mention_ff, self.mention_out = feedforward(f"{pruner}.0._module"), linear(f"{pruner}.1._module")
            self.relation_ff = feedforward(f"_relation._relation_feedforwards.{ns_rel}")
            self.relation_out = linear(f"_relation._relation_scorers.{ns_rel}")
        except KeyError as exc:
            raise ValueError(f"weights.th has no parameter {exc} (model type '{self.model_type}'?)") from None
        if self.ner_out.out_features != len(self.ner_labels) - 1:
            raise ValueError("weights.th: NER output size does not match the vocabulary")
        if self.relation_out.out_features != len(self.relation_labels):
            raise ValueError("weights.th: relation output size does not match the vocabulary")
        self.width_embedding = self.width_embedding.to(self.device)
        for module in (
            self.transformer,
            self.ner_ff,
            self.ner_out,
            self.mention_ff,
            self.mention_out,
            self.relation_ff,
            self.relation_out,
        ):
            module.to(self.device).eval()

    # --- word pieces and the transformer ---
    def _pieces(self, words: list[str]) -> tuple[list[int], list[tuple[int, int] | None]]:
        pieces: list[int] = []
        offsets: list[tuple[int, int] | None] = []
        for word in words:
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if ids:
                offsets.append((len(pieces) + 1, len(pieces) + len(ids)))  # +1: [CLS] comes first
                pieces.extend(ids)
            else:
                offsets.append(None)
        return pieces, offsets

    def _segments(self, pieces: list[int]) -> list[list[int]]:
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        if self.max_length is None or len(pieces) + 2 <= self.max_length:
            return [[cls, *pieces, sep]]
        step = self.max_length - 2
        return [[cls, *pieces[i : i + step], sep] for i in range(0, len(pieces), step)]

    def _piece_states(self, docs: list[list[int]]) -> list[Any]:
        """Last-layer states of [CLS] + pieces + [SEP] per document, long documents folded and unfolded."""
        torch = self.torch
        rows, owners = [], []
        for d, pieces in enumerate(docs):
            for segment in self._segments(pieces):
                rows.append(segment)
                owners.append(d)
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.float)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        states = self.transformer(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))[0]
        out: list[list[Any]] = [[] for _ in docs]
        for i, d in enumerate(owners):
            out[d].append(states[i, : len(rows[i])])
        merged = []
        for segments in out:
            if len(segments) == 1:
                merged.append(segments[0])
            else:  # allennlp's unfold: one [CLS] (first segment), inner pieces, one [SEP] (last segment)
                inner = [s[1:-1] for s in segments]
                merged.append(torch.cat([segments[0][:1], *inner, segments[-1][-1:]], dim=0))
        return merged

    # --- the whole document ---
    def _document(self, words: list[str], states: Any, offsets: list[tuple[int, int] | None]) -> dict[str, Any]:
        torch = self.torch
        n = len(words)
        dim = states.shape[-1]
        word_states = torch.zeros((n, dim), device=states.device, dtype=states.dtype)
        for i, offset in enumerate(offsets):
            if offset is not None:
                word_states[i] = states[offset[0] : offset[1] + 1].mean(dim=0)
        spans = [(s, e) for s in range(n) for e in range(s, min(s + self.max_span_width, n))]
        starts = torch.tensor([s for s, _ in spans], device=states.device)
        ends = torch.tensor([e for _, e in spans], device=states.device)
        span_emb = torch.cat([word_states[starts], word_states[ends], self.width_embedding[ends - starts]], dim=-1)

        ner_scores = self.ner_out(self.ner_ff(span_emb))
        ner_scores = torch.cat([ner_scores.new_zeros((len(spans), 1)), ner_scores], dim=-1)
        ner_labels = ner_scores.argmax(dim=-1).tolist()
        ner = [[s, e, self.ner_labels[lab]] for (s, e), lab in zip(spans, ner_labels, strict=True) if lab != 0]

        mention = self.mention_out(self.mention_ff(span_emb)).squeeze(-1)
        keep = max(math.ceil(n * self.spans_per_word), 1)
        top = torch.sort(torch.topk(mention, min(keep, len(spans))).indices).values
        top_emb, top_scores = span_emb[top], mention[top]
        k = top.shape[0]
        blocks = []
        rows = max(1, PAIRS_PER_BLOCK // k)  # the k x k pair tensor is built in row blocks to bound memory
        for i in range(0, k, rows):
            a = top_emb[i : i + rows].unsqueeze(1).expand(-1, k, -1)
            b = top_emb.unsqueeze(0).expand(a.shape[0], k, -1)
            pair = torch.cat([a, b, a * b], dim=-1)
            blocks.append(
                self.relation_out(self.relation_ff(pair.reshape(a.shape[0] * k, -1))).reshape(a.shape[0], k, -1)
            )
        scores = torch.cat(blocks, dim=0)
        scores = scores + (top_scores.view(k, 1, 1) + top_scores.view(1, k, 1))
        scores = torch.cat([scores.new_zeros((k, k, 1)), scores], dim=-1)
        labels = scores.argmax(dim=-1) - 1
        top_spans = [spans[i] for i in top.tolist()]
        relations = [
            [*top_spans[i], *top_spans[j], self.relation_labels[labels[i, j].item()]]
            for i, j in (labels >= 0).nonzero().tolist()
        ]
        return {
            "text": " ".join(words),
            "entities": get_entities([list(x) for x in ner], [[*r[:4], r[4]] for r in relations], words),
        }

    def __call__(self, texts: list[str]) -> list[dict[str, Any]]:
        """One radgraph annotation per text ({"text", "entities"}); a text with no words has no entities, one
        longer than `max_words` gets {"error": ...} instead (the reference would run out of memory on it);
        `max_words` 0 scores every text, as RadVLM-GRPO's `calcF1RadGraph` does (profile radvlm-grpo)."""
        torch = self.torch
        # radgraph's RadGraph.forward annotates an empty string as the word "None" (F1RadGraph never sends one).
        words = [preprocess(t or "None", self.model_type) for t in texts]
        out: list[dict[str, Any]] = [{"text": " ".join(ws), "entities": {}} for ws in words]
        for i, ws in enumerate(words):
            if self.max_words and len(ws) > self.max_words:
                out[i] = {"error": f"{len(ws)} words, above RadGraph's max_words={self.max_words}"}
        todo = [i for i, ws in enumerate(words) if ws and not (self.max_words and len(ws) > self.max_words)]
        prepared = {i: self._pieces([_normalize_word(w) for w in words[i]]) for i in todo}
        order = sorted(todo, key=lambda i: len(prepared[i][0]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                states = self._piece_states([prepared[i][0] for i in index])
                for i, doc_states in zip(index, states, strict=True):
                    out[i] = self._document(words[i], doc_states, prepared[i][1])
        return out


def _read_labels(path: Path) -> list[str]:
    """allennlp's `Vocabulary.set_from_file` for a non-padded namespace: line i is label i."""
    lines = re.split(r"\n|\r\n", path.read_text(encoding="utf-8"))
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return [line.replace("@@NEWLINE@@", "\n") for line in lines]


def _tokenizer_files(folder: Path) -> list[Path]:
    names = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
    return [folder / n for n in names if (folder / n).is_file()]


# --- weights ----------------------------------------------------------------------------------------------------
def _complete(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "weights.th").is_file() and (folder / "vocabulary").is_dir()


def find_model(model_type: str, option: str | None = None) -> Path | None:
    """The model folder: option, $EVALKIT_METRIC_WEIGHTS/radgraph/<type>, radgraph's cache, or the HF cache."""
    if option:
        path = Path(option).expanduser()
        for candidate in (path, path / model_type):
            if _complete(candidate):
                return candidate
        return None
    root = weights_root()
    candidates = [root / "radgraph" / model_type, root / model_type] if root else []
    cache = user_cache_dir("radgraph")
    if cache.is_dir():
        candidates += [*sorted(cache.glob(f"*/{model_type}"), reverse=True), cache / model_type]
    for candidate in candidates:
        if _complete(candidate):
            return candidate
    archive = hf_cached_file(RRG_SCORERS, f"{model_type}.tar.gz")
    if archive is not None:
        target = user_cache_dir("evalkit") / "radgraph" / model_type
        extract_archive(archive, target)
        if _complete(target):
            return target
    return None


_annotators: dict[tuple[str, ...], RadGraphAnnotator] = {}
_lock = threading.Lock()


class RadGraphClient:
    """Options, availability and cached annotation shared by the RadGraph metrics and RadCliQ."""

    def __init__(self, options: dict[str, Any], default_model: str = DEFAULT_MODEL) -> None:
        self.model_type = options.get("model_type", default_model)
        self.model_option = options.get("model_dir")
        self.transformer = options.get("transformer")
        self.device = options.get("device")
        self.batch_size = int(options.get("batch_size", 16))
        self.max_words = int(options.get("max_words", DEFAULT_MAX_WORDS))

    def unavailable(self) -> str | None:
        if self.model_type not in MODEL_TYPES:
            return f"unknown RadGraph model_type '{self.model_type}'; use one of {', '.join(MODEL_TYPES)}"
        folder = find_model(self.model_type, self.model_option)
        if folder is None:
            where = f"{self.model_option} is not a RadGraph model folder" if self.model_option else "not found"
            return (
                f"RadGraph {self.model_type} weights {where}; extract {self.model_type}.tar.gz from the Hugging Face "
                f"repository StanfordAIMI/RRG_scorers into $EVALKIT_METRIC_WEIGHTS/radgraph/{self.model_type}/ "
                "(config.json, vocabulary/, weights.th), or pass the metric option model_dir=PATH"
            )
        try:
            name = (
                self.transformer
                or json.loads((folder / "config.json").read_text(encoding="utf-8"))["dataset_reader"]["token_indexers"][
                    "bert"
                ]["model_name"]
            )
        except (OSError, ValueError, KeyError) as exc:
            return f"{folder}/config.json is not a RadGraph config: {exc}"
        if model_dir(name) is None:
            return (
                f"RadGraph needs the tokenizer and config of '{name}' locally: put them in "
                f"$EVALKIT_METRIC_WEIGHTS/{name.split('/')[-1]}/ or the Hugging Face cache "
                f"(huggingface-cli download {name} --exclude '*.bin' '*.safetensors'), or pass transformer=PATH"
            )
        return None

    def _transformer_name(self, folder: Path) -> str:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return self.transformer or config["dataset_reader"]["token_indexers"]["bert"]["model_name"]

    def version(self) -> str:
        """Annotator version from the files alone (no model load)."""
        folder = find_model(self.model_type, self.model_option)
        transformer = model_dir(self._transformer_name(folder)) if folder is not None else None
        if folder is None or transformer is None:
            raise FileNotFoundError(self.unavailable())
        return (
            f"{CODE_VERSION}:{self.model_type}:{self.max_words}:{weights_fingerprint(folder)}:"
            f"{weights_fingerprint(*_tokenizer_files(transformer))}"
        )

    def annotator(self) -> RadGraphAnnotator:
        folder = find_model(self.model_type, self.model_option)
        if folder is None:
            raise FileNotFoundError(self.unavailable())
        key = (
            str(folder.resolve()),
            self.model_type,
            str(self.transformer),
            str(self.device),
            str(self.batch_size),
            str(self.max_words),
        )
        with _lock:
            if key not in _annotators:
                _annotators[key] = RadGraphAnnotator(
                    folder, self.model_type, self.transformer, self.device, self.batch_size, self.max_words
                )
            return _annotators[key]

    def annotate(self, texts: Sequence[str], store: Any) -> list[dict[str, Any]]:
        """Annotation per text; the model is loaded only if some text is in no cache."""
        return annotate_texts(
            texts,
            lambda batch: self.annotator()(batch),
            annotator=f"radgraph:{self.model_type}",
            version=self.version(),
            store=store,
            batch_size=128,
        )

    def pair_rewards(self, references: Sequence[str], predictions: Sequence[str], store: Any):
        """(simple, partial, complete) per pair, with F1RadGraph's rule for empty texts (0, not annotated)."""
        keep = [i for i, (r, p) in enumerate(zip(references, predictions, strict=True)) if r and p]
        texts = [references[i] for i in keep] + [predictions[i] for i in keep]
        annotations = self.annotate(texts, store) if texts else []
        out: list[tuple[float, float, float] | str] = [(0.0, 0.0, 0.0)] * len(references)
        for k, i in enumerate(keep):
            reference, prediction = annotations[k], annotations[len(keep) + k]
            errors = [a["error"] for a in (reference, prediction) if "error" in a]
            out[i] = f"RadGraph: {'; '.join(errors)}" if errors else rewards(prediction, reference)
        return out


class _RadGraphF1(ModelBackedMetric):
    version = "1"
    requires = "RadGraph weights (radgraph-xl.tar.gz, extracted) and its BERT tokenizer/config, available locally"
    level_index: ClassVar[int] = 0

    class Options(MetricOptions):
        model_type: str = DEFAULT_MODEL
        model_dir: str | None = None
        transformer: str | None = None
        max_words: int = DEFAULT_MAX_WORDS
        device: str | None = setting()
        batch_size: int = setting(16)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.client = RadGraphClient(options)

    def score(self, predictions: Sequence[Parsed], samples: Sequence[Sample]) -> list[SampleScore]:
        refs = [s.reference_text or "" for s in samples]
        preds = [p.answer or "" for p in predictions]
        return [
            SampleScore(None, {"error": r})
            if isinstance(r, str)
            else SampleScore(r[self.level_index], self._no_words(ref, pred))
            for ref, pred, r in zip(refs, preds, self.client.pair_rewards(refs, preds, self.cache), strict=True)
        ]

    def _no_words(self, reference: str, prediction: str) -> dict[str, Any]:
        """Counted where radgraph's preprocessing empties a non-empty text: radgraph 0.1.18 raises there, which
        stops RadVLM-GRPO's `calcF1RadGraph` for the whole corpus; evalkit's F1 is 0 (no entity found)."""
        sides = [
            side
            for side, text in (("reference", reference), ("prediction", prediction))
            if text and not preprocess(text, self.client.model_type)
        ]
        return {"no_words": sides} if sides else {}


@register_metric
class RadGraphF1Simple(_RadGraphF1):
    name = "radgraph_f1_simple"
    description = "RadGraph F1, simple reward (entities), radgraph-xl, mean over samples"


@register_metric
class RadGraphF1Partial(_RadGraphF1):
    name = "radgraph_f1_partial"
    level_index = 1
    description = "RadGraph F1, partial reward (entities + has-relation), radgraph-xl, mean over samples"


@register_metric
class RadGraphF1Complete(_RadGraphF1):
    name = "radgraph_f1_complete"
    level_index = 2
    description = "RadGraph F1, complete reward (entities + relations), radgraph-xl, mean over samples"
