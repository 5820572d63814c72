"""The ledger of published results: numbers carried over from papers and leaderboards, each with its source.

A record is one printed cell: which paper or leaderboard, which table, the file and commit it was read from, the
model as printed, the value as printed (and its scale), and the evalkit task, metric and convention profile it
corresponds to (or `unknown`). The bundled ledger is `published/*.csv` (in the wheel: evalkit/_bundled/published);
a user's own records are validated by `evalkit published add FILE` and kept in the results database.

Published numbers are facts to put beside re-runs (evalkit.views.published_compare); they are never ranked as runs.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError
from evalkit.resources import bundled

FIELDS: tuple[str, ...] = (
    "source",  # short id of the paper or leaderboard (radvlm-grpo, rexrank)
    "citation",  # who, what, where
    "table",  # the table as the source names it
    "file",  # the file the cell was read from
    "repository",  # owner/name of the repository holding the file
    "commit",  # the commit of that file
    "model",  # the model as printed
    "task",  # the evalkit task this is a result on, or `unknown`
    "dataset",  # the data set and split as the source describes them
    "n",  # number of samples the source evaluated on, if known (else empty)
    "column",  # the column header as printed
    "printed",  # the cell as printed (with marks such as `*`)
    "value",  # the number, on the printed scale
    "scale",  # how evalkit's value maps to the printed one: x1, x100, 1/x
    "metric",  # the evalkit metric this is, or `unknown`
    "convention",  # the evalkit convention profile the source's code path follows, or `unknown`
    "training_reward",  # yes when the source marks the cell as the training reward (RadVLM-GRPO Table 3's `*`)
    "note",  # anything a reader needs (how a level or label set was identified)
)
OPTIONAL = frozenset({"n", "note", "dataset"})
UNKNOWN = "unknown"
# printed = f(evalkit value)
SCALES = {"x1": lambda v: v, "x100": lambda v: v * 100.0, "1/x": lambda v: 1.0 / v if v else math.inf}
_INVERSE = {"x1": lambda p: p, "x100": lambda p: p / 100.0, "1/x": lambda p: 1.0 / p if p else math.inf}


@dataclass(frozen=True)
class PublishedRecord:
    """One published cell. `origin` says where this record was read (file:line or the database)."""

    source: str
    citation: str
    table: str
    file: str
    repository: str
    commit: str
    model: str
    task: str
    dataset: str
    n: int | None
    column: str
    printed: str
    value: float
    scale: str
    metric: str
    convention: str
    training_reward: bool
    note: str
    origin: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """A record's identity: a later record with the same key replaces an earlier one."""
        return (self.source, self.table, self.model, self.task, self.column)

    @property
    def decimals(self) -> int:
        """Digits after the point as printed: the rounding a re-run's value is allowed (`evalkit_range`)."""
        text = self.printed.rstrip("*").strip()
        return len(text.split(".", 1)[1]) if "." in text else 0

    def to_evalkit(self, printed: float | None = None) -> float:
        """The printed value (or `printed`) on evalkit's scale (what a run stores)."""
        return _INVERSE[self.scale](self.value if printed is None else printed)

    def evalkit_range(self) -> tuple[float, float]:
        """Every evalkit value that prints as this cell: the value +- half a unit of its last printed digit."""
        half = 0.5 * 10.0**-self.decimals
        ends = sorted((self.to_evalkit(self.value - half), self.to_evalkit(self.value + half)))
        return ends[0], ends[1]

    def as_printed(self, evalkit_value: float) -> float:
        """An evalkit value on this cell's printed scale, so a re-run reads as the paper does."""
        return SCALES[self.scale](evalkit_value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _known_names() -> tuple[set[str], set[str]]:
    from evalkit.metrics import all_metrics
    from evalkit.registry import all_tasks

    return set(all_metrics()), set(all_tasks())


def parse_rows(rows: list[dict[str, str]], where: str) -> list[PublishedRecord]:
    """Validate ledger rows (dicts of FIELDS to text); every problem is named by `where`, line and field.

    Raises EvalkitError listing every bad field (at most 20), so a file is fixed in one pass.
    """
    metrics, tasks = _known_names()
    problems: list[str] = []
    records: list[PublishedRecord] = []
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        line = i + 2  # line 1 is the header
        bad = _check_row(row, metrics, tasks)
        problems += [f"{where} line {line} field '{f}': {msg}" for f, msg in bad]
        if bad:
            continue
        record = _record(row, f"{where}:{line}")
        if record.key in seen:
            problems.append(
                f"{where} line {line}: same (source, table, model, task, column) as line {seen[record.key]}"
            )
        seen[record.key] = line
        records.append(record)
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise EvalkitError("invalid published records:\n  " + "\n  ".join(problems[:20]) + more)
    return records


def _check_row(row: dict[str, str], metrics: set[str], tasks: set[str]) -> list[tuple[str, str]]:
    bad: list[tuple[str, str]] = []
    for f in FIELDS:
        if f not in OPTIONAL and not (row.get(f) or "").strip():
            bad.append((f, "empty; every record needs it"))
    if bad:
        return bad
    try:
        value = float(row["value"])
        if not math.isfinite(value):
            raise ValueError
    except ValueError:
        bad.append(("value", f"'{row['value']}' is not a finite number"))
        value = None
    if value is not None and _number(row["printed"].strip().rstrip("*").strip()) != value:
        bad.append(
            ("printed", f"'{row['printed']}' is not value '{row['value']}' as printed (a trailing * may follow)")
        )
    if row["scale"] not in SCALES:
        bad.append(("scale", f"'{row['scale']}' is not one of {', '.join(SCALES)}"))
    if row["metric"] != UNKNOWN and row["metric"] not in metrics:
        bad.append(("metric", f"unknown metric '{row['metric']}' (see `evalkit metrics`; or write '{UNKNOWN}')"))
    if row["task"] != UNKNOWN and row["task"] not in tasks:
        bad.append(("task", f"unknown task '{row['task']}' (see `evalkit tasks`; or write '{UNKNOWN}')"))
    if row["training_reward"] not in ("yes", "no"):
        bad.append(("training_reward", f"'{row['training_reward']}' must be yes or no"))
    n = (row.get("n") or "").strip()
    if n and not (n.isdigit() and int(n) > 0):
        bad.append(("n", f"'{n}' must be a positive whole number, or empty when unknown"))
    return bad


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _record(row: dict[str, str], origin: str) -> PublishedRecord:
    n = (row.get("n") or "").strip()
    return PublishedRecord(
        **{f: (row.get(f) or "").strip() for f in FIELDS if f not in ("n", "value", "training_reward")},
        n=int(n) if n else None,
        value=float(row["value"]),
        training_reward=row["training_reward"] == "yes",
        origin=origin,
    )


def read_ledger(path: Path) -> list[PublishedRecord]:
    """Records of one ledger CSV file (header: FIELDS, any order), validated."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte-order mark is no header
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except OSError as exc:
        raise EvalkitError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise EvalkitError(f"{path}: not a CSV file ({exc})") from exc
    missing = [f for f in FIELDS if f not in header]
    extra = [h for h in header if h not in FIELDS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(extra)}")
        raise EvalkitError(f"{path}: {'; '.join(parts)} (the header is: {','.join(FIELDS)})")
    for i, row in enumerate(rows):
        if None in row:
            raise EvalkitError(f"{path} line {i + 2}: more cells than header columns (quote cells holding commas)")
    return parse_rows(rows, str(path))


def bundled_records() -> list[PublishedRecord]:
    """The ledger shipped with evalkit (published/*.csv)."""
    return [r for path in sorted(bundled("published").glob("*.csv")) for r in read_ledger(path)]


def stored_records(store: Any) -> list[PublishedRecord]:
    """Records a user added to this results database (`evalkit published add`)."""
    from evalkit.results.published import published_rows

    return [
        _record({k: "" if v is None else str(v) for k, v in row.items()}, "database") for row in published_rows(store)
    ]


def all_records(store: Any = None, task: str | None = None) -> list[PublishedRecord]:
    """The bundled ledger, then the database's records (which replace bundled ones with the same key)."""
    by_key = {r.key: r for r in bundled_records()}
    if store is not None:
        by_key.update({r.key: r for r in stored_records(store)})
    return [r for r in by_key.values() if task is None or r.task == task]


def to_row(record: PublishedRecord) -> dict[str, Any]:
    """The database row of a record (all FIELDS as text, as the CSV has them)."""
    row = {f: "" if v is None else str(v) for f, v in record.as_dict().items() if f in FIELDS}
    row["training_reward"] = "yes" if record.training_reward else "no"
    row["value"] = record.printed.rstrip("*").strip()  # the digits as printed, not float's repr
    return row
