"""`evalkit published`: the ledger of published results (list, add your own records); see evalkit/published.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evalkit.cli._common import fail, wide_console
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB

published_app = typer.Typer(
    help="Published results (papers, leaderboards) with their source; put beside runs, never ranked.",
    invoke_without_command=True,
)
DbOption = Annotated[Path, typer.Option("--db", help="DuckDB results file (holds the records you added).")]


@published_app.callback()
def list_published(
    ctx: typer.Context,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only records of this evalkit task.")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only this source (radvlm-grpo, rexrank).")] = None,
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[bool, typer.Option("--json", help="A JSON list: one object per record.")] = False,
) -> None:
    """List the ledger: every published cell with its source, file and commit, and the evalkit task, metric and
    convention it corresponds to (or `unknown`).

    Examples:

      evalkit published --task mimic-cxr-report-radvlm-filtered

      evalkit published --source rexrank --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from evalkit.published import all_records
    from evalkit.results.store import Store

    try:
        if task is not None and task != "unknown":
            from evalkit.registry import all_tasks

            if task not in all_tasks():
                raise EvalkitError(f"unknown task '{task}' (see `evalkit tasks`; records of no task: --task unknown)")
        if db.exists():
            with Store(db, read_only=True) as store:
                everything = all_records(store)
        else:
            everything = all_records(None)
        known = sorted({r.source for r in everything})
        if source is not None and source not in known:
            raise EvalkitError(f"unknown source '{source}'; the ledger holds: {', '.join(known)}")
    except EvalkitError as exc:
        fail(exc)
    records = [r for r in everything if (task is None or r.task == task) and (source is None or r.source == source)]
    if json_out:
        print(json.dumps([{k: v for k, v in r.as_dict().items() if k != "origin"} for r in records], indent=2,
                         ensure_ascii=False))  # fmt: skip
        return
    if not records:
        wide_console().print("no published records" + (f" for task {task}" if task else ""))
        return
    table = Table(title=f"published results ({len(records)} records)", title_justify="left")
    for column in ("source", "table", "model", "task", "column", "printed", "metric", "convention"):
        table.add_column(column, justify="right" if column == "printed" else "left", overflow="fold",
                         no_wrap=column in ("model", "task", "metric"))  # fmt: skip
    for r in records:
        table.add_row(r.source, r.table, r.model, r.task, r.column, r.printed, r.metric, r.convention)
    console = wide_console()
    console.print(table)
    console.print(
        "[dim]Every record's citation, file, commit, scale and note: --json. A trailing * marks a training-reward "
        "cell.[/]"
    )


@published_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="CSV file with the ledger's columns (see `evalkit published --json`).")],
    db: DbOption = DEFAULT_DB,
) -> None:
    """Add your own published records to a results database, after checking every field.

    The CSV has the ledger's header (source, citation, table, file, repository, commit, model, task, dataset, n,
    column, printed, value, scale, metric, convention, training_reward, note). A record with the same source,
    table, model, task and column as an earlier one replaces it. Nothing is written if any record is invalid.

    Example:

      evalkit published add my-paper.csv --db results/evalkit.duckdb
    """
    from evalkit.published import read_ledger, to_row
    from evalkit.results.published import put_published
    from evalkit.results.store import Store

    try:
        records = read_ledger(file)
        if not records:
            raise EvalkitError(f"{file}: no records (only a header)")
        with Store(db) as store:
            put_published(store, [to_row(r) for r in records], origin=str(file))
    except EvalkitError as exc:
        fail(exc)
    wide_console().print(f"added {len(records)} published record(s) from {file} to {db}", highlight=False)


@published_app.command("explain")
def explain_conventions(
    task: Annotated[str, typer.Option("--task", "-t", help="Task the run is on.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model (card name) or run id.")],
    db: DbOption = DEFAULT_DB,
    published: Annotated[
        list[str] | None,
        typer.Option("--published", help="Published model name(s) to explain (default: the card's published_as)."),
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Only records of this source.")] = None,
    column: Annotated[str | None, typer.Option("--column", help="Only this printed column (e.g. RCQ↓).")] = None,
    cluster: Annotated[str, typer.Option(help="Unit the CIs resample: auto, none, image, study, patient.")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="A JSON list: one object per published cell.")] = False,
) -> None:
    """Which convention of each published number lands it inside the run's 95% CI.

    For every published cell of the task that names this model (RadCliQ raw mean / 1 over the mean / mean of
    reciprocals; RadGraph simple / partial / complete; CheXbert 14 or 5 labels, micro or macro; seed mAP@0.5 vs
    COCO AP50; BLEU-1..4), each convention is computed from the run's stored scores and compared.

    Example:

      evalkit published explain --task mimic-cxr-report-radvlm-filtered --model radvlm-grpo
    """
    from evalkit.published import all_records
    from evalkit.results.scores import find_run
    from evalkit.results.store import Store
    from evalkit.views.published_compare import published_names
    from evalkit.views.published_explain import INSIDE, explain, family_of

    try:
        if not db.exists():
            raise EvalkitError(f"{db}: no results database (run the model first, or pass --db)")
        with Store(db, read_only=True) as store:
            run = find_run(store, task, model)
            names = list(published or published_names(run))
            on_task = all_records(store, task)
            records = [
                r
                for r in on_task
                if r.model in names and family_of(r) and source in (None, r.source) and column in (None, r.column)
            ]
            if not records:
                known = sorted({r.model for r in on_task if family_of(r)})
                who = ", ".join(names) or "this model (its card names no published row)"
                raise EvalkitError(
                    f"no published cell of task '{task}' to explain for {who}; published models on this task: "
                    f"{', '.join(known) or 'none'} (choose with --published NAME)"
                )
            results = [(r, explain(store, run, r, cluster)) for r in records]
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        print(
            json.dumps(
                [
                    {"record": {k: v for k, v in r.as_dict().items() if k != "origin"}, "run_id": run["run_id"],
                     "model": run["model"], "candidates": [c.as_dict() for c in cands]}
                    for r, cands in results
                ],
                indent=2,
                ensure_ascii=False,
            )
        )  # fmt: skip
        return
    console = wide_console()
    for r, cands in results:
        digits = max(r.decimals, 1) + 1
        table = Table(
            title=f"{r.model} {r.column} = {r.printed} ({r.source}, {r.table}) vs run {run['model']} ({run['run_id']})",
            title_justify="left",
        )
        for name in ("convention", "reported by", "value", "95% CI", "published inside?"):
            table.add_column(name, justify="right" if name in ("value", "95% CI") else "left", overflow="fold")
        for c in cands:
            ci = "" if c.ci_low is None else f"[{c.ci_low:.{digits}f}, {c.ci_high:.{digits}f}]"
            value = "" if c.value is None else f"{c.value:.{digits}f}"
            verdict = c.verdict + (f" ({c.reason})" if c.reason else "")
            table.add_row(c.convention, c.reported_by, value, ci, verdict)
        console.print(table)
        inside = [c.convention for c in cands if c.verdict == INSIDE]
        console.print(f"  lands inside: {', '.join(inside) if inside else 'no convention computed here'}")
        if r.n is not None and run.get("n_samples") not in (None, r.n):
            console.print(f"  [yellow]note:[/] published on n={r.n}, the run holds {run['n_samples']} samples")


def register(app: typer.Typer) -> None:
    app.add_typer(published_app, name="published")
