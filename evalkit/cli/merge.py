"""`evalkit merge`: fold the DuckDB files of separate jobs (a SLURM array, several machines) into one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalkit.cli._common import fail
from evalkit.errors import EvalkitError

console = Console()
err = Console(stderr=True)
MAX_LISTED = 50


def merge(
    sources: Annotated[list[Path], typer.Argument(help="DuckDB files written by `evalkit run` (read only).")],
    into: Annotated[Path, typer.Option("--into", help="Merged file; created if absent, its content comes first.")],
    on_conflict: Annotated[
        str,
        typer.Option(
            "--on-conflict",
            help="fail: write nothing if any conflict is found (default). keep-first: write, keeping the earliest "
            "file's version of each conflicting item.",
        ),
    ] = "fail",
    json_out: Annotated[bool, typer.Option("--json", help="Print the merge report as JSON.")] = False,
) -> None:
    """Merge results databases: a run present in several files is kept once; conflicting rows are reported.

    A conflict is the same key with different content: another text for the same (run, sample), another score
    for the same text, other references for the same sample, another identity for the same run id. Exit codes:
    0 merged without conflicts, 1 conflicts found (nothing written unless --on-conflict keep-first), 2 usage or
    input error.

    Examples:

      evalkit merge results/job-*.duckdb --into results/evalkit.duckdb

      evalkit merge a.duckdb b.duckdb --into all.duckdb --on-conflict keep-first --json
    """
    from evalkit.results.merge import merge_databases

    try:
        report = merge_databases(list(sources), into, on_conflict=on_conflict)
    except EvalkitError as exc:
        fail(exc)
    except KeyboardInterrupt:
        # merge_databases builds in a scratch file and removes it on the way out: the target is as it was.
        err.print(f"interrupted: nothing was merged; {into} is unchanged.", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if json_out:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        _print_report(report)
    if report.conflicts:
        raise typer.Exit(1)


def _print_report(report) -> None:
    state = "written to" if report.written else "NOT written to"
    console.print(f"merged {len(report.sources)} file(s): {state} {report.into}", highlight=False)
    for title, counts in (("added", report.added), ("kept once (duplicates)", report.duplicates)):
        if counts:
            console.print(f"  {title}: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())), highlight=False)
    if report.replaced_failed:
        console.print(f"  failed generations replaced by successful ones: {report.replaced_failed}")
    if report.recomputed_runs:
        console.print(
            f"  aggregates recomputed for {len(report.recomputed_runs)} run(s) holding samples from several files"
        )
    for table, n in sorted(report.cache_disagreements.items()):
        console.print(f"  {table}: {n} key(s) with another value in a later file (first kept; caches only)")
    if report.conflicts:
        verdict = (
            "the earliest version kept" if report.written else "nothing written; fix or pass --on-conflict keep-first"
        )
        err.print(f"[bold red]{len(report.conflicts)} conflict(s)[/] ({verdict}):", highlight=False)
        for conflict in report.conflicts[:MAX_LISTED]:
            err.print(f"  {conflict.describe()}", highlight=False, markup=False)
        if len(report.conflicts) > MAX_LISTED:
            err.print(f"  ... and {len(report.conflicts) - MAX_LISTED} more (use --json for all)")


def register(app: typer.Typer) -> None:
    app.command("merge")(merge)
