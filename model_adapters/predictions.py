"""An adapter over predictions made elsewhere (`evalkit score --predictions FILE.jsonl`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.sample import Sample
from model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash


def read_predictions(path: Path) -> dict[str, str]:
    """`{"sample_id": ..., "prediction": ...}` per line; errors name the file and line."""
    predictions: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read predictions: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalkitError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(record, dict) or "sample_id" not in record or "prediction" not in record:
            raise EvalkitError(f"{path}:{number}: each line needs the fields 'sample_id' and 'prediction'")
        sample_id = str(record["sample_id"])
        if sample_id in predictions:
            raise EvalkitError(f"{path}:{number}: sample_id '{sample_id}' appears twice")
        prediction = record["prediction"]
        predictions[sample_id] = prediction if isinstance(prediction, str) else json.dumps(prediction)
    return predictions


class PredictionsAdapter:
    """Answers each sample with its stored prediction; needs no image."""

    needs_images = False

    def __init__(self, card: ModelCard, predictions: dict[str, str]) -> None:
        self.card = card
        self.predictions = predictions
        self._hash = stable_hash(sorted(predictions.items()))

    def prepare(self, task: TaskSpec, train_samples: Callable[[], list[Sample]]) -> None:
        return None

    def fingerprint(self) -> str:
        return card_fingerprint(self.card, extra={"predictions": self._hash})

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return [GenerationResult(text=self.predictions[r.sample.sample_id]) for r in requests]
