"""The CPU demo recipe on phantoms: base -> SFT -> SFT+GRPO, evaluated by the harness, over several seeds.

Per seed: a small Qwen3-VL-architecture model is built locally with random weights (`base`), fine-tuned on
phantom grounding and report data (`cpu-demo-sft.yaml`), then trained with GRPO whose reward is evalkit's
soft-F1 IoU (`cpu-demo-grpo.yaml`). All three are run by the harness on the held-out (test) split of the phantom
grounding tasks and scored with `soft_f1_iou` and `radvlm_map50`. `ship_checkpoints` writes one seed's chain
(float16 weights) to `evalkit/model_adapters/checkpoints/`, where `evalkit demo` picks it up.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from evalkit.config import MetricSpec
from evalkit.registry import resolve_model, resolve_tasks
from evalkit.resources import bundled
from evalkit.testing.tiny_qwen3vl import materialize_base  # noqa: F401 (its home before; kept importable here)
from evalkit.training.config import load_train_config

CONFIG_DIR = bundled("training_configs")
SFT_CONFIG = CONFIG_DIR / "cpu-demo-sft.yaml"
GRPO_CONFIG = CONFIG_DIR / "cpu-demo-grpo.yaml"
EVAL_TASKS: tuple[str, ...] = (
    "phantom-abnormality-grounding",
    "phantom-anatomy-grounding",
    "phantom-phrase-grounding",
)
EVAL_METRICS: tuple[str, ...] = ("soft_f1_iou", "radvlm_map50")
STAGES: tuple[str, ...] = ("base", "sft", "grpo")
STAGE_LABELS = {"base": "untrained", "sft": "SFT", "grpo": "SFT+GRPO"}
SHIPPED_DIR = bundled("checkpoints")
SHIPPED_NAMES = {"base": "demo-qwen3vl-base", "sft": "demo-qwen3vl-sft", "grpo": "demo-qwen3vl-sft-grpo"}


def seed_overrides(seed: int, out: Path, sft_steps: int | None, grpo_steps: int | None) -> tuple[list, list]:
    """`--set` overrides that place one seed's chain under `out/seed<N>/`."""
    folder = out / f"seed{seed}"
    sft = [
        f"model.checkpoint={folder / 'base'}",
        f"model.build.seed={seed}",
        f"train.seed={seed}",
        f"data.shuffle_seed={seed}",
        f"train.output_dir={folder / 'sft'}",
        f"name=demo-qwen3vl-sft-s{seed}",
        f"model.build.card_name=demo-qwen3vl-base-s{seed}",
    ]
    grpo = [
        f"model.checkpoint={folder / 'sft'}",
        f"train.seed={seed}",
        f"data.shuffle_seed={seed}",
        f"train.output_dir={folder / 'grpo'}",
        f"name=demo-qwen3vl-sft-grpo-s{seed}",
    ]
    if sft_steps is not None:
        sft.append(f"train.max_steps={sft_steps}")
    if grpo_steps is not None:
        grpo.append(f"train.max_steps={grpo_steps}")
    return sft, grpo


def evaluate_folder(
    folder: Path, store: Any, data_root: Path | None, limit: int | None = None
) -> dict[str, dict[str, float | None]]:
    """The harness on one checkpoint folder: each grounding task's test split, with the demo's metrics."""
    from evalkit.run.evaluate import evaluate

    tasks = []
    for name in EVAL_TASKS:
        task = resolve_tasks(name)[0]
        extra = [MetricSpec(name=m) for m in EVAL_METRICS if m not in task.metric_names]
        if extra:
            task = task.model_copy(update={"metrics": [*task.metrics, *extra]})
        tasks.append(task)
    summaries = evaluate(str(folder), tasks, db=store, data_root=data_root, limit=limit, batch_size=32)
    return {s.task: {m: s.metrics.get(m) for m in EVAL_METRICS} for s in summaries}


def task_mean(results: dict[str, dict[str, float | None]], metric: str) -> float:
    values = [r[metric] for r in results.values() if r.get(metric) is not None]
    return float(statistics.fmean(values)) if values else float("nan")


