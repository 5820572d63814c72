"""`evalkit run` (a model on tasks) and `evalkit score` (a file of predictions or report pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from evalkit.cli._common import (
    DataRootOption,
    DbOption,
    ProfileOption,
    console,
    err,
    fail,
    fmt_value,
    interrupted,
    n_of,
    print_run_notes,
    print_summary,
    unavailable_line,
)
from evalkit.cli.leaderboard import print_leaderboard
from evalkit.errors import EvalkitError
from evalkit.results.store import DEFAULT_DB


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
            on_summary=lambda summary: print_summary(summary, limit),
            shard=shard_of_task,
            profile=profile,
        )
        if card.reference:  # a reference row's numbers are the point of the run: show them with their CIs
            _print_reference_rows(db, [t.name for t in tasks], card.name)
    except EvalkitError as exc:
        fail(exc)
    except KeyboardInterrupt as exc:
        interrupted(exc)


def _shard(text: str | None) -> tuple[int, int] | None:
    from evalkit.run.shards import parse_shard

    return None if text is None else parse_shard(text)


def _print_reference_rows(db: Path, task_names: list[str], model: str) -> None:
    from evalkit.results.store import Store
    from evalkit.views.leaderboard import leaderboard_rows

    with Store(db, read_only=True) as store:
        print_leaderboard([row for name in task_names for row in leaderboard_rows(store, name, model)])


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
            fail(EvalkitError(f"{' and '.join(extra)} cannot go with --pairs: free pairs have no task"))
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
            f"(run {summary.run_id}, n={n_of(summary)})"
            + (f"; {missing} task samples had no prediction" if missing else "")
            + (f"; shard {shard}" if shard else ""),
            highlight=False,
        )
        for name, value in summary.metrics.items():
            console.print(f"  {name}: {fmt_value(value)}")
        for name, reason in summary.unavailable.items():
            console.print(f"  {name}: {unavailable_line(reason)}", highlight=False)
        print_run_notes(summary, None)
    except EvalkitError as exc:
        fail(exc)


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
        fail(exc)
    if json_out:
        print(_json_dump(result))
        return
    intervals = result.intervals(n_boot=10_000) if len(refs) > 1 else {}
    table = Table("metric", "direction", "value", "95% CI", title=f"{path} · {len(refs)} pairs", title_justify="left")
    for name, value in result.metrics.items():
        low, high = intervals.get(name, (None, None))
        ci = "—" if low is None else f"[{fmt_value(low)}, {fmt_value(high)}]"
        table.add_row(name, "↑" if metric_class(name).higher_is_better else "↓", fmt_value(value), ci)
    console.print(table)
    for name, reason in result.unavailable.items():
        console.print(f"  {name}: {unavailable_line(reason)}", highlight=False)
    console.print("CI: percentile bootstrap over pairs, 10,000 resamples of the stored per-pair statistics.")


def _json_dump(result) -> str:
    """JSON with NaN written as null, so the output parses everywhere."""
    from evalkit.results.store import dumps

    return dumps(result.to_json())


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    app.command()(run)
    app.command()(score)
