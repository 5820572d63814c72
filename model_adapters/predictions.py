"""An adapter over predictions made elsewhere (`evalkit score --predictions FILE.jsonl`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.jsonl import read_records
from evalkit.sample import Sample
from model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash


def read_predictions(path: Path) -> dict[str, str]:
    """`{"sample_id": ..., "prediction": ...}` per line; errors name the file and line."""
    predictions: dict[str, str] = {}
    for number, record in read_records(path, ("sample_id", "prediction"), "predictions"):
        sample_id = str(record["sample_id"])
        if sample_id in predictions:
            raise EvalkitError(f"{path}:{number}: sample_id '{sample_id}' appears twice")
        prediction = record["prediction"]
        if prediction is None:
            # Not the text "null": a missing answer must be said, and an empty one written as "".
            raise EvalkitError(
                f"{path}:{number}: 'prediction' is null for sample_id '{sample_id}'; write \"\" for an empty answer "
                "or leave the sample out"
            )
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
