"""Leaderboard rows from stored aggregates: per (task, model) the run `display_runs` picks, with bootstrap 95% CIs.

Everything shown comes from the database (what each run stored: direction, primary metric, n, task size,
failed samples), so an old file renders the same after task YAML files change or disappear.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from evalkit.profiles import DEFAULT_PROFILE
from evalkit.results.queries import display_runs, failure_counts, parse_failure_counts, run_metrics_of, task_spec
from evalkit.results.store import Store, loads
from evalkit.views.paper_layouts import paper_layout

if TYPE_CHECKING:
    from evalkit.published import PublishedRecord


def latest_runs(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The run shown for each (task, model): the latest full run, else the latest partial one (flagged)."""
    return display_runs(store, task, model)


def one_run_per_model(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, model), the run under the task's own profile where there is one, else the `--profile` run: for
    views keyed by model name (the site), which show a run under another profile only when it is the only one."""
    own = {(r["task"], r["model"]) for r in runs if not r.get("profile")}
    seen: set[tuple[str, str]] = set()
    out = []
    for r in runs:
        key = (r["task"], r["model"])
        if (r.get("profile") and key in own) or key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def leaderboard_rows(
    store: Store,
    task: str | None = None,
    model: str | None = None,
    *,
    ci: bool = True,
    n_boot: int | None = None,
    seed: int = 0,
    cluster: str = "auto",
    profile: str | None = None,
) -> list[dict[str, Any]]:
    """One row per (task, model, metric): value, n, task size, direction, availability, primary flag, whether
    the run is partial and how many of its samples failed.

    `reference` is the label of a reference row (a card with `reference`, e.g. inter-reader agreement), which
    tables show apart from the ranked models; None for a model.

    With `ci`, `ci_low`/`ci_high` are percentile-bootstrap 95% bounds from the stored per-sample scores under
    the same identity and on the same samples as the value, as the run stored them when it finished
    (evalkit.results.intervals; computed now only where none is stored for these settings or it is stale); None where a
    metric has no scores. `n_boot` defaults to the stored CIs' resamples.
    `ci_unit` says what they resampled ("by patient (212 clusters)"); `cluster` picks the unit
    (evalkit.stats.load_clustering). `profile`: only runs made under that convention profile (`profile` in a row
    is None for a run under its task's own profile, else the profile it was run under).
    """
    from evalkit.registry import all_cards
    from evalkit.results.intervals import DISPLAY_N_BOOT, runs_cis
    from evalkit.stats import unit_text
    from evalkit.views.published_compare import published_names

    rows: list[dict[str, Any]] = []
    runs = latest_runs(store, task, model)
    if profile is not None:
        runs = [r for r in runs if run_profile(r) == profile]
    run_ids = [r["run_id"] for r in runs]
    failures = failure_counts(store, run_ids)
    unparsed = parse_failure_counts(store, run_ids)
    # Every run's metric rows and stored CIs in one query each, and today's cards read once (not once per run).
    metrics_of = run_metrics_of(store, run_ids)
    cis = (
        runs_cis(store, runs, n_boot=n_boot or DISPLAY_N_BOOT, seed=seed, cluster=cluster, metrics_of=metrics_of)
        if ci
        else {}
    )
    cards = functools.cache(all_cards)
    for run in runs:
        reference = reference_label(run)
        kind = task_spec(run).get("kind")
        bounds = cis.get(run["run_id"], {})
        names = published_names(run, cards)
        for m in metrics_of[run["run_id"]]:
            name = m["metric"]
            rows.append(
                {
                    "task": run["task"],
                    "kind": kind,  # as the run stored it (report_generation | grounding)
                    "model": run["model"],
                    "profile": run.get("profile"),  # None: the task's own profile; else the run's --profile
                    "metric": name,
                    "value": m["value"],
                    "n": m["n"],
                    "task_size": run["task_size"],
                    "n_samples": run["n_samples"],
                    "partial": run["partial"],
                    "failed_samples": failures[run["run_id"]],
                    "parse_failures": unparsed[run["run_id"]],  # answers the parser could not read
                    "errored_samples": m["errored"],  # how they count: zero (in n, as empty answers) or exclude
                    "ci_low": _finite(bounds[name].ci_low) if name in bounds else None,
                    "ci_high": _finite(bounds[name].ci_high) if name in bounds else None,
                    "ci_unit": unit_text(bounds[name].unit, bounds[name].n_clusters) if name in bounds else None,
                    "higher_is_better": m["higher_is_better"],
                    "status": m["status"],
                    "reason": m["reason"],
                    "primary": m["is_primary"],
                    "run_id": run["run_id"],
                    "run_status": run["status"],
                    "reference": reference,
                    "run_profile": run_profile(run),  # the convention profile the run's numbers follow
                    "published_as": names,  # the card's rows in the ledger of published results
                }
            )
    return rows


def run_profile(run: dict[str, Any]) -> str:
    """The convention profile a run was made under (its stored task spec; runs older than profiles: evalkit's)."""
    return str(task_spec(run).get("profile") or DEFAULT_PROFILE)


def with_profile_labels(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a run under another profile than its task's own name it after the model ("m · profile evalkit"), so
    the two runs of one model on one task are two rows of a table."""
    return [{**r, "model": f"{r['model']} · profile {r['profile']}"} if r.get("profile") else r for r in rows]


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def reference_label(run: dict[str, Any]) -> str | None:
    """The stored card's `reference` label: a reference row (e.g. radiologists), not a model to rank."""
    card = loads(run.get("card"), {}) or {}
    label = card.get("reference") if isinstance(card, dict) else None
    return str(label) if label else None


# --- paper-table views (`evalkit leaderboard --style NAME`) -------------------------------------------------------


def paper_tables(
    rows: list[dict[str, Any]], style: str = "radvlm-grpo", published: Sequence[PublishedRecord] = ()
) -> list[dict[str, Any]]:
    """Leaderboard rows re-laid as the paper prints them: [{title, columns, rows: [[model, cell...]]}].

    Report tasks give one table each (Table 1 columns + Table 3's ANC); grounding tasks share one table with a
    mAP@0.5 column per task (Table 2). Cells are formatted strings ("—" when the model has no such score,
    "n/a" when the metric was unavailable, "12.3 (partial 39/100)" for a run holding fewer samples than the task:
    never a number that passes for the paper's full-set one). Models are ordered by name, as a paper table is; a
    run under another profile than its task's own is a row of its own, labelled with the profile.

    With `published` records, a table where some run's card names a published row also gets `reported`
    (evalkit.views.published_compare.reported_block): the published values beside the runs with verdicts; never ranked.
    """
    layout = paper_layout(style)  # published/layouts/<style>.yaml
    rows = with_profile_labels(rows)
    kinds = {r["task"]: r.get("kind") for r in rows}  # the stored task spec's kind, never today's YAML
    cells = {(r["task"], r["model"], r["metric"]): r for r in rows}

    def cell(task: str, model: str, metric: str, scale: float, decimals: int) -> str:
        r = cells.get((task, model, metric))
        if r is None:
            return "—"
        if r["status"] == "unavailable" or r["value"] is None:
            return "n/a"
        # Table 3's star: the model was trained with this metric as its reward (goodhart.mark_rewarded).
        text = f"{r['value'] * scale:.{decimals}f}" + ("*" if r.get("rewarded") else "")
        return f"{text} (partial {r['n_samples']}/{r['task_size']})" if r.get("partial") else text

    out: list[dict[str, Any]] = []
    report_tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if kinds[t] not in (None, "grounding")]
    columns = layout.report.columns if layout.report else []
    for task in report_tasks if layout.report else []:
        models = sorted({r["model"] for r in rows if r["task"] == task})
        out.append(
            {
                "title": layout.report.title.replace("{task}", task),
                "columns": ["Model", *(c.label for c in columns)],
                "rows": [[m, *(cell(task, m, c.metric, c.scale, c.decimals) for c in columns)] for m in models],
            }
        )
        _attach_reported(out[-1], [(task, c.metric) for c in columns], rows, published)
    g = layout.grounding
    grounding = [t for t in (g.tasks if g else {}) if any(r["task"] == t for r in rows)]
    grounding += sorted(t for t in {r["task"] for r in rows} if kinds[t] == "grounding" and t not in grounding)
    if g and grounding:
        models = sorted({r["model"] for r in rows if r["task"] in grounding})
        out.append(
            {
                "title": g.title,
                "columns": ["Model", *(g.tasks.get(t, t) for t in grounding)],
                "rows": [[m, *(cell(t, m, g.metric, g.scale, g.decimals) for t in grounding)] for m in models],
            }
        )
        _attach_reported(out[-1], [(t, g.metric) for t in grounding], rows, published)
    return out


def _attach_reported(
    table: dict[str, Any], columns: list[tuple[str, str]], rows: list[dict[str, Any]], published: Sequence[Any]
) -> None:
    from evalkit.views.published_compare import numbers_from_rows, reported_block

    tasks = {t for t, _ in columns}
    mine = [r for r in rows if r["task"] in tasks]
    names = {r["model"]: r.get("published_as") or [] for r in mine}
    block = reported_block(columns, numbers_from_rows(mine), names, published) if published else None
    if block:
        table["reported"] = block
