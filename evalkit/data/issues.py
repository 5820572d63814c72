"""Malformed rows found while loading a data set: reported with their row, fixed by a documented rule or dropped.

A loader calls `report_row(...)` for every malformed row; `collect_issues(task, split)` (the runner wraps each
loader call in it) gathers them, logs one warning line, and keeps a summary that the runner writes into the run's
summary (`data_issues`). `clean_box` is the one rule set every grounding loader applies to a reference box:

- a missing or non-numeric (NaN) coordinate: the box is dropped;
- x2 < x1 or y2 < y1 (inverted): the two coordinates are swapped (the annotator dragged the other way; this is
  also what ensemble-boxes' WBF does);
- any part outside the image: clipped to the image (WBF clips too);
- zero width or height (before or after clipping): the box is dropped.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("evalkit.data")

MAX_EXAMPLES = 50  # rows listed in a run summary; the counts are always complete


@dataclass
class RowIssue:
    source: str  # file name (relative to the data set folder)
    row: str  # where in the file: "line 12", "entry 3 / finding 1 / box 0", "object 'right lung'"
    problem: str  # short machine-friendly kind: nan, inverted, outside_image, zero_area, missing_file, ...
    action: str  # "dropped" or "fixed: <what was done>"
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.source} {self.row}: {self.problem}{detail} -> {self.action}"


@dataclass
class IssueReport:
    """Every malformed row of one loader call."""

    issues: list[RowIssue] = field(default_factory=list)

    def add(self, issue: RowIssue) -> None:
        self.issues.append(issue)

    @property
    def dropped(self) -> int:
        return sum(1 for i in self.issues if i.action == "dropped")

    @property
    def fixed(self) -> int:
        return len(self.issues) - self.dropped

    def summary(self) -> dict[str, Any]:
        """Counts by problem and action, plus the first rows, for the run summary (JSON-ready)."""
        if not self.issues:
            return {}
        by_problem = Counter(f"{i.problem}: {'dropped' if i.action == 'dropped' else 'fixed'}" for i in self.issues)
        return {
            "dropped": self.dropped,
            "fixed": self.fixed,
            "by_problem": dict(sorted(by_problem.items())),
            "rows": [str(i) for i in self.issues[:MAX_EXAMPLES]],
        }


_ACTIVE: ContextVar[IssueReport | None] = ContextVar("evalkit_data_issues", default=None)
_LAST: dict[tuple[str, str], dict[str, Any]] = {}


def report_row(source: str, row: str, problem: str, action: str, detail: str = "") -> None:
    """Record a malformed row in the active collection (a no-op outside `collect_issues`)."""
    report = _ACTIVE.get()
    if report is not None:
        report.add(RowIssue(source, row, problem, action, detail))


@contextmanager
def collect_issues(task: str = "", split: str = "") -> Iterator[IssueReport]:
    """Collect the rows reported while loading; the summary is kept for `issues_summary(task, split)`."""
    report = IssueReport()
    token = _ACTIVE.set(report)
    try:
        yield report
    finally:
        _ACTIVE.reset(token)
        _LAST[(task, split)] = report.summary()
        if report.issues:
            log.warning(
                "task '%s' split '%s': %d malformed data rows (%d fixed, %d dropped); first: %s",
                task,
                split,
                len(report.issues),
                report.fixed,
                report.dropped,
                report.issues[0],
            )


def issues_summary(task: str, split: str) -> dict[str, Any]:
    """Summary of the last `collect_issues(task, split)`; {} when nothing was malformed (or nothing was loaded)."""
    return _LAST.get((task, split), {})


def to_number(value: Any) -> float:
    """float(value), or NaN for anything that is not a number (empty CSV cells included)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def clean_box(
    box: Sequence[Any], width: float, height: float, source: str, row: str
) -> tuple[float, float, float, float] | None:
    """A pixel box `[x1, y1, x2, y2]` made valid by the module's rules (reported), or None when dropped.

    `width`/`height` bound the box (pass 1, 1 for boxes already in 0-1 coordinates). Returns pixel (or 0-1)
    coordinates; the caller normalises.
    """
    values = [to_number(v) for v in box]
    if len(values) != 4 or any(not math.isfinite(v) for v in values):
        report_row(source, row, "nan", "dropped", f"box {list(box)}")
        return None
    x1, y1, x2, y2 = values
    if x2 < x1 or y2 < y1:
        report_row(source, row, "inverted", "fixed: coordinates swapped", f"box {values}")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        report_row(source, row, "zero_area", "dropped", f"box {values}")
        return None
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
        if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
            report_row(source, row, "outside_image", "dropped", f"box {values} in a {width}x{height} image")
            return None
        report_row(source, row, "outside_image", "fixed: clipped to the image", f"box {values}, size {width}x{height}")
        x1, y1, x2, y2 = clipped
    return x1, y1, x2, y2


def normalise(box: tuple[float, float, float, float], width: float, height: float) -> list[float]:
    """Pixel box to 0-1 coordinates."""
    x1, y1, x2, y2 = box
    return [x1 / width, y1 / height, x2 / width, y2 / height]