def run_demo_recipe(
    seeds: list[int],
    out: Path,
    *,
    data_root: Path | None = None,
    sft_steps: int | None = None,
    grpo_steps: int | None = None,
    limit: int | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Train and evaluate base/SFT/SFT+GRPO per seed; returns per-seed results, means and timings."""
    from evalkit.results.store import Store
    from evalkit.training.grpo import run_grpo
    from evalkit.training.sft import run_sft

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"tasks": list(EVAL_TASKS), "metrics": list(EVAL_METRICS), "seeds": {}}
    started = time.time()
    with Store(out / "demo.duckdb") as store:
        for seed in seeds:
            sft_set, grpo_set = seed_overrides(seed, out, sft_steps, grpo_steps)
            timings: dict[str, float] = {}
            console.print(f"[bold]seed {seed}[/]: SFT ({SFT_CONFIG.name})", highlight=False)
            clock = time.time()
            sft = run_sft(
                load_train_config(SFT_CONFIG, sft_set, recipe="sft"),
                config_path=SFT_CONFIG,
                overrides=sft_set,
                data_root=data_root,
            )
            timings["sft_s"] = round(time.time() - clock, 1)
            console.print(f"[bold]seed {seed}[/]: GRPO ({GRPO_CONFIG.name})", highlight=False)
            clock = time.time()
            grpo = run_grpo(
                load_train_config(GRPO_CONFIG, grpo_set, recipe="grpo"),
                config_path=GRPO_CONFIG,
                overrides=grpo_set,
                data_root=data_root,
            )
            timings["grpo_s"] = round(time.time() - clock, 1)
            clock = time.time()
            folders = {"base": out / f"seed{seed}" / "base", "sft": sft.output_dir, "grpo": grpo.output_dir}
            results = {stage: evaluate_folder(folder, store, data_root, limit) for stage, folder in folders.items()}
            timings["eval_s"] = round(time.time() - clock, 1)
            report["seeds"][str(seed)] = {
                "results": results,
                "mean": {stage: {m: task_mean(results[stage], m) for m in EVAL_METRICS} for stage in STAGES},
                "timings": timings,
                "steps": {"sft": sft.steps, "grpo": grpo.steps},
                "rewards": {k: v for k, v in grpo.final_metrics.items() if k.startswith("rewards/")},
            }
            mean = report["seeds"][str(seed)]["mean"]
            console.print(
                f"seed {seed}: "
                + "  ".join(
                    f"{STAGE_LABELS[s]} soft_f1={mean[s]['soft_f1_iou']:.3f} map50={mean[s]['radvlm_map50']:.3f}"
                    for s in STAGES
                )
                + f"  ({timings['sft_s']:.0f}s SFT, {timings['grpo_s']:.0f}s GRPO, {timings['eval_s']:.0f}s eval)",
                highlight=False,
            )
    report["seconds"] = round(time.time() - started, 1)
    report["summary"] = summarise(report)
    return report


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Mean and sd over seeds per stage and metric, and whether SFT+GRPO > SFT > untrained held on every seed."""
    seeds = list(report["seeds"].values())
    summary: dict[str, Any] = {}
    for stage in STAGES:
        for metric in EVAL_METRICS:
            values = [s["mean"][stage][metric] for s in seeds]
            summary[f"{stage}/{metric}"] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "values": values,
            }
    summary["ordering_holds_every_seed"] = all(
        s["mean"]["grpo"][m] > s["mean"]["sft"][m] > s["mean"]["base"][m] for s in seeds for m in EVAL_METRICS
    )
    return summary


def table_lines(report: dict[str, Any]) -> list[str]:
    """The per-seed results and mean ± sd as fixed-width text (also what the README quotes)."""
    seeds = list(report["seeds"])
    n = len(report["tasks"])
    header = f"{'model':10s}"
    for metric in EVAL_METRICS:
        header += f" | {metric:>12s}: " + " ".join(f"{'s' + s:>6s}" for s in seeds) + f" {'mean ± sd':>15s}"
    lines = [header, "-" * len(header)]
    for stage in STAGES:
        line = f"{STAGE_LABELS[stage]:10s}"
        for metric in EVAL_METRICS:
            values = " ".join(f"{report['seeds'][s]['mean'][stage][metric]:6.3f}" for s in seeds)
            cell = report["summary"][f"{stage}/{metric}"]
            line += f" | {'':>12s}  {values} {cell['mean']:7.3f} ± {cell['sd']:.3f}"
        lines.append(line)
    lines.insert(
        0, f"held-out phantom grounding: test split of {n} tasks, mean over tasks ({', '.join(report['tasks'])})"
    )
    return lines


def print_table(report: dict[str, Any], console: Console) -> None:
    for line in table_lines(report):
        console.print(line, highlight=False, soft_wrap=True)
    holds = report["summary"]["ordering_holds_every_seed"]
    console.print(
        f"SFT+GRPO > SFT > untrained on both metrics for every seed: {'yes' if holds else 'NO'}; "
        f"total {report['seconds']:.0f}s",
        highlight=False,
        soft_wrap=True,
    )


def ship_checkpoints(
    seed_folder: Path, dest: Path = SHIPPED_DIR, evaluation: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Copy one seed's base/SFT/SFT+GRPO chain to `dest` (small enough to commit).

    SFT and SFT+GRPO weights are stored in float16 (loading upcasts to float32 on the CPU). The untrained base is
    shipped without weights: they are its seeded random initialisation, which `materialize_base` recreates
    bit for bit from the shipped config and build stamp. Each copy keeps its `evalkit_card.yaml` (renamed to the
    demo names), so `evalkit demo` and `evalkit run --model <folder>` evaluate them directly. `evaluation`
    (a seed's `results` from `run_demo_recipe`) is recorded in each card's `training.evaluation`.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from evalkit.config import Lineage
    from evalkit.training.modeling import write_card

    written: dict[str, Path] = {}
    parent: str | None = None  # the shipped name of the previous stage (its card's lineage parent)
    for stage, name in SHIPPED_NAMES.items():
        source = Path(seed_folder) / stage
        target = Path(dest) / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for file in source.iterdir():
            if file.name == "model.safetensors":
                if stage == "base":
                    continue
                tensors = load_file(str(file))
                half = {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in tensors.items()}
                save_file(half, str(target / file.name), metadata={"format": "pt"})
                (target / file.name).chmod(0o644)
            elif file.suffix in (".json", ".jinja", ".yaml", ".txt"):
                shutil.copyfile(file, target / file.name)
        card = resolve_model(str(source))
        training = dict(card.training or {})
        training["shipped_as"] = (
            "config, tokenizer and build stamp only: weights are recreated from the seed (materialize_base)"
            if stage == "base"
            else "float16 copy of the recipe's float32 checkpoint"
        )
        if evaluation and stage in evaluation:
            training["evaluation"] = evaluation[stage]
        lineage = Lineage(parent=parent, rewards=list(training.get("rewards") or [])) if parent else None
        write_card(card.model_copy(update={"name": name, "training": training, "lineage": lineage}), target)
        written[stage] = target
        parent = name
    return written
