"""Adapter registry: a card's `adapter` name -> the class that runs it, imported only when used.

Each entry declares the constructor options it takes from the command line and the batch size it runs at by
default, so `evalkit.evaluate` builds any back end the same way and no caller switches on `card.adapter`.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evalkit.config import ModelCard
from evalkit.errors import EvalkitError

if TYPE_CHECKING:  # base imports this module (card_with_overrides); an annotation must not close the circle
    from evalkit.model_adapters.base import Adapter


@dataclass(frozen=True)
class AdapterEntry:
    """How to build one kind of back end.

    Args:
        target: `module:Class`, imported on first use (vLLM and torch are heavy; baselines need neither).
        batch_size: Samples per `generate` call and per commit when the user gives none. vLLM schedules a whole
            batch at once, so it gets many; a server is limited by its concurrency anyway.
        options: Settings the class accepts as keyword arguments (others are dropped, not errors, so one
            command line serves every back end).
        generates: Whether it runs a checkpoint (`--adapter` may switch between these).
        local: Whether it runs here without a GPU or a server (what the CPU demo can use).
    """

    target: str | None
    batch_size: int
    options: tuple[str, ...] = ()
    generates: bool = True
    local: bool = False

    def load(self) -> type:
        assert self.target is not None
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)


ADAPTERS: dict[str, AdapterEntry] = {
    "baseline": AdapterEntry("evalkit.model_adapters.baselines:BaselineAdapter", 256, generates=False, local=True),
    "transformers": AdapterEntry(
        "evalkit.model_adapters.transformers_local:TransformersAdapter", 16, ("batch_size", "device"), local=True
    ),
    "vllm": AdapterEntry("evalkit.model_adapters.vllm_engine:VLLMAdapter", 256),
    "openai": AdapterEntry("evalkit.model_adapters.openai_server:OpenAIAdapter", 64, ("allow_remote_credentialed",)),
    # A model run with its own inference code: its card documents the conventions, `evalkit score` reads its
    # predictions.
    "external": AdapterEntry(None, 256, generates=False),
}
GENERATING_ADAPTERS: tuple[str, ...] = tuple(name for name, entry in ADAPTERS.items() if entry.generates)


def adapter_entry(card: ModelCard) -> AdapterEntry:
    if card.adapter not in ADAPTERS:
        raise EvalkitError(f"card '{card.name}': unknown adapter '{card.adapter}'; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[card.adapter]


def default_batch_size(card: ModelCard) -> int:
    return adapter_entry(card).batch_size


def external_advice(card: ModelCard, tasks: Sequence[str] = ()) -> str:
    """What to do with a card that evalkit cannot run: commands that `evalkit samples` and `evalkit score` accept
    (a task; a name of its own, since a card's name is refused for predictions made elsewhere)."""
    task = tasks[0] if len(tasks) == 1 else "TASK"
    return (
        f"model '{card.name}' runs with its own inference code ({card.checkpoint}); its card records the prompt, "
        f"decoding and box conventions to use. List the samples with `evalkit samples --task {task} --model "
        f"{card.name} --out samples.jsonl`, make predictions with that code, then score them with `evalkit score "
        f"--task {task} --predictions FILE.jsonl --model-name {card.name}-external --box-format {card.box_format}`"
        + (f" (once per task: {', '.join(tasks)})" if len(tasks) > 1 else "")
        + "."
    )


def build_adapter(card: ModelCard, **settings: Any) -> Adapter:
    """The adapter for a card. `settings` are the caller's options (None = not given); each back end takes the
    ones it declares."""
    entry = adapter_entry(card)
    if entry.target is None:
        raise EvalkitError(external_advice(card))
    options = {k: v for k, v in settings.items() if k in entry.options and v is not None}
    return entry.load()(card, **options)
