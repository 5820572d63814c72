"""`evalkit tasks`, `evalkit models` and `evalkit metrics`: what there is to run and score."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from evalkit.cli._common import console, fail
from evalkit.cli._tables import folding
from evalkit.errors import EvalkitError


def tasks(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List tasks and task groups."""
    from evalkit.registry import all_tasks, task_groups

    try:
        specs = all_tasks()
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        print(
            json.dumps(
                [
                    {
                        **s.model_dump(include={"name", "version", "kind", "access", "primary_metric", "groups"}),
                        "metrics": s.metric_names,
                        "loader": s.dataset.loader,
                        "profile": s.profile,
                    }
                    for s in specs.values()
                ],
                indent=2,
            )
        )
        return
    # A narrow console gets the primary metric only (the full list is in --json), the kind and access
    # abbreviated, and data set + metric in one wrapping column; names are never cut.
    wide = console.width >= 140
    if wide:
        table = Table("task", "kind", "data set", "access", "metrics (primary first)", "groups")
    else:
        table = Table("task", "kind", "access", "data set · primary metric")
    folding(table, whole=(0, 1, 2))
    for s in specs.values():
        names = [s.primary_metric] + [n for n in s.metric_names if n != s.primary_metric]
        name = f"{s.name} v{s.version}"
        if wide:
            table.add_row(name, s.kind, s.dataset.loader, s.access, ", ".join(names), ", ".join(s.groups))
        else:
            access = "cred." if s.access == "credentialed" else s.access
            more = f" (+{len(names) - 1})" if len(names) > 1 else ""
            table.add_row(name, s.kind.replace("_generation", ""), access, f"{s.dataset.loader} · {names[0]}{more}")
    console.print(table)
    if not wide:
        console.print("cred. = credentialed data (PhysioNet licence); `evalkit tasks --json` lists every metric")
    console.print("groups: " + "; ".join(f"{g} = {', '.join(m)}" for g, m in sorted(task_groups().items())))
    _print_profile_changes(sorted({s.profile for s in specs.values()}), specs)


def _print_profile_changes(names: list[str], specs: dict | None = None) -> None:
    """What each profile changes against evalkit's own definitions, point by point and metric by metric."""
    from evalkit.profiles import DEFAULT_PROFILE, profile_changes

    for name in names:
        users = [t for t, spec in (specs or {}).items() if spec.profile == name]
        head = f"profile {name}" + (f" ({len(users)} tasks)" if specs else "")
        changes = profile_changes(name)
        if not changes:
            console.print(f"{head}: evalkit's own definitions", highlight=False)
            continue
        table = Table("what", name, DEFAULT_PROFILE, title=f"{head}: what it changes", title_justify="left")
        for row in changes:
            table.add_row(*row)
        console.print(folding(table))


def models(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List model cards."""
    from evalkit.registry import all_cards

    try:
        cards = all_cards()
    except EvalkitError as exc:
        fail(exc)
    if json_out:
        print(json.dumps([c.model_dump() for c in cards.values()], indent=2))
        return
    # The source citation is long prose: shown on wide consoles, left to `--json` on narrow ones.
    wide = console.width >= 120
    table = Table("model", "adapter", "checkpoint", "box format", "thinking", *(["source"] if wide else []))
    for c in cards.values():
        table.add_row(c.name, c.adapter, c.checkpoint, c.box_format, c.thinking, *([c.source[:60]] if wide else []))
    console.print(folding(table, whole=(0, 1, 3, 4)))


def metrics(
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    profile: Annotated[
        str | None, typer.Option("--profile", help="Also say what this convention profile changes, metric by metric.")
    ] = None,
) -> None:
    """List metrics with direction and whether they can run here (and why not)."""
    from evalkit.metrics import all_metrics
    from evalkit.profiles import get_profile

    try:
        chosen = get_profile(profile) if profile is not None else None
    except EvalkitError as exc:
        fail(exc)

    rows = []
    for name, cls in all_metrics().items():
        reason = cls().available()
        rows.append(
            {
                "name": name,
                "version": cls.version,
                "kind": cls.kind,
                "higher_is_better": cls.higher_is_better,
                "available": reason is None,
                "reason": reason,
                "description": cls.description,
                **({"profile_options": chosen.options_for(name)} if chosen is not None else {}),
            }
        )
    if json_out:
        print(json.dumps(rows, indent=2))
        return
    table = Table("metric", "kind", "direction", "status", "description")
    for r in rows:
        status = "[green]available[/]" if r["available"] else f"[yellow]unavailable:[/] {escape(r['reason'])}"
        table.add_row(
            f"{r['name']} v{r['version']}", r["kind"], "↑" if r["higher_is_better"] else "↓", status, r["description"]
        )
    console.print(folding(table))
    if chosen is not None:
        _print_profile_changes([chosen.name])


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command()(tasks)
    app.command()(models)
    app.command()(metrics)
