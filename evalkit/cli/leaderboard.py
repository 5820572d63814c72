"""`evalkit leaderboard` and `evalkit export`: the stored numbers, as tables and as per-sample rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from evalkit.cli._common import DbOption, console, err, fail, fmt_value
from evalkit.cli._tables import split_by_width
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


def leaderboard(
    db: DbOption = DEFAULT_DB,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="A JSON list of {task, model, metric, value, n, ...}.")
    ] = False,
    cluster: Annotated[
        str,
        typer.Option(
            help="Unit the 95% CIs resample: auto (stored: patient, else study, else image), none, image, "
            "study, patient."
        ),
    ] = "auto",
    style: Annotated[
        str | None,
        typer.Option(help="Print a paper's table instead: radvlm-grpo (its columns, x100, RadCliQ raw)."),
    ] = None,
    reliance: Annotated[
        bool,
        typer.Option(
            "--reliance", help="Add an 'image reliance' column: the primary metric's drop on TASK@blank, where run."
        ),
    ] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Only runs made under this convention profile.")
    ] = None,
    diagnostics: Annotated[
        bool, typer.Option("--diagnostics", help="Also show the RL-health diagnostics (`evalkit health`) as columns.")
    ] = False,
) -> None:
    """Print stored results: one table per task, one row per model, with 95% CIs (the resampled unit is named).

    Examples:

      evalkit leaderboard --task mimic-cxr-report --style radvlm-grpo

      evalkit leaderboard --task grounding --style radvlm-grpo
    """
    from evalkit.profiles import get_profile
    from evalkit.results.store import Store
    from evalkit.views.leaderboard import leaderboard_rows, paper_tables, with_profile_labels
    from evalkit.views.paper_layouts import paper_styles

    try:
        if profile is not None:
            get_profile(profile)
        if style is not None and style not in paper_styles():
            raise EvalkitError(f"--style must be one of {', '.join(paper_styles())}, not '{style}'")
        names = [task]
        if style is not None and task is not None:
            from evalkit.registry import resolve_tasks

            names = [t.name for t in resolve_tasks(task)]  # a group (grounding) gives one column per task
        with Store(db, read_only=True) as store:
            if task is not None and style is None:
                names = _leaderboard_tasks(store, task)
            _check_stored_model(store, model)
            rows = [r for name in names for r in leaderboard_rows(store, name, model, cluster=cluster, profile=profile)]
            if style is not None:
                from evalkit.published import all_records
                from evalkit.views.goodhart import mark_rewarded

                mark_rewarded(store, rows)
                tables = paper_tables(rows, style, published=all_records(store))  # published rows beside runs
            if reliance:
                from evalkit.views.reliance import leaderboard_reliance_rows

                rows += leaderboard_reliance_rows(store, rows, cluster=cluster)
    except EvalkitError as exc:
        fail(exc)
    if style is not None:
        if json_out:
            print(json.dumps(tables, indent=2, ensure_ascii=False))
            return
        if not tables:
            console.print("no results yet")
        for t in tables:
            table = Table(title=t["title"], title_justify="left")
            for i, column in enumerate(t["columns"]):
                table.add_column(column, justify="left" if i == 0 else "right")
            for row in t["rows"]:
                table.add_row(*row)
            _add_reported(table, t.get("reported"))
            console.print(table)
            for note in (t.get("reported") or {}).get("notes", []):
                console.print(f"  [dim]n/c: {note}[/]", highlight=False)
        return
    if json_out:
        print(json.dumps(rows, indent=2, default=str))
        return
    print_leaderboard(with_profile_labels(rows), diagnostics=diagnostics)


def _add_reported(table: Table, reported: dict | None) -> None:
    """Published rows under a paper table (evalkit.views.published_compare.reported_block): never ranked."""
    if reported:
        table.add_section()
        for i, row in enumerate(reported["rows"]):
            table.add_row(*row, style="dim" if i % 2 == 0 else None)


def _leaderboard_tasks(store, task: str) -> list[str]:
    """--task as stored, a known task, or a group's members; anything else is a typo worth saying (exit 2)."""
    from evalkit.registry import all_tasks, did_you_mean, task_groups
    from evalkit.results.queries import stored_task_names

    stored = stored_task_names(store)
    if task in stored or task in all_tasks():
        return [task]
    groups = task_groups()
    if task in groups:
        return groups[task]
    known = sorted({*stored, *all_tasks()})
    raise EvalkitError(
        f"--task: unknown task or task group '{task}'{did_you_mean(task, [*known, *groups])}; tasks with results "
        f"in {store.path}: {', '.join(stored) or 'none'}"
    )


