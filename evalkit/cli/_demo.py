"""`evalkit demo`: the whole job on the phantom set, offline, on a CPU.

Besides the baselines and the random tiny model, the demo runs the checkpoints the CPU training recipe made
(`evalkit/model_adapters/checkpoints/`: untrained, SFT and SFT+GRPO of one seed, remade with
`evalkit train demo --seeds 0 --ship`), so its leaderboard shows what SFT and GRPO each add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from evalkit.config import ModelCard
from evalkit.model_adapters.registry import adapter_entry
from evalkit.registry import all_cards, all_tasks, resolve_model, shipped_checkpoints
from evalkit.results.store import Store
from evalkit.run.evaluate import evaluate
from evalkit.views.leaderboard import leaderboard_rows

# The training recipe's checkpoints run in this order: untrained, SFT, SFT+GRPO.
SHIPPED_ORDER = ("demo-qwen3vl-base", "demo-qwen3vl-sft", "demo-qwen3vl-sft-grpo")
LOCAL_BATCH_SIZE = 32


def shipped_cards() -> list[ModelCard]:
    """Cards of the checkpoints shipped by the CPU training recipe (each folder holds its evalkit_card.yaml).

    The untrained base ships without weights (they are a seeded random init); resolving it by name recreates
    them once in the user cache (evalkit.testing.tiny_qwen3vl.materialize_base).
    """
    rank = {name: i for i, name in enumerate(SHIPPED_ORDER)}
    names = sorted(shipped_checkpoints(), key=lambda name: (rank.get(name, len(rank)), name))
    return [resolve_model(name) for name in names]


def demo_cards(tiny_model: bool) -> list[ModelCard]:
    """Every card that runs here without a GPU or a server: baselines, locally built models (the tiny one when
    `tiny_model`), local checkpoint folders that exist; then the shipped checkpoints."""
    cards = []
    for card in all_cards().values():
        if not adapter_entry(card).local:
            continue
        if card.options.get("build"):
            if tiny_model:
                cards.append(resolve_model(card.name))
        elif not adapter_entry(card).generates or Path(card.checkpoint).is_dir():
            cards.append(card)
    return cards + shipped_cards()


def run_demo(
    db: Path, data_root: Path | None, *, limit: int | None = None, tiny_model: bool = True, console: Console
) -> list[dict[str, Any]]:
    tasks = [t for t in all_tasks().values() if t.dataset.loader == "phantom"]
    with Store(db) as store:
        for card in demo_cards(tiny_model):
            evaluate(
                card,
                tasks,
                db=store,
                data_root=data_root,
                limit=limit,
                batch_size=LOCAL_BATCH_SIZE if adapter_entry(card).generates else None,
                # The demo's models are tiny and run on the CPU anywhere; naming it spares asking torch for CUDA.
                device="cpu" if adapter_entry(card).generates else None,
                skip_unsupported=True,
                progress=True,
                on_summary=lambda s: console.print(
                    f"{s.task:34s} {s.model:22s} n={s.n_samples:4d} generated={s.generated:4d} "
                    f"cached={s.from_cache + s.reused:4d} ({s.seconds:.1f}s)"
                    + (f"  {s.parse_failures} answer(s) failed to parse" if s.parse_failures else ""),
                    highlight=False,
                    markup=False,
                ),
            )
        return leaderboard_rows(store)
