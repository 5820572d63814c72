"""The `evalkit` command line (Typer). Exit codes: 0 ok, 1 regression shown, 2 usage or input error, 3 inconclusive."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalkit.cli._tables import folding, split_by_width
from evalkit.errors import EvalkitError
from evalkit.store import DEFAULT_DB

app = typer.Typer(
    help="Evaluate chest X-ray vision-language models: run tasks, score predictions, compare and gate checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Make synthetic data sets and real-layout fixtures.", no_args_is_help=True)
app.add_typer(data_app, name="data")
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


def _fail(exc: EvalkitError) -> None:
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _summary_line(summary) -> str:
    """One run's outcome; `cached` counts content-cache hits and samples an earlier run of this pair kept."""
    from evalkit.metrics import is_diagnostic

    kept = f", {summary.reused} kept from the last run" if summary.reused else ""
    hidden = [k for k in summary.metrics if is_diagnostic(k)]  # RL-health diagnostics: `evalkit health` shows them
    metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in summary.metrics.items() if k not in hidden)
    if hidden:
        metrics += f" [dim](+{len(hidden)} RL-health diagnostics: evalkit health)[/]"
    unavailable = "".join(
        f"\n    {k}: {_unavailable_line(v)}" for k, v in summary.unavailable.items() if not is_diagnostic(k)
    )
    return (
        f"[bold]{escape(summary.task)}[/] · {escape(summary.model)}: n={_n_of(summary)} generated={summary.generated} "
        f"cached={summary.from_cache + summary.reused}{kept} errors={summary.errors} "
        f"parse_failures={summary.parse_failures} ({summary.seconds:.1f}s)\n    {metrics}{unavailable}"
    )


def _unavailable_line(reason: str) -> str:
    """One line per unavailable metric in a run summary; the full reason (where to put weights) is in
    `evalkit metrics`."""
    first = reason.split(";")[0].split(" (")[0].strip()
    first = first if len(first) <= 60 else first[:59] + "…"
    return f"[dim]unavailable ({escape(first)}; see `evalkit metrics`)[/]"


def _interrupted(exc: KeyboardInterrupt) -> None:
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


def _n_of(summary) -> str:
    """'16/16', or '5/16 (partial)': samples the run holds against the task's size."""
    n = f"{summary.n_samples}/{summary.task_size}"
    return f"{n} [yellow](partial)[/]" if summary.partial else n


def _print_summary(summary, limit: int | None) -> None:
    console.print(_summary_line(summary), highlight=False)
    _print_run_notes(summary, limit)


def _print_run_notes(summary, limit: int | None) -> None:
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


