"""`evalkit demo`: the whole job on the phantom set, offline, on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from evalkit.config import ModelCard
from evalkit.leaderboard import leaderboard_rows
from evalkit.registry import all_cards, all_tasks
from evalkit.runner import Runner, build_adapter, data_root_default, load_samples
from evalkit.store import Store

TINY_MODEL_DIR = Path("results/models/tiny-qwen3vl")


def demo_cards(tiny_model: bool) -> list[ModelCard]:
    """Every baseline, plus local transformers cards whose checkpoint folder exists."""
    cards = []
    for card in all_cards().values():
        if card.adapter == "baseline":
            cards.append(card)
        elif card.adapter == "transformers" and Path(card.checkpoint).is_dir():
            cards.append(card)
        elif card.name == "tiny-qwen3vl" and tiny_model:
            from model_adapters.tiny_qwen3vl import build_tiny_qwen3vl

            build_tiny_qwen3vl(Path(card.checkpoint))
            cards.append(card)
    return cards


def run_demo(
    db: Path, data_root: Path | None, *, limit: int | None = None, tiny_model: bool = True, console: Console
) -> list[dict[str, Any]]:
    root = data_root or data_root_default()
    tasks = [t for t in all_tasks().values() if t.dataset.loader == "phantom"]
    with Store(db) as store:
        for card in demo_cards(tiny_model):
            adapter = build_adapter(card)
            for task in tasks:
                if hasattr(adapter, "supports") and not adapter.supports(task):
                    continue
                adapter.prepare(task, lambda task=task: load_samples(task, root, split="train"))
                summary = Runner(store, task, card, adapter, data_root=root, limit=limit, progress=False).run()
                console.print(
                    f"{task.name:34s} {card.name:18s} n={summary.n_samples:4d} "
                    f"generated={summary.generated:4d} cached={summary.from_cache:4d} ({summary.seconds:.1f}s)",
                    highlight=False,
                )
        return leaderboard_rows(store)
