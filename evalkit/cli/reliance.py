"""`evalkit reliance`: does the model look at the image? Runs a task's image-transform variants and prints the
image-reliance table (evalkit/views/reliance.py, docs/image-reliance.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from evalkit.cli._common import ClusterOption, DbOption, err, fail, fmt, wide_console
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


def reliance(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name (its variants are TASK@blank, ...).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Card name, shipped checkpoint or checkpoint folder.")],
    db: DbOption = DEFAULT_DB,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", help="Folder holding the data sets (default: $EVALKIT_DATA_ROOT).")
    ] = None,
    transform: Annotated[
        list[str] | None,
        typer.Option("--transform", help="Only these transforms (repeatable). Default: the task's `transforms:`."),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Generate at most the first N samples per run.")] = None,
    device: Annotated[str | None, typer.Option(help="transformers adapter: cpu or cuda.")] = None,
    no_run: Annotated[bool, typer.Option("--no-run", help="Only read stored runs; run nothing.")] = False,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Paired bootstrap resamples.")] = 2_000,
    seed: Annotated[int, typer.Option(help="Seed of the resamples.")] = 0,
    cluster: ClusterOption = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="A JSON object with one entry per reliance number.")] = False,
) -> None:
    """Run TASK and its image-transform variants for a model (resuming what is stored), then print how much of
    each score depends on the image: metric drops on blank / noise / shuffled / mirrored images with paired
    clustered 95% CIs, agreement with the shuffled-in study's reference, flip equivariance of boxes, boxes and
    findings given on a blank image.

    Examples:

      evalkit reliance --task phantom-report --model nn-retrieval

      evalkit reliance -t phantom-anatomy-grounding -m demo-qwen3vl-sft-grpo --json
    """
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.results.store import Store
    from evalkit.run.evaluate import evaluate
    from evalkit.run.runner import data_root_default, load_samples
    from evalkit.transforms.tasks import derive_task, variant_specs
    from evalkit.views.reliance import known_report_labels, reliance_rows

    try:
        if n_boot < 100:
            raise EvalkitError(f"--n-boot must be at least 100, not {n_boot}")
        specs = resolve_tasks(task)
        if len(specs) != 1 or specs[0].transform is not None:
            raise EvalkitError(f"--task: give one task that is not a variant, not '{task}'")
        spec = specs[0]
        names = list(dict.fromkeys(transform or [t.name for t in variant_specs(spec)]))
        variants = [derive_task(spec, name) for name in names]
        card = resolve_model(model)
        if not no_run:
            evaluate(card, [spec, *variants], db=db, data_root=data_root, limit=limit, device=device, progress=True)
        labels = {}
        if spec.kind == "report_generation":  # labelled references of every split the baselines copy from
            root = data_root if data_root is not None else data_root_default()
            for split in (None, "train"):
                try:
                    labels.update(known_report_labels(load_samples(spec, root, split=split)))
                except EvalkitError:
                    pass  # no data here (reading stored runs only): answers stay unlabelled
        with Store(db, read_only=True) as store:
            rows = reliance_rows(
                store,
                spec.name,
                card.name,
                kind=spec.kind,
                transforms=names,
                report_labels=labels,
                n_boot=n_boot,
                seed=seed,
                cluster=cluster,
            )
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        payload = {"task": spec.name, "model": card.name, "n_boot": n_boot, "seed": seed, "cluster": cluster}
        print(json.dumps({**payload, "rows": [r.to_json() for r in rows]}, indent=2))
        return
    table = Table(title=f"image reliance: {card.name} on {spec.name}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("transform", "score", "metric", "a", "b", "a − b", "95% CI", "n", "CI ∌ 0"):
        table.add_column(column, justify="left" if column in ("transform", "score", "metric") else "right")
    for r in rows:
        if r.unavailable:
            table.add_row(r.transform, r.score, r.metric, "", "", "", f"unavailable: {r.unavailable}", "", "")
            continue
        ci = f"[{fmt(r.ci_low, signed=True)}, {fmt(r.ci_high, signed=True)}]"
        table.add_row(
            r.transform,
            r.score,
            r.metric,
            fmt(r.value_a),
            fmt(r.value_b),
            fmt(r.value, signed=True),
            ci,
            str(r.n),
            "yes" if r.excludes_zero else "",
        )
    console = wide_console()
    console.print(table)
    unit = next((r for r in rows if not r.unavailable), None)
    if unit is not None:
        console.print(
            f"paired on shared samples, resampled by {unit.unit} ({unit.n_clusters} clusters); {n_boot} resamples, "
            f"seed {seed}. drop = original − transformed in the metric's direction (> 0: worse without the image). "
            "docs/image-reliance.md says how to read each row.",
            highlight=False,
        )
    else:
        err.print("no reliance number could be computed", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("reliance")(reliance)
