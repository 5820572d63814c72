"""`evalkit.evaluate`: the one way to run a model on tasks, used by the CLI, the demo, training and the scripts.

It owns the adapter's lifecycle: build it once from the adapter registry (quietly: no third-party loading
bars), `prepare` it per task (baselines fit on the task's train split), run, and `close` it at the end, also
after an error or Ctrl-C (a managed `vllm serve` is stopped there). Before anything runs it checks what would
otherwise fail late or silently: metric kinds that do not match the task, `--device cuda` without CUDA.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.model_adapters.base import Adapter
from evalkit.profiles import with_profile
from evalkit.results.store import DEFAULT_DB, Store
from evalkit.run.runner import RunSummary, data_root_default, load_samples
from evalkit.sample import Sample

TaskArg = str | TaskSpec
REPORT_KINDS = {"report_generation": "report", "grounding": "grounding"}


def resolve(model: str | ModelCard, tasks: TaskArg | Sequence[TaskArg], dataset: str | None = None):
    """(card, task specs) from names, paths or specs; names get "did you mean" hints."""
    from evalkit.registry import resolve_model, resolve_tasks

    card = model if isinstance(model, ModelCard) else resolve_model(model)
    items = [tasks] if isinstance(tasks, str | TaskSpec) else list(tasks)
    specs: list[TaskSpec] = []
    for item in items:
        specs.extend([item] if isinstance(item, TaskSpec) else resolve_tasks(item, dataset))
    if not specs:
        raise EvalkitError("no task to run")
    return card, specs


def check_metric_kinds(task: TaskSpec) -> None:
    """A report metric on a grounding task (or the reverse) would score every sample 0: refuse it up front."""
    from evalkit.metrics import metric_class

    wanted = REPORT_KINDS[task.kind]
    wrong = [m.name for m in task.metrics if metric_class(m.name).kind != wanted]
    if wrong:
        raise EvalkitError(
            f"task '{task.name}' is a {task.kind} task, but its metrics {wrong} score "
            f"{'reports' if wanted == 'grounding' else 'boxes'}; remove them from the task's 'metrics'"
        )


def check_device(device: str | None) -> None:
    if device is None or not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}"
        raise EvalkitError(
            f"--device {device}: no CUDA device is usable here ({build}"
            f"{', a CPU-only build' if torch.version.cuda is None else ''}); use --device cpu, or install a CUDA "
            "build of torch on a machine with a GPU"
        )


def build_quietly(card: ModelCard, **settings: Any) -> Adapter:
    """The card's adapter, without transformers' "Loading weights" bars on stderr (the transformers adapter
    silences its own, lazy, loading; this covers back ends that load at build time)."""
    from evalkit.model_adapters.registry import build_adapter

    if "transformers" not in sys.modules:
        return build_adapter(card, **settings)  # importing it only to silence it costs half a second
    try:
        from evalkit.model_adapters.qwen3vl_processor import quiet_progress_bars
    except ImportError:  # transformers absent: no bars to silence either
        return build_adapter(card, **settings)
    with quiet_progress_bars():
        return build_adapter(card, **settings)


def evaluate(
    model: str | ModelCard,
    tasks: TaskArg | Sequence[TaskArg],
    *,
    db: str | Path | Store = DEFAULT_DB,
    data_root: str | Path | None = None,
    dataset: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    adapter: Adapter | None = None,
    adapter_options: Mapping[str, Any] | None = None,
    samples: Sequence[Sample] | None = None,
    task_size: int | None = None,
    skip_unsupported: bool = False,
    progress: bool | str = False,
    on_summary: Callable[[RunSummary], None] | None = None,
    shard: tuple[int, int] | None = None,
    profile: str | None = None,
) -> list[RunSummary]:
    """Run a model on tasks into a results database and return one summary per task; resumes earlier runs.

    Args:
        model: Card name, shipped checkpoint name, card YAML or checkpoint folder, or a ModelCard.
        tasks: Task name, task group or task YAML path (or a TaskSpec), or a list of them.
        db: DuckDB file (created if absent) or an open Store.
        data_root: Folder holding the data sets (default: $EVALKIT_DATA_ROOT or ./data).
        dataset: For a task group, which data set's tasks; for one task, it must be that task's data set.
        limit: Only the first N samples of each task.
        batch_size: Samples per generate call and per commit (default: the adapter's, see
            evalkit.model_adapters.registry).
        device: transformers adapter: "cpu" or "cuda".
        adapter: An adapter built by the caller (kept open: the caller closes it); default: built from the card.
        adapter_options: More constructor settings (e.g. allow_remote_credentialed); each back end takes its own.
        samples: Run exactly these samples instead of loading the task's split (one task only).
        task_size: With `samples`, how many samples the task has (default: len(samples)); a run holding fewer is
            shown as partial.
        skip_unsupported: Skip tasks the model cannot answer (a report-only baseline on a grounding task)
            instead of failing.
        progress: Per-run progress on stderr: True (a bar on a terminal, plain lines elsewhere), False, or
            "rich" | "plain" | "off".
        on_summary: Called with each task's summary as soon as it is done (the CLI prints it).
        shard: (i, N): only shard i of N of each task's samples (evalkit/run/shards.py); the run id is the
            unsharded run's, so `evalkit merge` of the N shard databases holds the whole run.
        profile: Convention profile (evalkit/profiles.py) instead of each task's own: parsing rules and metric
            defaults. A run under a profile other than the task's is a run of its own (generations come from the
            cache, nothing is overwritten).

    Returns:
        The RunSummary of each task that ran, in order.

    Raises:
        EvalkitError: bad input (unknown names with suggestions, wrong metric kinds, missing data, no CUDA).
        RunInterrupted: Ctrl-C; everything generated so far is stored and the same call resumes.
    """
    from evalkit.model_adapters.registry import default_batch_size
    from evalkit.run.runner import Runner

    card, specs = resolve(model, tasks, dataset)
    specs = [with_profile(spec, profile) for spec in specs]
    if samples is not None and len(specs) != 1:
        raise EvalkitError(f"samples= goes with one task, not {len(specs)}")
    for spec in specs:
        check_metric_kinds(spec)
    check_device(device)
    root = Path(data_root) if data_root is not None else data_root_default()
    batch = batch_size if batch_size is not None else default_batch_size(card)
    if adapter is None:
        from evalkit.model_adapters.registry import adapter_entry, external_advice

        if adapter_entry(card).target is None:  # a card evalkit cannot run: say how to score its outputs
            raise EvalkitError(external_advice(card, [spec.name for spec in specs]))
    summaries: list[RunSummary] = []
    with ExitStack() as stack:
        store = db if isinstance(db, Store) else stack.enter_context(Store(Path(db)))
        if adapter is None:
            settings = {"batch_size": batch, "device": device, **(adapter_options or {})}
            adapter = build_quietly(card, **settings)
            close = getattr(adapter, "close", None)
            if callable(close):
                # Runs on success, error and Ctrl-C alike: a managed server must not outlive the run.
                stack.callback(close)
        for spec in specs:
            supports = getattr(adapter, "supports", None)
            if callable(supports) and not supports(spec):
                if skip_unsupported:
                    continue
                raise EvalkitError(f"model '{card.name}' does not answer {spec.kind} tasks such as '{spec.name}'")
            adapter.prepare(spec, lambda spec=spec: load_samples(spec, root, split="train"))
            chosen, size = (list(samples) if samples is not None else None), task_size
            if shard is not None:
                from evalkit.run.shards import shard_samples

                every = chosen if chosen is not None else load_samples(spec, root)
                chosen, size = shard_samples(every, *shard), task_size or len(every)
            runner = Runner(
                store,
                spec,
                card,
                adapter,
                data_root=root,
                samples=chosen,
                limit=limit,
                batch_size=batch,
                progress=progress,
                task_size=size,
            )
            summary = runner.run()
            summaries.append(summary)
            if on_summary is not None:
                on_summary(summary)
    return summaries
