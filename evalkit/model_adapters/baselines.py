"""Weight-free baselines the literature reports, fitted on the task's train split.

- `normal-template`: the most common train report; for grounding, the mean of all train boxes (one constant box).
- `nn-retrieval`: the nearest train image by a downsampled-pixel embedding (cosine); copies its report, or for
  grounding its boxes for the same prompt (label, region or phrase).
- `prior-box`: the mean train box for the prompt's label/region/phrase (grounding only).
- `whole-image`: the box [0, 0, 1, 1] (grounding only).
- `radiologist`: not a model but a reference row: on `vindr-reader-agreement` it answers with the boxes reader r
  drew (`meta["reader_boxes"]`, file order), so the metrics measure inter-reader agreement
  (evalkit/data/vindr_readers.py gives the protocol). Needs no image.
Answers are written in the card's box format, so they go through the same parser as any model's.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from evalkit.answers import format_boxes
from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash
from evalkit.sample import Box, Sample

BASELINES = ("normal-template", "nn-retrieval", "prior-box", "whole-image", "radiologist")
_GROUNDING_ONLY = ("prior-box", "whole-image")
READER_LOADERS = ("vindr_readers",)  # loaders whose samples carry a reader's own boxes for `radiologist`
READER_DIGITS = 3  # decimals of the radiologist's unit01 answers: the fused references' rounding
EMBED_SIZE = 16


def embed_image(image: Image.Image) -> np.ndarray:
    """Grey 16x16 thumbnail, centred and L2-normalised: cheap and enough to find similar phantoms."""
    thumb = np.asarray(image.convert("L").resize((EMBED_SIZE, EMBED_SIZE), Image.BILINEAR), dtype=np.float32)
    vec = thumb.ravel() - thumb.mean()
    return vec / (np.linalg.norm(vec) + 1e-8)


def prompt_key(sample: Sample) -> str:
    """What the model is asked to find (label/region/phrase); never the reference itself."""
    return "|".join(f"{k}={sample.prompt_vars[k]}" for k in sorted(sample.prompt_vars))


def mean_box(boxes: Sequence[Box]) -> Box:
    return [round(float(v), 4) for v in np.mean(np.asarray(boxes, dtype=float), axis=0)]


class BaselineAdapter:
    """Adapter protocol over the four baselines; `card.checkpoint` names which one."""

    def __init__(self, card: ModelCard) -> None:
        if card.checkpoint not in BASELINES:
            raise EvalkitError(f"card '{card.name}': unknown baseline '{card.checkpoint}'; known: {BASELINES}")
        self.card = card
        self.baseline = card.checkpoint
        self.needs_images = self.baseline != "radiologist"  # the runner then neither reads nor hashes images
        # Only the nearest-neighbour baseline looks at pixels; the others answer from priors (the runner then
        # reads image headers only).
        self.reads_pixels = self.baseline == "nn-retrieval"
        self.kind: str | None = None
        self._fit_id = ""
        self._report: str = ""
        self._global_box: Box = [0.0, 0.0, 1.0, 1.0]
        self._prior: dict[str, Box] = {}
        self._train: list[Sample] = []
        self._train_vectors: np.ndarray | None = np.zeros((0, EMBED_SIZE * EMBED_SIZE))

    def supports(self, task: TaskSpec) -> bool:
        if self.baseline == "radiologist":
            return task.dataset.loader in READER_LOADERS
        return task.kind == "grounding" or self.baseline not in _GROUNDING_ONLY

    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        if not self.supports(task):
            if self.baseline == "radiologist":
                raise EvalkitError(
                    f"'radiologist' answers with a reader's own boxes, which only reader-agreement tasks "
                    f"(loaders {', '.join(READER_LOADERS)}) carry; '{task.name}' is not one: try vindr-reader-agreement"
                )
            raise EvalkitError(f"baseline '{self.baseline}' answers grounding tasks only, not '{task.name}'")
        self.kind = task.kind
        if self.baseline in ("whole-image", "radiologist"):
            self._fit_id = "none"
            return
        train = train_samples()
        if not train:
            raise EvalkitError(f"baseline '{self.baseline}' needs the train split of '{task.name}', which is empty")
        self._fit_id = stable_hash(task.name, task.version, sorted(s.sample_id for s in train))
        if task.kind == "report_generation":
            self._report = Counter(s.reference_text or "" for s in train).most_common(1)[0][0]
        else:
            boxes = [b for s in train for b in s.reference_boxes]
            self._global_box = mean_box(boxes) if boxes else [0.0, 0.0, 1.0, 1.0]
            by_key: dict[str, list[Box]] = defaultdict(list)
            for s in train:
                by_key[prompt_key(s)].extend(s.reference_boxes)
            self._prior = {k: mean_box(v) for k, v in by_key.items() if v}
        if self.baseline == "nn-retrieval":
            self._train = train
            self._train_vectors = None  # embedded by `load`, which the runner calls only when it generates

    def load(self) -> None:
        """Embed the train images for nn-retrieval (a rerun that generates nothing never decodes them)."""
        if self.baseline == "nn-retrieval" and self._train_vectors is None:
            self._train_vectors = np.stack([embed_image(_open(s.image_paths[0])) for s in self._train])

    def fingerprint(self) -> str:
        return card_fingerprint(self.card, extra={"baseline": self.baseline, "fit": self._fit_id})

    def _answer(self, request: GenerationRequest) -> str:
        sample = request.sample
        if self.kind == "report_generation":
            if self.baseline == "normal-template":
                return self._report
            return self._train[self._nearest(request.images[0])].reference_text or ""
        if self.baseline == "radiologist":
            if "reader_boxes" not in sample.meta:
                raise EvalkitError(
                    f"sample '{sample.sample_id}' has no meta.reader_boxes: not a reader-agreement sample"
                )
            return format_boxes(sample.meta["reader_boxes"], "unit01", digits=READER_DIGITS)
        box = self._box_for(sample, request.images[0] if request.images else None)
        return format_boxes([box], self.card.box_format, sample.image_size)

    def _box_for(self, sample: Sample, image: Image.Image | None) -> Box:
        if self.baseline == "whole-image":
            return [0.0, 0.0, 1.0, 1.0]
        if self.baseline == "normal-template":
            return self._global_box
        key = prompt_key(sample)
        if self.baseline == "prior-box":
            return self._prior.get(key, self._global_box)
        candidates = [i for i, s in enumerate(self._train) if prompt_key(s) == key and s.reference_boxes]
        if not candidates:
            return self._prior.get(key, self._global_box)
        if image is None:
            raise RuntimeError("nn-retrieval needs the decoded image")
        best = candidates[int(np.argmax(self._vectors()[candidates] @ embed_image(image)))]
        return mean_box(self._train[best].reference_boxes)

    def _nearest(self, image: Image.Image) -> int:
        return int(np.argmax(self._vectors() @ embed_image(image)))

    def _vectors(self) -> np.ndarray:
        self.load()  # callers that drive `generate` themselves
        return self._train_vectors  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.kind is None:
            raise RuntimeError("prepare() must be called before generate()")
        results = []
        for request in requests:
            start = time.perf_counter()
            try:
                text = self._answer(request)
                results.append(GenerationResult(text=text, tokens=None, latency_s=time.perf_counter() - start))
            except Exception as exc:
                results.append(GenerationResult(text="", error=f"{type(exc).__name__}: {exc}"))
        return results


def _open(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("L")
    except (OSError, ValueError) as exc:
        raise EvalkitError(f"{path}: cannot read train image: {exc}") from exc