@app.command()
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Card name, card YAML path or checkpoint folder.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name, task group or task YAML path.")],
    db: DbOption = DEFAULT_DB,
    data_root: DataRootOption = None,
    dataset: Annotated[str | None, typer.Option(help="For a task group: which data set's tasks.")] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Generate at most the first N samples of each task (values cover every sample the run holds).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            "-b",
            help="Samples per generate call and per commit (default: vllm 256, openai 64, else 16).",
        ),
    ] = None,
    device: Annotated[str | None, typer.Option(help="transformers adapter: cpu or cuda.")] = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Back end instead of the card's: vllm | openai | transformers.")
    ] = None,
    tp: Annotated[int | None, typer.Option("--tp", min=1, help="vLLM tensor parallel size (GPUs per replica).")] = None,
    dp: Annotated[
        int | None, typer.Option("--dp", min=1, help="vLLM data parallel size (replicas; >1 runs `vllm serve`).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option("--max-pixels", min=1, help="Image pixel cap (part of the model fingerprint).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    allow_remote_credentialed: Annotated[
        bool,
        typer.Option(
            "--allow-remote-credentialed",
            help="Allow credentialed (PhysioNet) tasks on a non-local --endpoint; only for a server you control "
            "under the data use agreement.",
        ),
    ] = False,
    transform: Annotated[
        list[str] | None,
        typer.Option(
            "--transform",
            help="Run the derived task TASK@NAME instead (repeatable): blank, noise, shuffle or hflip "
            "(docs/image-reliance.md).",
        ),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/N: only shard i (from 0) of N, by a hash of the sample id.")
    ] = None,
    profile: ProfileOption = None,
) -> None:
    """Run a model on a task (or task group); resumes where an earlier run of the same pair stopped.

    The card gives the back end and its settings; --adapter, --tp, --dp, --max-pixels and --endpoint override
    them for this run. Parallelism and the endpoint do not change the model fingerprint (same run, same cache);
    --adapter and --max-pixels do.

    Examples:

      evalkit run --model nn-retrieval --task phantom-report

      evalkit run --model radvlm-grpo --task grounding --data-root /data/cxr --tp 4

      evalkit run --model qwen3-vl-8b-instruct --task grounding --adapter openai --endpoint http://127.0.0.1:8000/v1

      evalkit run --model ./checkpoints/sft --task phantom-grounding --limit 50

      evalkit run --model nn-retrieval --task phantom-report --transform blank
    """
    from evalkit.model_adapters.base import card_with_overrides
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.evaluate import check_device, evaluate

    try:
        check_device(device)
        shard_of_task = _shard(shard)
        tasks = resolve_tasks(task, dataset)
        if transform:
            from evalkit.transforms.tasks import derive_task

            tasks = [derive_task(t, name) for name in transform for t in tasks]
        card = card_with_overrides(
            resolve_model(model),
            adapter=adapter,
            tensor_parallel_size=tp,
            data_parallel_size=dp,
            max_pixels=max_pixels,
            endpoint=endpoint,
        )
        evaluate(
            card,
            tasks,
            db=db,
            data_root=data_root,
            limit=limit,
            batch_size=batch_size,
            device=device,
            adapter_options={"allow_remote_credentialed": allow_remote_credentialed},
            progress=True,
            on_summary=lambda summary: _print_summary(summary, limit),
            shard=shard_of_task,
            profile=profile,
        )
        if card.reference:  # a reference row's numbers are the point of the run: show them with their CIs
            _print_reference_rows(db, [t.name for t in tasks], card.name)
    except EvalkitError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        _interrupted(exc)


def _shard(text: str | None) -> tuple[int, int] | None:
    from evalkit.run.shards import parse_shard

    return None if text is None else parse_shard(text)


def _print_reference_rows(db: Path, task_names: list[str], model: str) -> None:
    from evalkit.store import Store
    from evalkit.views.leaderboard import leaderboard_rows

    with Store(db, read_only=True) as store:
        _print_leaderboard([row for name in task_names for row in leaderboard_rows(store, name, model)])


@app.command()
def score(
    task: Annotated[str | None, typer.Option("--task", "-t", help="Task the predictions answer.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="JSONL: one {sample_id, prediction} per line.")] = None,
    model_name: Annotated[str | None, typer.Option("--model-name", help="Name shown on the leaderboard.")] = None,
    box_format: Annotated[str, typer.Option(help="unit01 | qwen1000 | pixels_resized | pixels")] = "unit01",
    thinking: Annotated[str, typer.Option(help="none | tags | suffix")] = "none",
    db: DbOption = DEFAULT_DB,
    data_root: DataRootOption = None,
    pairs: Annotated[
        Path | None, typer.Option(help="JSONL of free report pairs: one {reference, prediction} per line (no task).")
    ] = None,
    metric_names: Annotated[
        str | None,
        typer.Option("--metrics", help="With --pairs: comma-separated metrics (default: all report metrics)."),
    ] = None,
    metric_options: Annotated[
        Path | None, typer.Option(help="With --pairs: YAML/JSON file {metric: {option: value}} (weights paths...).")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="With --pairs: print {metrics, per_sample} as JSON.")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="auto | jsonl | json | csv | parquet | datasets")] = "auto",
    preset: Annotated[
        str | None, typer.Option(help="A tool's layout: lmms-eval | rexrank | radvlm-grpo | radeval | evalkit.")
    ] = None,
    id_field: Annotated[str | None, typer.Option("--id-field", help="Field holding the sample id.")] = None,
    prediction_field: Annotated[
        str | None, typer.Option("--prediction-field", help="Field holding the prediction.")
    ] = None,
    reference_field: Annotated[
        str | None, typer.Option("--reference-field", help="With --pairs: field holding the reference.")
    ] = None,
    ignore_unknown: Annotated[
        bool,
        typer.Option("--ignore-unknown", help="Score the ids the file shares with the task; leave the others out."),
    ] = False,
    shard: Annotated[
        str | None, typer.Option("--shard", help="i/N: score only shard i (from 0) of N of the task's samples.")
    ] = None,
    parent: Annotated[
        str | None, typer.Option("--parent", help="Model the predictions' checkpoint was trained from (RL health).")
    ] = None,
    reward: Annotated[
        list[str] | None, typer.Option("--reward", help="Its training reward metric (repeatable; Goodhart check).")
    ] = None,
    profile: ProfileOption = None,
) -> None:
    """Score predictions made elsewhere against a task's references, or free report pairs (--pairs).

    Files may be JSON lines, a JSON array, a JSON object keyed by id, CSV, Parquet or a `datasets` folder;
    --preset reads a tool's own output (docs/importing.md).

    Examples:

      evalkit score --task phantom-report --predictions preds.jsonl --model-name my-model

      evalkit score --pairs pairs.jsonl --metrics rouge_l,bleu_4,bertscore

      evalkit score --pairs pairs.jsonl --json > scores.json
    """
    from evalkit.config import BOX_FORMATS, Lineage, ModelCard
    from evalkit.model_adapters.predictions import PredictionsAdapter
    from evalkit.registry import resolve_tasks
    from evalkit.run.evaluate import evaluate
    from evalkit.run.runner import data_root_default, load_samples

    if pairs is not None:
        extra = [flag for flag, value in (("--task", task), ("--predictions", predictions)) if value is not None]
        if extra:
            _fail(EvalkitError(f"{' and '.join(extra)} cannot go with --pairs: free pairs have no task"))
        layout = (fmt, preset, id_field, prediction_field, reference_field)
        _score_pairs(pairs, metric_names, metric_options, db, json_out, layout, profile)
        return
    try:
        from evalkit.readers import read_predictions_file, resolve_fields

        layout = resolve_fields(preset, id_field, prediction_field, reference_field)
        if task is None or predictions is None or model_name is None:
            raise EvalkitError("give --task, --predictions and --model-name (or --pairs FILE.jsonl for free pairs)")
        if metric_names or metric_options or json_out:
            raise EvalkitError("--metrics, --metric-options and --json go with --pairs; a task lists its own metrics")
        if box_format not in BOX_FORMATS:
            raise EvalkitError(f"--box-format must be one of {', '.join(BOX_FORMATS)}, not '{box_format}'")
        if thinking not in ("none", "tags", "suffix"):
            raise EvalkitError(f"--thinking must be none, tags or suffix, not '{thinking}'")
        specs = resolve_tasks(task)
        if len(specs) != 1:
            raise EvalkitError(f"--task must name one task, '{task}' is a group of {len(specs)}")
        spec = specs[0]
        _check_external_name(model_name)
        root = data_root or data_root_default()
        # The file is checked before the task's samples are loaded, unless its ids are row numbers of the task.
        samples = load_samples(spec, root) if layout.id_kind == "position" else None
        preds = read_predictions_file(predictions, fmt, layout, samples and [s.sample_id for s in samples])
        if not preds:
            raise EvalkitError(
                f"{predictions}: no predictions (expected records with '{layout.fields.id or 'sample_id'}' and "
                f"'{layout.fields.prediction}'); nothing was scored or stored"
            )
        samples = samples if samples is not None else load_samples(spec, root)
        known = {s.sample_id for s in samples}
        unknown = [sid for sid in preds if sid not in known]
        if unknown and ignore_unknown:
            err.print(
                f"--ignore-unknown: left out {len(unknown)} of {len(preds)} predictions whose ids are not in task "
                f"'{spec.name}' (e.g. {unknown[:3]}); the run is partial",
                highlight=False,
                soft_wrap=True,
            )
            preds = {k: v for k, v in preds.items() if k in known}
            if not preds:
                raise EvalkitError(f"{predictions}: no id is in task '{spec.name}'; nothing was scored or stored")
        elif unknown:
            raise EvalkitError(
                f"{predictions}: {len(unknown)} sample_id(s) not in task '{spec.name}', e.g. {unknown[:3]} "
                "(--ignore-unknown scores the others)"
            )
        card = ModelCard(
            name=model_name,
            adapter="external",
            checkpoint=str(predictions),
            box_format=box_format,
            thinking=thinking,
            # 0-1000 answers are Qwen's: its JSON convention where the profile follows the card (evalkit)
            answer_convention="qwen3vl_json" if box_format == "qwen1000" else None,
            description=f"predictions from {predictions}",
            lineage=Lineage(parent=parent, rewards=reward or []) if parent or reward else None,
        )
        if spec.parser == "boxes":
            _warn_box_scale(predictions, preds, box_format)
        adapter = PredictionsAdapter(card, preds)
        chosen = [s for s in samples if s.sample_id in preds]
        if shard is not None:
            from evalkit.run.shards import shard_samples

            chosen = shard_samples(chosen, *_shard(shard))
        (summary,) = evaluate(
            card,
            spec,
            db=db,
            data_root=root,
            adapter=adapter,
            samples=chosen,
            batch_size=256,
            task_size=len(samples),
            profile=profile,
        )
        missing = len(samples) - len(chosen) if shard is None else 0
        console.print(
            f"[bold]{spec.name}[/] · {escape(model_name)}: scored and stored {summary.n_samples} predictions in {db} "
            f"(run {summary.run_id}, n={_n_of(summary)})"
            + (f"; {missing} task samples had no prediction" if missing else "")
            + (f"; shard {shard}" if shard else ""),
            highlight=False,
        )
        for name, value in summary.metrics.items():
            console.print(f"  {name}: {_fmt(value)}")
        for name, reason in summary.unavailable.items():
            console.print(f"  {name}: {_unavailable_line(reason)}", highlight=False)
        _print_run_notes(summary, None)
    except EvalkitError as exc:
        _fail(exc)


def _warn_box_scale(path: Path, preds: dict[str, str], box_format: str) -> None:
    """Boxes written as fractions but read on a 0-1000 grid (or in pixels) parse fine and score 0 everywhere:
    say so before scoring."""
    import re

    numbers = [float(x) for text in preds.values() for x in re.findall(r"\d+(?:\.\d+)?", text)]
    if box_format != "unit01" and len(numbers) >= 4 and max(numbers) <= 1.0:
        err.print(
            f"warning: every coordinate in {path} is between 0 and 1 (fractions of the image), but --box-format "
            f"{box_format} does not read them as fractions; pass --box-format unit01 if they are",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _check_external_name(name: str) -> None:
    """Predictions made elsewhere must not take a card's name: on the leaderboard they would pass for (or hide)
    `evalkit run --model NAME`'s results."""
    from evalkit.registry import all_cards

    if name in all_cards():
        raise EvalkitError(
            f"--model-name '{name}' is the name of a model card; predictions made elsewhere need a name of their "
            f"own, e.g. --model-name '{name}-external'; nothing was scored or stored"
        )


def _score_pairs(
    path: Path,
    metric_names: str | None,
    options_file: Path | None,
    db: Path,
    json_out: bool,
    layout: tuple = (),
    profile: str | None = None,
) -> None:
    from evalkit.config import load_yaml
    from evalkit.metrics import metric_class
    from evalkit.readers import read_pairs_file, resolve_fields
    from evalkit.run.pairs import score_reports

    try:
        fmt, preset, *fields = layout or ("auto", None)
        refs, preds = read_pairs_file(path, fmt, resolve_fields(preset, *fields))
        names = [m.strip() for m in metric_names.split(",") if m.strip()] if metric_names else None
        options = load_yaml(options_file) if options_file else {}
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise EvalkitError(f"{options_file}: expected a mapping of metric name -> options mapping")
        result = score_reports(refs, preds, names, options=options, db=db, profile=profile)
    except EvalkitError as exc:
        _fail(exc)
    if json_out:
        print(_json_dump(result))
        return
    intervals = result.intervals(n_boot=10_000) if len(refs) > 1 else {}
    table = Table("metric", "direction", "value", "95% CI", title=f"{path} · {len(refs)} pairs", title_justify="left")
    for name, value in result.metrics.items():
        low, high = intervals.get(name, (None, None))
        ci = "—" if low is None else f"[{_fmt(low)}, {_fmt(high)}]"
        table.add_row(name, "↑" if metric_class(name).higher_is_better else "↓", _fmt(value), ci)
    console.print(table)
    for name, reason in result.unavailable.items():
        console.print(f"  {name}: {_unavailable_line(reason)}", highlight=False)
    console.print("CI: percentile bootstrap over pairs, 10,000 resamples of the stored per-pair statistics.")


def _json_dump(result) -> str:
    """JSON with NaN written as null, so the output parses everywhere."""
    from evalkit.store import dumps

    return dumps(result.to_json())


@app.command()
def tasks(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List tasks and task groups."""
    from evalkit.registry import all_tasks, task_groups

    try:
        specs = all_tasks()
    except EvalkitError as exc:
        _fail(exc)
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


@app.command()
def models(json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List model cards."""
    from evalkit.registry import all_cards

    try:
        cards = all_cards()
    except EvalkitError as exc:
        _fail(exc)
    if json_out:
        print(json.dumps([c.model_dump() for c in cards.values()], indent=2))
        return
    # The source citation is long prose: shown on wide consoles, left to `--json` on narrow ones.
    wide = console.width >= 120
    table = Table("model", "adapter", "checkpoint", "box format", "thinking", *(["source"] if wide else []))
    for c in cards.values():
        table.add_row(c.name, c.adapter, c.checkpoint, c.box_format, c.thinking, *([c.source[:60]] if wide else []))
    console.print(folding(table, whole=(0, 1, 3, 4)))


@app.command()
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
        _fail(exc)

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


@app.command()
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
    from evalkit.store import Store
    from evalkit.views.leaderboard import PAPER_STYLES, leaderboard_rows, paper_tables, with_profile_labels

    try:
        if profile is not None:
            get_profile(profile)
        if style is not None and style not in PAPER_STYLES:
            raise EvalkitError(f"--style must be one of {', '.join(PAPER_STYLES)}, not '{style}'")
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
        _fail(exc)
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
    _print_leaderboard(with_profile_labels(rows), diagnostics=diagnostics)


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


def _print_leaderboard(rows: list[dict], diagnostics: bool = False) -> None:
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
                    column.append(_fmt(r["value"]) + ci)
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


@app.command()
def export(
    db: DbOption = DEFAULT_DB,
    task: Annotated[str | None, typer.Option("--task", "-t")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl | csv | parquet")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Output file (default: stdout for jsonl/csv).")] = None,
) -> None:
    """Write one row per (run, sample): prediction, reference, boxes, error and every metric's score."""
    from evalkit.store import Store
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
        _fail(exc)


@app.command()
def demo(
    db: DbOption = DEFAULT_DB,
    data_root: DataRootOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N samples of each task.")] = None,
    tiny_model: Annotated[
        bool, typer.Option(help="Also build and run a tiny random Qwen3-VL (transformers path).")
    ] = True,
) -> None:
    """Make the phantom set if absent, run every baseline (and local model) on every phantom task, print the
    leaderboard. Runs offline on a CPU in a few minutes."""
    from evalkit.cli.demo import run_demo

    try:
        rows = run_demo(db, data_root, limit=limit, tiny_model=tiny_model, console=console)
    except EvalkitError as exc:
        _fail(exc)
    except KeyboardInterrupt as exc:
        _demo_interrupted(exc, db)
    _print_leaderboard(rows)


def _demo_interrupted(exc: KeyboardInterrupt, db: Path) -> None:
    """Ctrl-C between two of the demo's runs: say what the file holds (every finished run is reused)."""
    from evalkit.errors import RunInterrupted
    from evalkit.results.queries import run_counts
    from evalkit.store import Store

    if isinstance(exc, RunInterrupted) or not Path(db).exists():
        _interrupted(exc)
    try:
        with Store(db, read_only=True) as store:
            runs, samples = run_counts(store)
    except EvalkitError:
        _interrupted(exc)
    err.print(
        f"interrupted: {db} holds {runs} run(s), {samples} samples; run `evalkit demo` again to resume (stored "
        "samples are reused, not generated again).",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    raise typer.Exit(130)


@data_app.command("phantom")
def data_phantom(
    out: Annotated[Path, typer.Option(help="Folder for the phantom set.")] = Path("data/phantom"),
    mimic_layout: Annotated[Path | None, typer.Option(help="Also write it in the MIMIC-CXR-JPG layout here.")] = None,
    ms_cxr_layout: Annotated[Path | None, typer.Option(help="Also write it in the MS-CXR layout here.")] = None,
) -> None:
    """Generate the synthetic phantom chest X-ray set (and, optionally, real-layout copies for loader tests)."""
    from evalkit.data.phantom import ensure_phantom, write_mimic_cxr_layout, write_ms_cxr_layout

    try:
        for flag, folder in (("--out", out), ("--mimic-layout", mimic_layout), ("--ms-cxr-layout", ms_cxr_layout)):
            if folder is not None and folder.exists() and not folder.is_dir():
                raise EvalkitError(f"{flag} {folder} is a file; give a folder (it is created if absent)")
        try:
            err.print(f"making the phantom set at {out} ...", highlight=False)
            root = ensure_phantom(out)
            console.print(f"phantom set at {root}")
            if mimic_layout:
                console.print(f"MIMIC-CXR-JPG layout at {write_mimic_cxr_layout(root, mimic_layout)}")
            if ms_cxr_layout:
                console.print(f"MS-CXR layout at {write_ms_cxr_layout(root, ms_cxr_layout)}")
        except OSError as exc:
            raise EvalkitError(f"{exc.filename or out}: cannot write the phantom set ({exc.strerror or exc})") from None
    except EvalkitError as exc:
        _fail(exc)


@data_app.command("public-annotations")
def data_public_annotations(
    out: Annotated[Path, typer.Option(help="Data root to lay the files out in (pass it as --data-root).")] = Path(
        "data"
    ),
    link: Annotated[bool, typer.Option(help="Symlink the package's files instead of copying them.")] = False,
) -> None:
    """Lay out the real annotation files torchxrayvision ships (NIH boxes, IU X-ray reports, VinDr-CXR train boxes,
    PadChest's label table) in the folders the loaders read, so the real-data tasks load before any image exists.

    Needs `pip install --no-deps torchxrayvision==1.5.7` (never imported). Examples:

      evalkit data public-annotations --out data

      evalkit run --model radiologist --task vindr-reader-agreement --data-root data
    """
    from evalkit.data.public_annotations import FILES, write_public_annotations

    try:
        written = write_public_annotations(out, link=link)
    except EvalkitError as exc:
        _fail(exc)
    for item, path in zip(FILES, written, strict=True):
        console.print(f"{path}  [dim]{item.dataset}; {item.licence}[/]", highlight=False)
    console.print(
        "VinDr-CXR and PadChest rows are credentialed data: keep them on this disk, out of repositories and public "
        "sites. Tasks: nih-cxr14-bbox-grounding, iu-xray-report (images: your own downloads), "
        "vindr-reader-agreement (no images)."
    )


# Command families beyond the core ones above, one module each with `register(app)`, in help order.
COMMAND_FAMILIES = ("doctor", "gate", "health", "merge", "published", "reliance", "samples", "site", "stats", "train")


def _register_command_modules() -> None:
    import importlib

    for name in COMMAND_FAMILIES:
        importlib.import_module(f"evalkit.cli.{name}").register(app)


_register_command_modules()


def main() -> None:
    app()
