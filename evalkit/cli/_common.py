"""What every command family shares: the consoles, the one error exit, the shared options and number formats."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.errors import EvalkitError

# Piped output (CI logs, files) gets a wide console so leaderboard tables are not squeezed to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True)

DbOption = Annotated[Path, typer.Option("--db", help="DuckDB results file.")]
ProfileOption = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Convention profile instead of the task's own: evalkit | radvlm-grpo (`evalkit metrics --profile`).",
    ),
]
DataRootOption = Annotated[
    Path | None,
    typer.Option("--data-root", help="Folder holding the data sets (default: $EVALKIT_DATA_ROOT or ./data)."),
]


def fail(exc: EvalkitError) -> None:
    """The CLI's way out for input errors: the message, then the error's exit code (2)."""
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def fmt_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def summary_line(summary) -> str:
    """One run's outcome; `cached` counts content-cache hits and samples an earlier run of this pair kept."""
    from evalkit.metrics import is_diagnostic

    kept = f", {summary.reused} kept from the last run" if summary.reused else ""
    hidden = [k for k in summary.metrics if is_diagnostic(k)]  # RL-health diagnostics: `evalkit health` shows them
    metrics = ", ".join(f"{k}={fmt_value(v)}" for k, v in summary.metrics.items() if k not in hidden)
    if hidden:
        metrics += f" [dim](+{len(hidden)} RL-health diagnostics: evalkit health)[/]"
    unavailable = "".join(
        f"\n    {k}: {unavailable_line(v)}" for k, v in summary.unavailable.items() if not is_diagnostic(k)
    )
    return (
        f"[bold]{escape(summary.task)}[/] · {escape(summary.model)}: n={n_of(summary)} generated={summary.generated} "
        f"cached={summary.from_cache + summary.reused}{kept} errors={summary.errors} "
        f"parse_failures={summary.parse_failures} ({summary.seconds:.1f}s)\n    {metrics}{unavailable}"
    )


def unavailable_line(reason: str) -> str:
    """One line per unavailable metric in a run summary; the full reason (where to put weights) is in
    `evalkit metrics`."""
    first = reason.split(";")[0].split(" (")[0].strip()
    first = first if len(first) <= 60 else first[:59] + "…"
    return f"[dim]unavailable ({escape(first)}; see `evalkit metrics`)[/]"


def interrupted(exc: KeyboardInterrupt) -> None:
    """Ctrl-C: say what was kept and how to resume, then exit 130 (the shell's code for SIGINT)."""
    from evalkit.errors import RunInterrupted

    if isinstance(exc, RunInterrupted):
        err.print(
            f"interrupted: {escape(exc.task)} · {escape(exc.model)}: {exc.kept} of {exc.total} samples kept in the "
            "database; "
            "run the same command again to resume from there.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        err.print("interrupted before any sample was generated; nothing to resume.", highlight=False)
    raise typer.Exit(130)


def n_of(summary) -> str:
    """'16/16', or '5/16 (partial)': samples the run holds against the task's size."""
    n = f"{summary.n_samples}/{summary.task_size}"
    return f"{n} [yellow](partial)[/]" if summary.partial else n


def print_summary(summary, limit: int | None) -> None:
    console.print(summary_line(summary), highlight=False)
    print_run_notes(summary, limit)


def print_run_notes(summary, limit: int | None) -> None:
    """What a user must not miss: values cover more samples than --limit asked for; samples that failed."""
    if limit is not None and summary.n_samples > summary.requested:
        console.print(
            f"    [dim]--limit {limit}: the run already holds {summary.n_samples} samples; values and CIs are "
            f"over all of them (a limited call never replaces a larger run's numbers)[/]",
            highlight=False,
        )
    if summary.parse_failures:
        console.print(
            f"    [yellow]{summary.parse_failures} of {summary.n_samples} answer(s) failed to parse[/] (scored as "
            "empty answers: check the answer format, e.g. --box-format); `evalkit export` shows each parse_error",
            highlight=False,
        )
    if summary.failed:
        table = Table(title=f"{len(summary.failed)} failed sample(s)", title_justify="left")
        for column in ("sample", "stage", "reason"):
            table.add_column(column)
        table.add_column("file", no_wrap=True, overflow="fold")
        for f in summary.failed:
            file, reason = f["file"] or "", f["reason"] or ""
            # The file has its own column: the reason names it by its base name, so both fit a terminal.
            reason = reason.replace(file, Path(file).name) if file else reason
            table.add_row(f["sample_id"], f["stage"], reason, file)
        console.print(table)


def wide_console(min_width: int = 120) -> Console:
    """Tables of statistics need about 120 columns (doctor's 160); a pipe or a narrow terminal still gets them
    unwrapped."""
    return Console(width=max(Console().width, min_width))


ClusterOption = Annotated[
    str,
    typer.Option(
        "--cluster",
        help="Unit of resampling: auto (each sample's stored cluster: patient, else study, else image), none "
        "(samples, iid), image, study, patient.",
    ),
]


def fmt(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_p(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"
