"""A published number beside a re-run: the difference, the run's 95% CI and a verdict.

- *reproduced*: some value that prints as the published cell (its value +- half a unit of the last printed digit)
  lies inside the run's clustered 95% CI;
- *differs*: it lies outside, and the gap is given in CI widths (published minus run, over the CI's width);
- *not comparable*: the numbers are not of the same thing, and the reason is named (another task or split,
  another sample count, a partial run, another convention profile, a metric evalkit does not compute, no CI).

A run matches a record when the run's task is the record's task and the run's card names the record's model in
`published_as` (evalkit/model_adapters/cards/*.yaml). Published rows are shown beside runs, never ranked among them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evalkit.published import UNKNOWN, PublishedRecord

REPRODUCED, DIFFERS, NOT_COMPARABLE = "reproduced", "differs", "not comparable"


@dataclass(frozen=True)
class RunNumber:
    """What a run stored for one metric, as the comparison needs it (from a leaderboard row or the site)."""

    task: str
    model: str
    run_id: str
    metric: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    task_size: int | None
    partial: bool
    profile: str
    status: str = "ok"
    ci_unit: str | None = None


@dataclass(frozen=True)
class Comparison:
    """A record beside a run. Values are on the record's printed scale (x100, raw...) so they read as the paper."""

    record: PublishedRecord
    run: RunNumber
    verdict: str
    reason: str
    published: float
    run_value: float | None
    difference: float | None  # run minus published, printed scale
    ci_low: float | None
    ci_high: float | None
    gap_ci_widths: float | None  # published minus run, in CI widths (differs only)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["record"] = {k: v for k, v in self.record.as_dict().items() if k != "origin"}
        return d

    def short(self) -> str:
        """A table cell: `reproduced`, `differs (+2.3 CI)` or `not comparable: <why>`."""
        if self.verdict == DIFFERS:
            return f"differs ({self.gap_ci_widths:+.1f} CI)" if self.gap_ci_widths is not None else "differs"
        if self.verdict == NOT_COMPARABLE:
            return f"not comparable: {self.reason}"
        return self.verdict


def judge(record: PublishedRecord, run: RunNumber) -> Comparison:
    """The verdict for one published cell beside one run's number (see the module docstring)."""
    reason = _incomparable(record, run)
    printed = record.value
    value = run.value if run.value is not None and math.isfinite(run.value) else None
    shown = record.as_printed(value) if value is not None else None
    low, high = _printed_ci(record, run)
    diff = None if shown is None else round(shown - printed, 10)
    if reason:
        return Comparison(record, run, NOT_COMPARABLE, reason, printed, shown, diff, low, high, None)
    lo, hi = record.evalkit_range()
    assert run.ci_low is not None and run.ci_high is not None  # _incomparable checked
    if lo <= run.ci_high and hi >= run.ci_low:
        return Comparison(record, run, REPRODUCED, "inside the 95% CI", printed, shown, diff, low, high, None)
    width = run.ci_high - run.ci_low
    if width <= 0:  # every resample gave the same value (a constant answer): no width to measure the gap in
        return Comparison(record, run, DIFFERS, "outside a zero-width 95% CI", printed, shown, diff, low, high, None)
    gap = (record.to_evalkit() - value) / width  # type: ignore[operator]
    if record.scale == "1/x":
        gap = -gap  # on the printed scale the order flips
    return Comparison(record, run, DIFFERS, "outside the 95% CI", printed, shown, diff, low, high, gap)


def _incomparable(record: PublishedRecord, run: RunNumber) -> str:
    if record.task != run.task:
        return f"published on {record.task if record.task != UNKNOWN else record.dataset or 'another data set'}"
    if record.metric == UNKNOWN:
        return f"'{record.column}' is no evalkit metric"
    if record.metric != run.metric:
        return f"published {record.metric}, run {run.metric}"
    if run.status != "ok" or run.value is None or not math.isfinite(run.value):
        return "the run has no value" + (f" ({run.status})" if run.status != "ok" else "")
    if record.convention != run.profile:
        return f"convention: published {record.convention}, run {run.profile}"
    if run.partial:
        return f"partial run ({run.n}/{run.task_size} samples)"
    if record.n is not None and run.n is not None and run.n != record.n:
        return f"size: published n={record.n}, run n={run.n}"
    if run.ci_low is None or run.ci_high is None:
        return "the run has no CI"
    return ""


def _printed_ci(record: PublishedRecord, run: RunNumber) -> tuple[float | None, float | None]:
    if run.ci_low is None or run.ci_high is None:
        return None, None
    ends = sorted((record.as_printed(run.ci_low), record.as_printed(run.ci_high)))
    return ends[0], ends[1]


