"""`evalkit compare`: paired comparison of two models on one task, from stored per-sample scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.cli._common import ClusterOption, DbOption, fail, fmt, fmt_p, wide_console
from evalkit.cli._tables import fitting
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


def compare(
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task both models ran.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Give twice: model A then model B (a card name or a run id)."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Only these metrics (repeatable). Default: all shared.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Paired bootstrap resamples.")] = 10_000,
    n_perm: Annotated[int, typer.Option("--n-perm", help="Approximate-randomisation permutations (0: skip).")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the resamples and permutations.")] = 0,
    cluster: ClusterOption = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="A JSON object: runs and one entry per metric.")] = False,
    pairs: Annotated[
        list[Path] | None,
        typer.Option(
            "--pairs", help="Give twice: free pairs of system A then B, the same references in order (no task)."
        ),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="With --pairs: the files' layout (docs/importing.md).")] = None,
) -> None:
    """Compare model A with model B on the samples both scored: delta (A − B), 95% CI, p-values, Holm-adjusted.

    The paired bootstrap gives the CI and a p-value; approximate randomisation (swapping the two models' outputs
    per cluster) gives a second p-value. Holm's correction runs across the metrics compared. Both resample the
    data set's clusters (patient, study or image) unless --cluster says otherwise.

    Examples:

      evalkit compare --task phantom-report --model nn-retrieval --model normal-template

      evalkit compare -t phantom-anatomy-grounding -m prior-box -m whole-image --metric miou --json

      evalkit compare --pairs a.jsonl --pairs b.jsonl --metric rouge_l --metric bleu_4
    """
    from evalkit.results.scores import compare_runs
    from evalkit.results.store import Store
    from evalkit.stats import unit_text

    if pairs:
        compare_pairs(pairs, task, model, metric, n_boot, n_perm, seed, json_out, preset)
        return
    try:
        if task is None:
            raise EvalkitError("give --task and --model twice (or --pairs twice for free pairs)")
        model = model or []
        if len(model) != 2:
            raise EvalkitError(f"--model must be given exactly twice (A then B), got {len(model)}")
        if n_boot < 100:
            raise EvalkitError(f"--n-boot must be at least 100, not {n_boot}")
        if n_perm < 0:
            raise EvalkitError(f"--n-perm must be 0 or more, not {n_perm}")
        with Store(db, read_only=True) as store:
            run_a, run_b, rows = compare_runs(
                store,
                task,
                model[0],
                model[1],
                metric or None,
                n_boot=n_boot,
                n_perm=n_perm,
                seed=seed,
                cluster=cluster,
            )
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        print(
            json.dumps(
                {
                    "task": task,
                    "a": {"model": run_a["model"], "run_id": run_a["run_id"]},
                    "b": {"model": run_b["model"], "run_id": run_b["run_id"]},
                    "n_boot": n_boot,
                    "n_perm": n_perm,
                    "seed": seed,
                    "cluster": cluster,
                    "metrics": [r.to_json() for r in rows],
                },
                indent=2,
            )
        )
        return
    console = wide_console()
    table = Table(
        title=escape(f"{task}: A = {run_a['model']} ({run_a['run_id']}) vs B = {run_b['model']} ({run_b['run_id']})"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    units = dict.fromkeys(unit_text(r.unit, r.n_clusters) for r in rows)
    ci_header = f"95% CI by {rows[0].unit}" if len({r.unit for r in rows}) == 1 else "95% CI (unit)"
    for column in ("metric", "n", "A", "B", "Δ A−B", ci_header, "p boot", "p AR", "Holm boot", "Holm AR", "better"):
        table.add_column(
            column, justify="left" if column in ("metric", "better") else "right", no_wrap=True, min_width=len(column)
        )
    for r in rows:
        better = r.better() or "—"
        table.add_row(
            f"{r.metric} {'↑' if r.higher_is_better else '↓'}",
            str(r.n_shared),
            fmt(r.value_a),
            fmt(r.value_b),
            fmt(r.delta, signed=True),
            f"[{fmt(r.ci_low, signed=True)}, {fmt(r.ci_high, signed=True)}]"
            + ("" if len({x.unit for x in rows}) == 1 else f" by {r.unit}"),
            fmt_p(r.p_bootstrap),
            fmt_p(r.p_permutation),
            fmt_p(r.p_bootstrap_holm),
            fmt_p(r.p_permutation_holm),
            better,
        )
    for part in fitting(table):  # an 80-column terminal gets its deltas whole, in parts
        console.print(part)
    console.print(
        f"paired on shared samples, resampled {'; '.join(units)}; {n_boot} bootstrap resamples, {n_perm} "
        f"permutations, seed {seed}. "
        "'better': Holm-adjusted bootstrap p < 0.05, in the metric's direction.",
        highlight=False,
    )
    few_clusters_note(console, rows)


def few_clusters_note(console: Console, rows: list) -> None:
    """The warning a small comparison must carry: its bootstrap p is not to be trusted."""
    from evalkit.stats import FEW_CLUSTERS

    few = [r for r in rows if r.few_clusters]
    if few:
        exact = " (exact: every swap pattern enumerated)" if all(r.exact_permutation for r in few) else ""
        console.print(
            f"[yellow]warning:[/] only {few[0].n_clusters} {few[0].unit}s (under {FEW_CLUSTERS}): the bootstrap p is "
            f"unreliable here; 'better' follows the Holm-adjusted permutation p{exact}.",
            highlight=False,
        )


def compare_pairs(
    files: list[Path],
    task: str | None,
    model: list[str] | None,
    metric: list[str] | None,
    n_boot: int,
    n_perm: int,
    seed: int,
    json_out: bool,
    preset: str | None,
) -> None:
    """`evalkit compare --pairs A --pairs B`: two systems on the same free references."""
    from evalkit.run.pair_compare import compare_systems, read_two_systems

    try:
        if task is not None or model:
            raise EvalkitError("--pairs compares free pairs: leave out --task and --model")
        if len(files) != 2:
            raise EvalkitError(f"--pairs must be given exactly twice (A then B), got {len(files)}")
        if n_boot < 100:
            raise EvalkitError(f"--n-boot must be at least 100, not {n_boot}")
        if n_perm < 0:
            raise EvalkitError(f"--n-perm must be 0 or more, not {n_perm}")
        refs, preds_a, preds_b = read_two_systems(files[0], files[1], preset=preset)
        rows = compare_systems(
            refs, preds_a, preds_b, metric or ["rouge_l", "bleu_4"], n_boot=n_boot, n_perm=n_perm, seed=seed
        )
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        print(
            json.dumps(
                {
                    "a": str(files[0]),
                    "b": str(files[1]),
                    "n_pairs": len(refs),
                    "n_boot": n_boot,
                    "n_perm": n_perm,
                    "seed": seed,
                    "metrics": [r.to_json() for r in rows],
                },
                indent=2,
            )
        )
        return
    console = wide_console()
    table = Table(title=f"A = {files[0]} vs B = {files[1]} · {len(refs)} pairs", title_justify="left")
    for column in ("metric", "A", "B", "Δ A−B", "95% CI", "p boot", "p perm", "Holm boot", "Holm perm", "better"):
        table.add_column(column, justify="left" if column in ("metric", "better") else "right", no_wrap=True)
    for r in rows:
        table.add_row(
            f"{r.metric} {'↑' if r.higher_is_better else '↓'}",
            fmt(r.value_a),
            fmt(r.value_b),
            fmt(r.delta, signed=True),
            f"[{fmt(r.ci_low, signed=True)}, {fmt(r.ci_high, signed=True)}]",
            fmt_p(r.p_bootstrap),
            fmt_p(r.p_permutation) + (" (exact)" if r.exact_permutation else ""),
            fmt_p(r.p_bootstrap_holm),
            fmt_p(r.p_permutation_holm),
            r.better() or "—",
        )
    console.print(table)
    console.print(
        f"paired over pairs; {n_boot} bootstrap resamples, permutation test "
        f"{'over every swap pattern' if rows[0].exact_permutation else f'with {n_perm} permutations'}, seed {seed}.",
        highlight=False,
    )
    few_clusters_note(console, rows)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
