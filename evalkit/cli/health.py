"""`evalkit health`: the RL-health table of a checkpoint (diagnostics with CIs, against its parent, with flags),
the length-adjusted comparison and the Goodhart check (docs/rl-health.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from evalkit.cli._common import ClusterOption, DbOption, fail, fmt, fmt_p, wide_console
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB

# Exit codes: 0 no flag, 1 a diagnostic flagged, 2 input error, 4 the Goodhart check suspects a gamed reward.
EXIT_FLAGGED = 1
EXIT_HACKING = 4


def health(
    task: Annotated[str, typer.Option("--task", "-t", help="Task the model ran.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model (card name or run id).")],
    parent: Annotated[
        str | None,
        typer.Option("--parent", "-p", help="Parent checkpoint (default: the card's declared parent, if it ran)."),
    ] = None,
    reward: Annotated[
        list[str] | None,
        typer.Option("--reward", help="Training reward metric (repeatable); default: the card's declared rewards."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="gate.yaml whose `health:` section sets the thresholds.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples.")] = 2000,
    seed: Annotated[int, typer.Option(help="Resampling seed.")] = 0,
    cluster: ClusterOption = "auto",
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the table, length adjustment and check as JSON.")
    ] = False,
) -> None:
    """RL health of a checkpoint: answer length, emptiness, omissions, inventions, negation flips, all-normal rate,
    template collapse, degeneration, thinking hygiene and box shares, each with a CI, against the parent where one
    is known, flagged by named thresholds (changeable in a gate YAML's `health:` section). With a declared training
    reward, also the Goodhart check (reward held while held-out metrics fell) and the length-adjusted comparison.

    Exit 0 no flag, 1 a diagnostic flagged, 2 input error, 4 Goodhart check: hacking suspected.

    Examples:

      evalkit health --task phantom-report --model my-grpo --parent my-sft

      evalkit health -t phantom-phrase-grounding -m demo-qwen3vl-sft-grpo --json

      evalkit health -t mimic-cxr-report -m ./ckpt -p radvlm --reward radgraph_f1_complete --config gate.yaml
    """
    from evalkit.results.store import Store
    from evalkit.views.gate import load_gate_config
    from evalkit.views.goodhart import goodhart_check, length_adjusted
    from evalkit.views.health import HealthThresholds, health_report

    try:
        thresholds = load_gate_config(config).health if config else HealthThresholds()
        with Store(db, read_only=True) as store:
            report = health_report(
                store, task, model, parent, thresholds=thresholds, n_boot=n_boot, seed=seed, cluster=cluster
            )
            check = goodhart_check(
                store, task, model, report.parent, reward, thresholds=thresholds, n_boot=n_boot, seed=seed,
                cluster=cluster,
            )  # fmt: skip
            adjusted = []
            if report.parent and any(r.metric == "response_chars" for r in report.rows):
                adjusted = length_adjusted(store, task, model, report.parent, n_boot=n_boot, seed=seed, cluster=cluster)
    except EvalkitError as exc:
        fail(exc)
    code = EXIT_HACKING if check.verdict == "hacking suspected" else EXIT_FLAGGED if report.flagged else 0
    if json_out:
        payload = {
            **report.to_json(),
            "goodhart": check.to_json(),
            "length_adjusted": [_clean_dict(a.__dict__) for a in adjusted],
            "exit_code": code,
        }
        print(json.dumps(payload, indent=2))
    else:
        _print(report, check, adjusted, code)
    raise typer.Exit(code)


def _clean_dict(data: dict) -> dict:
    from evalkit.views.health import _clean

    return _clean(dict(data))


def _print(report, check, adjusted, code: int) -> None:
    console = wide_console()
    against = f" vs parent {report.parent}" if report.parent else " (no parent: absolute checks only)"
    table = Table(title=f"RL health {report.task}: {report.model}{against}", title_justify="left", box=box.SIMPLE_HEAD)
    columns = ["group", "diagnostic", "value [95% CI]", "parent", "Δ [95% CI]", "p holm", "flag"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("group", "diagnostic", "flag") else "right")
    for r in report.rows:
        table.add_row(
            r.group,
            r.metric,
            f"{fmt(r.value)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]",
            fmt(r.parent_value),
            f"{fmt(r.delta, signed=True)} [{fmt(r.delta_low)}, {fmt(r.delta_high)}]",
            fmt_p(r.p_holm),
            "[red]" + "; ".join(r.flags) + "[/]" if r.flags else "ok",
        )
    console.print(table)
    if report.label_rates:
        rates = ", ".join(f"{label} {v['answer']:.2f}/{v['reference']:.2f}" for label, v in report.label_rates.items())
        console.print(f"label rates (answers/references): {rates}", highlight=False, markup=False)
    if adjusted:
        lt = Table(title="length-adjusted comparison (slope fitted on the parent)", title_justify="left",
                   box=box.SIMPLE_HEAD)  # fmt: skip
        for column in ("metric", "Δ [95% CI]", "expected from length", "adjusted Δ [95% CI]"):
            lt.add_column(column, justify="left" if column == "metric" else "right")
        for a in adjusted:
            lt.add_row(
                f"{a.metric} {'↑' if a.higher_is_better else '↓'}",
                f"{fmt(a.delta, signed=True)} [{fmt(a.delta_low)}, {fmt(a.delta_high)}]",
                f"{fmt(a.expected_from_length, signed=True)} [{fmt(a.expected_low)}, {fmt(a.expected_high)}]",
                f"{fmt(a.adjusted, signed=True)} [{fmt(a.adjusted_low)}, {fmt(a.adjusted_high)}]",
            )
        console.print(lt)
    style = {"pass": "green", "hacking suspected": "red", "inconclusive": "yellow"}[check.verdict]
    rewards = ", ".join(check.rewards) or "none declared"
    console.print(
        f"Goodhart check (reward: {rewards}): [bold {style}]{check.verdict.upper()}[/] — {check.reason}",
        highlight=False,
    )
    console.print(f"exit {code}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("health")(health)
