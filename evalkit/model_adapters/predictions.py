"""An adapter over predictions made elsewhere (`evalkit score --predictions FILE.jsonl`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from evalkit.config import ModelCard, TaskSpec
from evalkit.model_adapters.base import GenerationRequest, GenerationResult, card_fingerprint, stable_hash
from evalkit.sample import Sample


def read_predictions(path: Path) -> dict[str, str]:
    """`{"sample_id": ..., "prediction": ...}` per line; errors name the file and line (evalkit.readers)."""
    from evalkit.readers import read_predictions_file

    return read_predictions_file(path)


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