def _check_stored_model(store, model: str | None) -> None:
    """--model names a model the file holds (a run id is accepted as is by the commands that take one)."""
    from evalkit.registry import did_you_mean
    from evalkit.results.queries import stored_model_names

    stored = stored_model_names(store)
    if model is not None and model not in stored:
        raise EvalkitError(
            f"--model: no runs of '{model}' in {store.path}{did_you_mean(model, stored)}; models there: "
            f"{', '.join(stored) or 'none'}"
        )


def print_leaderboard(rows: list[dict], diagnostics: bool = False) -> None:
    from evalkit.metrics import is_diagnostic

    if not rows:
        console.print("no results yet")
        return
    hidden: dict[str, set[str]] = {}  # task -> diagnostics left out of its table
    if not diagnostics:
        for r in rows:
            if is_diagnostic(r["metric"]):
                hidden.setdefault(r["task"], set()).add(r["metric"])
        rows = [r for r in rows if r["metric"] not in hidden.get(r["task"], ())]
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r)
    for task_name, task_rows in by_task.items():
        metric_names = list(dict.fromkeys(r["metric"] for r in sorted(task_rows, key=lambda r: not r["primary"])))
        # Metrics no model could compute here (no weights) become one line under the table, not empty columns.
        absent = [m for m in metric_names if all(r["status"] == "unavailable" for r in task_rows if r["metric"] == m)]
        metric_names = [m for m in metric_names if m not in absent]
        directions = {r["metric"]: "↑" if r["higher_is_better"] else "↓" for r in task_rows}
        models_seen = list(dict.fromkeys(r["model"] for r in task_rows))
        primary = metric_names[0]
        cells = {(r["model"], r["metric"]): r for r in task_rows}

        runs = {r["model"]: r for r in task_rows}

        def key(model_name: str, cells: dict = cells, primary: str = primary, runs: dict = runs) -> tuple:
            # Partial runs (fewer samples than the task) are listed after the full ones, never ranked among them.
            r = cells.get((model_name, primary))
            if not r or r["value"] is None:
                return (runs[model_name]["partial"], float("inf"))
            return (runs[model_name]["partial"], -r["value"] if r["higher_is_better"] else r["value"])

        references = {r["model"]: r["reference"] for r in task_rows if r.get("reference")}
        ranked = sorted((m for m in models_seen if m not in references), key=key)
        ordered = [*ranked, *sorted(references)]  # reference rows (not models) go last and are not ranked
        labels = []
        failed_runs = []
        for m in ordered:
            label = f"{escape(m)} [dim](reference: {escape(references[m])})[/]" if m in references else escape(m)
            labels.append(label + (" [yellow](partial)[/]" if runs[m]["partial"] else ""))
            if runs[m]["failed_samples"]:
                policy = next(
                    (r["errored_samples"] for r in task_rows if r["model"] == m and r["errored_samples"]), "zero"
                )
                failed_runs.append((m, runs[m]["failed_samples"], policy))
        columns: list[tuple[str, list[str]]] = []
        n_by_model = dict.fromkeys(ordered, 0)
        for name in metric_names:
            column = []
            for model_name in ordered:
                r = cells.get((model_name, name))
                if r is None:
                    column.append("")
                elif r["status"] == "unavailable":
                    column.append("[dim]unavailable[/]")
                else:
                    ci = "" if r.get("ci_low") is None else f" [dim][{r['ci_low']:.3f}, {r['ci_high']:.3f}][/]"
                    column.append(fmt_value(r["value"]) + ci)
                    n_by_model[model_name] = max(n_by_model[model_name], r["n"] or 0)
            columns.append((f"{name} {directions[name]}", column))
        sizes = {m: runs[m].get("task_size") for m in ordered}
        columns.append(
            ("n / task", [f"{n_by_model[m]}/{sizes[m]}" if sizes[m] else str(n_by_model[m]) for m in ordered])
        )
        # Too wide for the console: several tables, each repeating the model column (names are never cut).
        for table in split_by_width(console, task_name, ("model", labels), columns):
            if references:
                table.caption = "reference rows are not models and are not ranked"
            console.print(table)
        units = dict.fromkeys(r["ci_unit"] for r in task_rows if r.get("ci_unit"))
        if units:
            console.print(f"[dim]95% CIs resampled {'; '.join(units)}[/]", highlight=False)
        if absent:
            console.print(f"[dim]unavailable here (see `evalkit metrics`): {', '.join(absent)}[/]")
        if hidden.get(task_name):
            console.print(
                f"[dim]{len(hidden[task_name])} RL-health diagnostics not shown: `evalkit health --task {task_name} "
                "--model M` or `evalkit leaderboard --diagnostics`[/]",
                highlight=False,
            )
        for model_name in ordered:
            if runs[model_name].get("parse_failures"):
                console.print(
                    f"[yellow]{escape(model_name)}: {runs[model_name]['parse_failures']} answer(s) failed to parse[/] "
                    "(scored as empty answers); see `evalkit export` (parse_error)",
                    highlight=False,
                    soft_wrap=True,
                )
        for model_name, count, policy in failed_runs:
            how = "left out of n" if policy == "exclude" else "scored as empty answers, in n"
            console.print(
                f"[yellow]{escape(model_name)}: {count} failed sample(s)[/] ({how}; the task's errored_samples: "
                f"{policy}); "
                f"see `evalkit export --task {task_name} --model {model_name}` (error, error_file columns)",
                highlight=False,
                soft_wrap=True,
            )


