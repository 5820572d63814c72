"""The `evalkit` command line (Typer). Exit codes: 0 ok, 1 regression shown, 2 usage or input error, 3 inconclusive.

One module per command family, each with `register(app)`; `_common` holds the consoles, the error exit and the
shared options. A new family is one new module and one line in `COMMAND_FAMILIES`.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    help="Evaluate chest X-ray vision-language models: run tasks, score predictions, compare and gate checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Make synthetic data sets and real-layout fixtures.", no_args_is_help=True)
app.add_typer(data_app, name="data")

# Families in help order: the core ones (run, score, tasks, models, metrics, leaderboard, export, demo, data), then
# the rest alphabetically.
CORE_FAMILIES = ("run", "catalog", "leaderboard", "demo")
COMMAND_FAMILIES = ("doctor", "gate", "health", "merge", "published", "reliance", "samples", "site", "stats", "train")


def _register_command_modules() -> None:
    for name in CORE_FAMILIES:
        importlib.import_module(f"evalkit.cli.{name}").register(app, data_app)
    for name in COMMAND_FAMILIES:
        importlib.import_module(f"evalkit.cli.{name}").register(app)


_register_command_modules()


def main() -> None:
    app()
