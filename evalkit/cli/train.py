"""`evalkit train sft|grpo|demo`: reproduce SFT and GRPO checkpoints (training/ on TRL) and evaluate them here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalkit.cli._common import fail
from evalkit.errors import EvalkitError

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="Recipe YAML (see evalkit/training/configs/).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe field: key.path=value (repeatable), e.g. train.max_steps=10."),
]
OutputOption = Annotated[Path | None, typer.Option("--output-dir", "-o", help="Checkpoint folder (default: recipe's).")]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding the data sets (default: $EVALKIT_DATA_ROOT or ./data)."),
]
DbOption = Annotated[Path | None, typer.Option("--db", help="DuckDB results file for the recipe's `evaluate` block.")]


TRAIN_EXTRA_MODULES = frozenset({"trl", "peft", "datasets"})


def _missing_train_extra(exc: ImportError) -> EvalkitError:
    return EvalkitError(f"training needs the 'train' extra (pip install -e '.[train]'): {exc}")


def _train(recipe: str, config: Path, overrides: list[str] | None, output_dir, data_root, db) -> None:
    from evalkit.training.config import load_train_config

    try:
        spec = load_train_config(config, overrides or [], recipe=recipe)
        try:
            if recipe == "sft":
                from evalkit.training.sft import run_sft as run
            else:
                from evalkit.training.grpo import run_grpo as run
        except ImportError as exc:
            raise _missing_train_extra(exc) from exc
        try:
            result = run(
                spec, config_path=config, overrides=overrides, data_root=data_root, output_dir=output_dir, db=db
            )
        except ModuleNotFoundError as exc:
            # The recipes import TRL, PEFT and datasets only when they start: a missing one is the extra, not a bug.
            if (exc.name or "").split(".")[0] not in TRAIN_EXTRA_MODULES:
                raise
            raise _missing_train_extra(exc) from exc
    except EvalkitError as exc:
        fail(exc)
        return
    console.print(
        f"[bold]{result.card.name}[/]: {recipe} finished, {result.steps} steps in {result.seconds:.0f}s; "
        f"checkpoint {result.output_dir}",
        highlight=False,
    )
    for task, values in result.evaluation.items():
        shown = ", ".join(f"{k}={v:.4f}" if v is not None else f"{k}=—" for k, v in values.items())
        console.print(f"  {task}: {shown}", highlight=False)
    console.print(f"evaluate it with: evalkit run --model {result.output_dir} --task <task>", highlight=False)


train_app = typer.Typer(
    help="Train SFT and GRPO checkpoints (TRL) whose rewards are evalkit's metrics.", no_args_is_help=True
)


def sft(
    config: ConfigOption,
    overrides: SetOption = None,
    output_dir: OutputOption = None,
    data_root: DataRootOption = None,
    db: DbOption = None,
) -> None:
    """Supervised fine-tuning (or cold-start thinking SFT) on tasks' train splits.

    Writes a Hugging Face checkpoint with evalkit_card.yaml inside, so `evalkit run --model <dir>` evaluates it.

    Examples:

      evalkit train sft --config evalkit/training/configs/sft.yaml

      evalkit train sft -c evalkit/training/configs/cpu-demo-sft.yaml --set train.max_steps=50 -o /tmp/sft
    """
    _train("sft", config, overrides, output_dir, data_root, db)


def grpo(
    config: ConfigOption,
    overrides: SetOption = None,
    output_dir: OutputOption = None,
    data_root: DataRootOption = None,
    db: DbOption = None,
) -> None:
    """GRPO with rewards computed by evalkit's parsers and metrics (soft-F1 IoU, -RadCliQ, ...).

    Examples:

      evalkit train grpo --config evalkit/training/configs/grpo-grounding.yaml

      accelerate launch --config_file evalkit/training/configs/accelerate/zero3.yaml -m evalkit.cli train grpo \\
        --config evalkit/training/configs/grpo-report.yaml
    """
    _train("grpo", config, overrides, output_dir, data_root, db)


def demo(
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds; one base/SFT/GRPO chain per seed.")] = "0,1,2",
    out: Annotated[Path, typer.Option("--out", help="Folder for checkpoints and results.")] = Path(
        "results/train-demo"
    ),
    data_root: DataRootOption = None,
    sft_steps: Annotated[int | None, typer.Option(help="Override the SFT steps of the recipe.")] = None,
    grpo_steps: Annotated[int | None, typer.Option(help="Override the GRPO steps of the recipe.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate on the first N samples of each task.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON here.")] = None,
    ship: Annotated[
        bool,
        typer.Option(
            help="Copy the first seed's checkpoints (float16) to evalkit/model_adapters/checkpoints/ "
            "for `evalkit demo`."
        ),
    ] = False,
) -> None:
    """The CPU demo recipe on phantoms: base -> SFT -> SFT+GRPO (soft-F1 reward) per seed, evaluated by the
    harness on held-out phantom grounding (soft_f1_iou, radvlm_map50).

    Example: evalkit train demo --seeds 0,1,2
    """
    try:
        from evalkit.training.demo import print_table, run_demo_recipe, ship_checkpoints
    except ImportError as exc:
        fail(_missing_train_extra(exc))
        return
    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        fail(EvalkitError(f"--seeds must be comma-separated integers, not '{seeds}'"))
        return
    try:
        report = run_demo_recipe(
            seed_list,
            out,
            data_root=data_root,
            sft_steps=sft_steps,
            grpo_steps=grpo_steps,
            limit=limit,
            console=console,
        )
    except EvalkitError as exc:
        fail(exc)
        return
    print_table(report, console)
    if json_out is not None:
        import json

        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if ship:
        first = str(seed_list[0])
        written = ship_checkpoints(out / f"seed{first}", evaluation=report["seeds"][first]["results"])
        for stage, folder in written.items():
            console.print(f"shipped {stage}: {folder}", highlight=False)


def register(app: typer.Typer) -> None:
    train_app.command("sft")(sft)
    train_app.command("grpo")(grpo)
    train_app.command("demo")(demo)
    app.add_typer(train_app, name="train")
