"""`evalkit gate`: fail a CI build when a candidate checkpoint is shown worse than the baseline (exit 1), and tell
"not enough data" (inconclusive, exit 3) from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from evalkit.cli._common import DbOption, fail, fmt, fmt_p, wide_console
from evalkit.cli._tables import fitting
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


def gate(
    task: Annotated[
        str, typer.Option("--task", "-t", help="Task both models ran, or a task group (one verdict table).")
    ],
    candidate: Annotated[str, typer.Option("--candidate", "-c", help="Candidate model (card name or run id).")],
    baseline: Annotated[str, typer.Option("--baseline", "-b", help="Baseline model (card name or run id).")],
    margin: Annotated[
        float | None,
        typer.Option(help="Tolerated regression in metric units, for metrics without a margin in --config."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="gate.yaml: metrics, margins, alpha, n_boot, seed, correction.")
    ] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Only these metrics (repeatable); overrides the config.")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level (default 0.05 or the config's).")] = None,
    n_boot: Annotated[int | None, typer.Option("--n-boot", help="Bootstrap resamples (default 10000).")] = None,
    seed: Annotated[int | None, typer.Option(help="Resampling seed (default 0).")] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Unit of resampling: auto (stored: patient, else study, else image), none, image, study, patient."
        ),
    ] = None,
    correction: Annotated[
        str | None,
        typer.Option(
            help="holm (within each task, default), bh (Benjamini-Hochberg across the metric x task grid), none."
        ),
    ] = None,
    inconclusive: Annotated[
        str | None,
        typer.Option(help="An inconclusive gate: fail (exit 3, default) or pass (exit 0)."),
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report here.")] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary here.")] = None,
    db: DbOption = DEFAULT_DB,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Non-inferiority gate with three verdicts per metric: pass (the paired-bootstrap upper bound of the
    regression is below the margin), regression (its lower bound is above the margin), inconclusive (neither).
    Exit 0 pass, 1 regression, 2 input error, 3 inconclusive (0 with --inconclusive pass), 4 hacking suspected:
    the candidate's card declares a training reward, and against the baseline the reward held while held-out
    metrics, omission rate or length got significantly worse (the Goodhart check; docs/rl-health.md).

    Also reports the gate's power: the chance that a candidate exactly as good as the baseline passes, for the
    chosen margins and the number of shared samples.

    Examples:

      evalkit gate --task phantom-report --candidate nn-retrieval --baseline normal-template --margin 0.02

      evalkit gate -t phantom-anatomy-grounding -c ./ckpt -b radvlm --config gate.yaml --junit gate.xml
      --markdown "$GITHUB_STEP_SUMMARY"

      evalkit gate -t grounding -c ./ckpt -b radvlm --margin 0.02 --correction bh --cluster patient
    """
    from pydantic import ValidationError

    from evalkit.results.store import Store
    from evalkit.views.gate import GateConfig, load_gate_config, run_gate
    from evalkit.views.gate_report import to_junit, to_markdown
    from evalkit.views.goodhart import gate_exit_code, gate_goodhart, goodhart_markdown

    try:
        settings = load_gate_config(config) if config else GateConfig()
        overrides = {
            k: v
            for k, v in {
                "margin": margin,
                "metrics": metric or None,
                "alpha": alpha,
                "n_boot": n_boot,
                "seed": seed,
                "cluster": cluster,
                "correction": correction,
                "inconclusive": inconclusive,
            }.items()
            if v is not None
        }
        try:
            settings = GateConfig.model_validate({**settings.model_dump(), **overrides})
        except ValidationError as exc:
            # Name the command-line option (or the config field) and the rule, not pydantic's dump.
            problems = []
            for item in exc.errors():
                field = str(item["loc"][0]) if item["loc"] else "?"
                where = f"--{field.replace('_', '-')}" if field in overrides else f"{config}: field '{field}'"
                problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
            raise EvalkitError("invalid gate option: " + "; ".join(problems)) from None
        with Store(db, read_only=True) as store:
            result = run_gate(store, task, candidate, baseline, settings)
            checks = gate_goodhart(store, result.tasks or [task], candidate, baseline, settings)
    except EvalkitError as exc:
        fail(exc)
    report = to_markdown(result) + goodhart_markdown(checks)
    try:
        if markdown:
            # Append: $GITHUB_STEP_SUMMARY is shared by the steps of a job.
            with open(markdown, "a", encoding="utf-8") as handle:
                handle.write(report)
        if junit:
            Path(junit).write_text(to_junit(result), encoding="utf-8")
    except OSError as exc:
        fail(EvalkitError(f"cannot write the gate report: {exc}"))
    code = gate_exit_code(result.exit_code, checks)
    if json_out:
        print(json.dumps({**result.to_json(), "goodhart": [c.to_json() for c in checks], "exit_code": code}, indent=2))
    else:
        _print(result)
        for c in checks:
            console_line = f"Goodhart check {c.task} (reward {', '.join(c.rewards)}): {c.verdict.upper()}: {c.reason}"
            wide_console().print(console_line, highlight=False, markup=False)
    raise typer.Exit(code)


_STYLE = {"pass": "green", "regression": "red", "inconclusive": "yellow"}


def _print(result) -> None:
    from evalkit.views.gate import TARGET_POWER
    from evalkit.views.gate_report import power_advice, units_line

    console = wide_console()
    grid = len(result.tasks) > 1
    table = Table(
        title=escape(f"gate {result.task}: candidate {result.candidate} vs baseline {result.baseline}"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    columns = ["metric", "n", "baseline", "candidate", "Δ", "regression bounds", "margin", "p adj", "power", "verdict"]
    for column in (["task"] if grid else []) + columns:
        table.add_column(column, justify="left" if column in ("task", "metric", "verdict") else "right", no_wrap=True)
    for v in result.verdicts:
        p = v.p_inferiority_adjusted if v.verdict == "regression" else v.p_adjusted
        table.add_row(
            *([v.task] if grid else []),
            f"{v.metric} {'↑' if v.higher_is_better else '↓'}",
            str(v.n),
            fmt(v.baseline),
            fmt(v.candidate),
            fmt(v.delta, signed=True),
            f"[{fmt(v.regression_lower)}, {fmt(v.regression_upper)}]",
            fmt(v.margin),
            fmt_p(p),
            f"{v.power:.0%}",
            f"[{_STYLE[v.verdict]}]{v.verdict}[/]",
        )
    for part in fitting(table):  # an 80-column terminal gets its deltas whole, in parts
        console.print(part)
    console.print(
        f"[bold {_STYLE[result.verdict]}]{result.verdict.upper()}[/]  alpha {result.alpha}, {result.correction} "
        f"correction, {result.n_boot} resamples, {units_line(result.verdicts)}, seed {result.seed}; power for an "
        f"unchanged candidate ≈ {result.power:.0%}; exit {result.exit_code}",
        highlight=False,
    )
    for v in result.verdicts:
        if v.verdict == "inconclusive" or v.power < TARGET_POWER:
            what = "inconclusive" if v.verdict == "inconclusive" else "underpowered"
            console.print(
                f"  {v.task + ' ' if grid else ''}{v.metric}: {what} (power {v.power:.0%}); {power_advice(v)}",
                highlight=False,
            )
    for note in result.notes:
        console.print(f"  note: {note}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)
