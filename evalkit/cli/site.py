"""`evalkit site build`: the static leaderboard site (see evalkit/views/site.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalkit.cli._common import DbOption, fail
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB

site_app = typer.Typer(help="Build the static leaderboard site.", no_args_is_help=True)
console = Console()


@site_app.command("build")
def build(
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path, typer.Option("--out", help="Output folder (replaced on every build).")] = Path("results/site"),
    private: Annotated[
        bool,
        typer.Option(
            "--private",
            help="Include per-sample data of credentialed tasks (local viewing only; every page says so).",
        ),
    ] = False,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples for the CIs.")] = 2000,
    seed: Annotated[int, typer.Option(help="Resampling seed.")] = 0,
    max_samples: Annotated[
        int | None, typer.Option("--max-samples", help="At most N drill-down pages per task (default: all).")
    ] = None,
    cluster: Annotated[
        str, typer.Option(help="Unit the CIs and paired tests resample: auto, none, image, study, patient.")
    ] = "auto",
) -> None:
    """Write a static site (index, task, model and sample pages) that works offline, from file://.

    Public tasks get per-sample drill-down pages (image with reference and predicted boxes, reference and
    generated text); credentialed tasks get aggregates only unless --private is given.

    Examples:

      evalkit site build --out results/site && xdg-open results/site/index.html

      evalkit site build --db results/evalkit.duckdb --out /tmp/private-site --private
    """
    from evalkit.results.store import Store
    from evalkit.views.site import build_site

    try:
        if n_boot < 100:
            raise EvalkitError(f"--n-boot must be at least 100, not {n_boot}")
        if max_samples is not None and max_samples < 0:
            raise EvalkitError(f"--max-samples must be 0 or more, not {max_samples}")
        with Store(db, read_only=True) as store:
            result = build_site(
                store, out, private=private, n_boot=n_boot, seed=seed, max_samples=max_samples, cluster=cluster
            )
    except EvalkitError as exc:
        fail(exc)
    console.print(
        f"wrote {result.pages} pages for {len(result.tasks)} task(s) to {result.out}/index.html"
        + (" [bold red](PRIVATE build: do not publish)[/]" if result.private else ""),
        highlight=False,
    )
    if result.withheld:
        console.print(f"per-sample data withheld (credentialed): {', '.join(result.withheld)}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(site_app, name="site")
