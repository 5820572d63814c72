"""`evalkit demo`: the whole job on the phantom set, offline, on a CPU.

Besides the baselines and the random tiny model, the demo runs the checkpoints the CPU training recipe made
(`model_adapters/checkpoints/`: untrained, SFT and SFT+GRPO of one seed, remade with
`evalkit train demo --seeds 0 --ship`), so its leaderboard shows what SFT and GRPO each add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from evalkit.config import ModelCard
from evalkit.leaderboard import leaderboard_rows
from evalkit.registry import CARD_IN_CHECKPOINT, PROJECT_ROOT, all_cards, all_tasks, resolve_model
from evalkit.runner import Runner, build_adapter, data_root_default, load_samples
from evalkit.store import Store

TINY_MODEL_DIR = Path("results/models/tiny-qwen3vl")
SHIPPED_CHECKPOINTS = PROJECT_ROOT / "model_adapters" / "checkpoints"
# The training recipe's checkpoints run in this order: untrained, SFT, SFT+GRPO.
SHIPPED_ORDER = ("demo-qwen3vl-base", "demo-qwen3vl-sft", "demo-qwen3vl-sft-grpo")


def shipped_cards() -> list[ModelCard]:
    """Cards of the checkpoints shipped by the CPU training recipe (each folder holds its evalkit_card.yaml).

    The untrained base ships without weights (they are a seeded random init); they are recreated once under
    results/models/ (training.demo.materialize_base).
    """
    folders = [f for f in SHIPPED_CHECKPOINTS.glob("*") if (f / CARD_IN_CHECKPOINT).is_file()]
    rank = {name: i for i, name in enumerate(SHIPPED_ORDER)}
    folders.sort(key=lambda f: (rank.get(f.name, len(rank)), f.name))
    cards = []
    for folder in folders:
        if not (folder / "model.safetensors").is_file():
            from training.demo import materialize_base

            folder = materialize_base(folder)
        cards.append(resolve_model(str(folder)))
    return cards


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
    return cards + shipped_cards()


def run_demo(
    db: Path, data_root: Path | None, *, limit: int | None = None, tiny_model: bool = True, console: Console
) -> list[dict[str, Any]]:
    root = data_root or data_root_default()
    tasks = [t for t in all_tasks().values() if t.dataset.loader == "phantom"]
    with Store(db) as store:
        for card in demo_cards(tiny_model):
            local_model = card.adapter == "transformers"
            adapter = build_adapter(card, batch_size=32) if local_model else build_adapter(card)
            for task in tasks:
                if hasattr(adapter, "supports") and not adapter.supports(task):
                    continue
                adapter.prepare(task, lambda task=task: load_samples(task, root, split="train"))
                batch = 32 if local_model else 16
                summary = Runner(
                    store, task, card, adapter, data_root=root, limit=limit, batch_size=batch, progress=False
                ).run()
                console.print(
                    f"{task.name:34s} {card.name:18s} n={summary.n_samples:4d} "
                    f"generated={summary.generated:4d} cached={summary.from_cache:4d} ({summary.seconds:.1f}s)",
                    highlight=False,
                )
        return leaderboard_rows(store)
