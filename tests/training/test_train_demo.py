"""The CPU demo recipe's shipped checkpoints (untrained, SFT, SFT+GRPO) in `evalkit demo`, and its report table."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path

import pytest
from rich.console import Console

from evalkit.cli._demo import demo_cards, run_demo
from evalkit.resources import bundled
from evalkit.training.config import load_train_config
from evalkit.training.demo import GRPO_CONFIG, SFT_CONFIG, SHIPPED_NAMES, seed_overrides, summarise, table_lines

SHIPPED_CHECKPOINTS = bundled("checkpoints")
SHIPPED = [SHIPPED_CHECKPOINTS / name for name in SHIPPED_NAMES.values()]


@pytest.mark.skipif(not all(p.is_dir() for p in SHIPPED), reason="no shipped demo checkpoints")
@pytest.mark.slow
def test_shipped_checkpoints_are_small_and_in_the_demo(
    tmp_path: Path, data_root: Path, monkeypatch, evalkit_cache: Path
) -> None:
    size = sum(f.stat().st_size for f in SHIPPED_CHECKPOINTS.rglob("*") if f.is_file())
    assert size < 5_000_000
    monkeypatch.chdir(tmp_path)
    names = [card.name for card in demo_cards(tiny_model=False)]
    assert names[-3:] == list(SHIPPED_NAMES.values())
    # The untrained weights are recreated in the user cache, not under the current folder.
    assert (evalkit_cache / "models" / "demo-qwen3vl-base" / "model.safetensors").is_file()
    assert not (tmp_path / "results" / "models").exists()

    rows = run_demo(tmp_path / "r.duckdb", data_root, limit=3, tiny_model=False, console=Console(quiet=True))
    grounding = {(r["model"], r["metric"]): r["value"] for r in rows if r["task"] == "phantom-anatomy-grounding"}
    for name in SHIPPED_NAMES.values():
        assert (name, "soft_f1_iou") in grounding
    assert grounding[("demo-qwen3vl-base", "soft_f1_iou")] == 0.0
    assert grounding[("demo-qwen3vl-sft-grpo", "soft_f1_iou")] > 0.3  # trained: it draws boxes near the truth


def test_seed_overrides_validate_and_place_each_seed(tmp_path: Path) -> None:
    sft_set, grpo_set = seed_overrides(4, tmp_path, sft_steps=10, grpo_steps=2)
    sft = load_train_config(SFT_CONFIG, sft_set, recipe="sft")
    grpo = load_train_config(GRPO_CONFIG, grpo_set, recipe="grpo")
    assert sft.model.build is not None and sft.model.build.seed == 4 and sft.train.seed == 4
    assert sft.train.output_dir == str(tmp_path / "seed4" / "sft") == grpo.model.checkpoint
    assert (sft.train.max_steps, grpo.train.max_steps) == (10, 2)
    assert grpo.grpo is not None and [r.name for r in grpo.grpo.rewards] == ["soft_f1_iou"]


def test_summary_and_table() -> None:
    def seed(base: float, sft: float, grpo: float) -> dict:
        mean = {s: {"soft_f1_iou": v, "radvlm_map50": v} for s, v in (("base", base), ("sft", sft), ("grpo", grpo))}
        return {"mean": mean}

    report = {"tasks": ["a", "b"], "metrics": ["soft_f1_iou", "radvlm_map50"], "seconds": 1.0}
    report["seeds"] = {"0": seed(0.0, 0.5, 0.6), "1": seed(0.0, 0.52, 0.58)}
    report["summary"] = summarise(report)
    assert report["summary"]["ordering_holds_every_seed"]
    assert report["summary"]["grpo/soft_f1_iou"]["mean"] == pytest.approx(0.59)
    lines = table_lines(report)
    assert lines[4].startswith("SFT ") and "0.510 ± 0.014" in lines[4]
    report["seeds"]["1"] = seed(0.0, 0.6, 0.58)
    assert not summarise(report)["ordering_holds_every_seed"]