def match_published(
    records: Iterable[PublishedRecord], numbers: Sequence[RunNumber], published_as: dict[str, list[str]]
) -> list[Comparison]:
    """Every (record, run number) pair where the run's card names the record's model and the task and metric
    match; records of a metric evalkit lacks are matched on the task alone (shown once per run, not comparable).

    `published_as` maps a run's model (card name) to the published model names its card lists.
    """
    by_run: dict[tuple[str, str], dict[str, RunNumber]] = {}
    for number in numbers:
        by_run.setdefault((number.task, number.model), {})[number.metric] = number
    out = []
    for record in records:
        for (task, model), metrics in by_run.items():
            if task != record.task or record.model not in published_as.get(model, []):
                continue
            number = metrics.get(record.metric)
            if number is None:
                any_number = next(iter(metrics.values()))
                number = RunNumber(**{**asdict(any_number), "metric": record.metric, "value": None, "ci_low": None,
                                      "ci_high": None, "status": "missing"})  # fmt: skip
            out.append(judge(record, number))
    return out


def numbers_from_rows(rows: Sequence[dict[str, Any]]) -> list[RunNumber]:
    """RunNumbers from `evalkit.views.leaderboard.leaderboard_rows` rows (they carry `profile`)."""
    return [
        RunNumber(
            task=r["task"],
            model=r["model"],
            run_id=r["run_id"],
            metric=r["metric"],
            value=r["value"],
            ci_low=r.get("ci_low"),
            ci_high=r.get("ci_high"),
            n=r["n"],
            task_size=r["task_size"],
            partial=bool(r["partial"]),
            profile=r.get("run_profile") or "evalkit",
            status=r["status"] or "ok",
            ci_unit=r.get("ci_unit"),
        )
        for r in rows
    ]


def published_names(run: dict[str, Any], cards: Callable[[], Mapping[str, Any]] | None = None) -> list[str]:
    """The ledger names of a run's model: its stored card's `published_as`, else today's card of that name (runs
    stored before cards named their rows). `cards`: today's cards (`registry.all_cards`, e.g. cached by a caller
    asking for many runs, so the card files are read once)."""
    from evalkit.results.store import loads

    card = loads(run.get("card"), {}) or {}
    names = card.get("published_as") if isinstance(card, dict) else None
    if names:
        return [str(n) for n in names]
    if cards is None:
        from evalkit.registry import all_cards as cards

    current = cards().get(run.get("model") or "")
    return list(current.published_as) if current else []


VERDICT_MARKS = {REPRODUCED: "✓", DIFFERS: "✗", NOT_COMPARABLE: "n/c"}


def reported_block(
    columns: Sequence[tuple[str, str]],
    numbers: Sequence[RunNumber],
    published_as: dict[str, list[str]],
    records: Iterable[PublishedRecord],
) -> dict[str, Any] | None:
    """Published rows for a paper table whose value columns are `columns` ((task, metric) each, in order).

    Per (run, published row): one row of the published values as printed, then one row of verdicts (✓ inside the
    run's CI, ✗ outside with the gap in CI widths, n/c not comparable), each cell with the run-minus-published
    difference. `notes` says why each n/c is not comparable. None when no record matches a run of the table.
    """
    wanted = set(columns)
    comparisons = match_published([r for r in records if (r.task, r.metric) in wanted], numbers, published_as)
    if not comparisons:
        return None
    groups: dict[tuple[str, str, str, str], dict[tuple[str, str], Comparison]] = {}
    for c in comparisons:
        groups.setdefault((c.run.model, c.record.source, c.record.table, c.record.model), {})[
            (c.record.task, c.record.metric)
        ] = c
    rows, notes = [], []
    for (model, source, table, name), cells in sorted(groups.items()):
        rows.append([f"{name} ({source}, {table})", *(cells[k].record.printed if k in cells else "" for k in columns)])
        rows.append([f"  {model} vs {name}", *(_verdict_cell(cells[k]) if k in cells else "" for k in columns)])
        notes += [
            f"{model} vs {name} {c.record.column}: {c.reason}" for c in cells.values() if c.verdict == NOT_COMPARABLE
        ]
    return {"rows": rows, "notes": list(dict.fromkeys(notes)), "comparisons": [c.as_dict() for c in comparisons]}


def _verdict_cell(c: Comparison) -> str:
    diff = "" if c.difference is None else f" {c.difference:+.{max(c.record.decimals, 1)}f}"
    if c.verdict == DIFFERS:
        return f"✗{diff}" + (f" ({abs(c.gap_ci_widths):.1f} CI)" if c.gap_ci_widths is not None else " (CI width 0)")
    return VERDICT_MARKS[c.verdict] + (diff if c.verdict == REPRODUCED else "")


def site_numbers(
    task: str, run: dict[str, Any], metric_rows: dict[str, dict[str, Any]], cells: dict[str, Any], profile: str
) -> list[RunNumber]:
    """RunNumbers of one run on the site (evalkit.views.site: stored metric rows, and cells holding value and CI)."""
    out = []
    for metric, row in metric_rows.items():
        cell = cells.get(metric)
        out.append(
            RunNumber(
                task=task,
                model=run["model"],
                run_id=run["run_id"],
                metric=metric,
                value=getattr(cell, "value", None),
                ci_low=getattr(cell, "low", None),
                ci_high=getattr(cell, "high", None),
                n=row.get("n"),
                task_size=run.get("task_size"),
                partial=bool(run.get("partial")),
                profile=profile,
                status=row.get("status") or "ok",
            )
        )
    return out
