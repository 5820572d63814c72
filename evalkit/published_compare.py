"""A published number beside a re-run: the difference, the run's 95% CI and a verdict.

- *reproduced*: some value that prints as the published cell (its value +- half a unit of the last printed digit)
  lies inside the run's clustered 95% CI;
- *differs*: it lies outside, and the gap is given in CI widths (published minus run, over the CI's width);
- *not comparable*: the numbers are not of the same thing, and the reason is named (another task or split,
  another sample count, a partial run, another convention profile, a metric evalkit does not compute, no CI).

A run matches a record when the run's task is the record's task and the run's card names the record's model in
`published_as` (model_adapters/cards/*.yaml). Published rows are shown beside runs, never ranked among them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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
        if self.verdict == DIFFERS and self.gap_ci_widths is not None:
            return f"differs ({self.gap_ci_widths:+.1f} CI)"
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
    target = record.to_evalkit()
    gap = (target - value) / width if width > 0 else math.copysign(math.inf, target - value)  # type: ignore[operator]
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


def compare_runs(records: Iterable[PublishedRecord], numbers: Sequence[RunNumber], published_as: dict[str, list[str]]
                 ) -> list[Comparison]:  # fmt: skip
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
    """RunNumbers from `evalkit.leaderboard.leaderboard_rows` rows (they carry `profile`)."""
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
            profile=r.get("profile") or "evalkit",
            status=r["status"] or "ok",
            ci_unit=r.get("ci_unit"),
        )
        for r in rows
    ]
