"""Runs and cards several test modules make."""

from __future__ import annotations

from pathlib import Path

from evalkit.config import ModelCard


# --- on a stored database --------------------------------------------------------------------------------------
def _run(db, data_root, model: str, task: str, limit: int | None = None):
    from evalkit import evaluate

    return evaluate(model, task, db=db, data_root=data_root, limit=limit)[0]


def _card(checkpoint: Path | str, **changes: object) -> ModelCard:
    data: dict[str, object] = {
        "name": "tiny-qwen3vl",
        "adapter": "transformers",
        "checkpoint": str(checkpoint),
        "family": "qwen3-vl",
        "box_format": "qwen1000",
        "decoding": {"temperature": 0, "max_new_tokens": 12},
    }
    data.update(changes)
    return ModelCard.model_validate(data)