def _reader_left() -> None:
    """`evalkit export | head`: the reader has what it wanted. Leave quietly, as `cat` does; stdout goes to
    /dev/null so that Python's flush at exit does not complain about the closed pipe either."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # not a real file descriptor (e.g. captured output): nothing will be flushed to a closed pipe
    raise typer.Exit(0)


def export(
    db: DbOption = DEFAULT_DB,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout for jsonl/csv).")] = None,
) -> None:
    """Write one row per (run, sample): prediction, reference, boxes, error and every metric's score."""
    from evalkit.results.store import Store
    from evalkit.views.export import export_rows, write_rows

    try:
        if fmt not in ("jsonl", "csv", "parquet"):
            raise EvalkitError(f"--format must be jsonl, csv or parquet, not '{fmt}'")
        if fmt == "parquet" and out is None:
            raise EvalkitError("--format parquet needs --out FILE")
        if out is not None and out.is_dir():
            raise EvalkitError(f"--out {out} is a folder; give a file name, e.g. --out {out / ('results.' + fmt)}")
        with Store(db, read_only=True) as store:
            names = _leaderboard_tasks(store, task) if task is not None else [None]
            _check_stored_model(store, model)
            rows = [row for name in names for row in export_rows(store, name, model)]
        try:
            write_rows(rows, fmt, out)
        except BrokenPipeError:
            if out is not None:
                raise EvalkitError(f"--out {out}: cannot write there (broken pipe)") from None
            _reader_left()
        except OSError as exc:
            raise EvalkitError(
                f"--out {out}: cannot write there ({exc.strerror or exc}); choose a writable path"
            ) from None
        if out is not None:
            err.print(f"wrote {len(rows)} rows to {out}")
    except EvalkitError as exc:
        fail(exc)


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command()(leaderboard)
    app.command()(export)
