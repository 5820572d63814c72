"""Leaderboard rows from stored aggregates: the latest run per (task, model), with bootstrap 95% CIs."""

from __future__ import annotations

from typing import Any

from evalkit.metrics import all_metrics
from evalkit.registry import all_tasks
from evalkit.store import Store, loads


def latest_runs(store: Store, task: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
    """The most recent run of each (task, model), finished or not (an unfinished one is flagged)."""
    where, params = [], []
    if task:
        where.append("task = ?")
        params.append(task)
    if model:
        where.append("model = ?")
        params.append(model)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return store.query(
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY task, model ORDER BY started_at DESC) AS rk "
        f"FROM runs {clause}) WHERE rk = 1 ORDER BY task, model",
        params,
    )


def leaderboard_rows(
    store: Store,
    task: str | None = None,
    model: str | None = None,
    *,
    ci: bool = True,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str = "auto",
) -> list[dict[str, Any]]:
    """One row per (task, model, metric): value, n, direction, availability, whether it is the primary metric.

    `reference` is the label of a reference row (a card with `reference`, e.g. inter-reader agreement), which
    tables show apart from the ranked models; None for a model.

    With `ci`, `ci_low`/`ci_high` are percentile-bootstrap 95% bounds from the stored per-sample scores
    (evalkit.stats; corpus metrics re-aggregated per resample, those without a vectorised path on the first
    500 resamples); None where a metric has no stored scores. `ci_unit` says what they resampled
    ("by patient (212 clusters)"); `cluster` picks the unit (evalkit.stats.load_clustering).
    """
    from evalkit.stats import DISPLAY_MAX_GENERIC, run_intervals, unit_text

    metrics = all_metrics()
    tasks = all_tasks()
    rows: list[dict[str, Any]] = []
    for run in latest_runs(store, task, model):
        spec = tasks.get(run["task"])
        reference = reference_label(run)
        order = spec.metric_names if spec else []
        stored = {m["metric"]: m for m in store.query("SELECT * FROM run_metrics WHERE run_id = ?", [run["run_id"]])}
        names = [n for n in order if n in stored] + sorted(n for n in stored if n not in order)
        bounds = (
            run_intervals(store, run, n_boot=n_boot, seed=seed, max_generic=DISPLAY_MAX_GENERIC, cluster=cluster)
            if ci
            else {}
        )
        for name in names:
            m = stored[name]
            cls = metrics.get(name)
            rows.append(
                {
                    "task": run["task"],
                    "model": run["model"],
                    "metric": name,
                    "value": m["value"],
                    "n": m["n"],
                    "ci_low": _finite(bounds[name].ci_low) if name in bounds else None,
                    "ci_high": _finite(bounds[name].ci_high) if name in bounds else None,
                    "ci_unit": unit_text(bounds[name].unit, bounds[name].n_clusters) if name in bounds else None,
                    "higher_is_better": cls.higher_is_better if cls else True,
                    "status": m["status"],
                    "reason": m["reason"],
                    "primary": bool(spec and spec.primary_metric == name),
                    "run_id": run["run_id"],
                    "run_status": run["status"],
                    "reference": reference,
                }
            )
    return rows


def _finite(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def reference_label(run: dict[str, Any]) -> str | None:
    """The stored card's `reference` label: a reference row (e.g. radiologists), not a model to rank."""
    card = loads(run.get("card"), {}) or {}
    label = card.get("reference") if isinstance(card, dict) else None
    return str(label) if label else None


# --- paper-table views (`evalkit leaderboard --style NAME`) -------------------------------------------------------

# RadVLM-GRPO's tables (Gundersen et al., arXiv 2512.10691): Table 1 and Table 3 for reports (Table 3 adds ANC),
# Table 2 for grounding (mAP@0.5 per task). (column, metric, scale, decimals); docs/reproducing-radvlm-grpo.md
# says which seed function each follows. RadCliQ stays raw (lower is better), everything else x100.
RADVLM_GRPO_REPORT_COLUMNS: tuple[tuple[str, str, float, int], ...] = (
    ("R-L", "rouge_l", 100.0, 1),
    ("B-S", "bertscore", 100.0, 1),
    ("CXb-micro", "chexbert_micro_f1_14", 100.0, 1),
    ("CXb-macro", "chexbert_macro_f1_14", 100.0, 1),
    ("RGF1", "radgraph_f1_complete", 100.0, 1),
    ("GRN", "green", 100.0, 1),
    ("RCQ↓", "radcliq_v1", 1.0, 2),
    ("ANC", "response_chars", 1.0, 0),
)
RADVLM_GRPO_GROUNDING_COLUMNS: dict[str, str] = {
    "imagenome-anatomy-grounding": "Anatomy",
    "vindr-abnormality-grounding": "Abnorm.",
    "mscxr-phrase-grounding": "Phrase_MS",
    "padchest-phrase-grounding": "Phrase_Pad",
    "phantom-anatomy-grounding": "Anatomy (phantom)",
    "phantom-abnormality-grounding": "Abnorm. (phantom)",
    "phantom-phrase-grounding": "Phrase (phantom)",
}
PAPER_STYLES = ("radvlm-grpo",)


def paper_tables(rows: list[dict[str, Any]], style: str = "radvlm-grpo") -> list[dict[str, Any]]:
    """Leaderboard rows re-laid as the paper prints them: [{title, columns, rows: [[model, cell...]]}].

    Report tasks give one table each (Table 1 columns + Table 3's ANC); grounding tasks share one table with a
    mAP@0.5 column per task (Table 2). Cells are formatted strings ("—" when the model has no such score,
    "n/a" when the metric was unavailable). Models are ordered by name, as a paper table is.
    """
    if style not in PAPER_STYLES:
        raise ValueError(f"unknown table style '{style}'; known: {', '.join(PAPER_STYLES)}")
    tasks = all_tasks()
    cells = {(r["task"], r["model"], r["metric"]): r for r in rows}

    def cell(task: str, model: str, metric: str, scale: float, decimals: int) -> str:
        r = cells.get((task, model, metric))
        if r is None:
            return "—"
        if r["status"] == "unavailable" or r["value"] is None:
            return "n/a"
        return f"{r['value'] * scale:.{decimals}f}"

    out: list[dict[str, Any]] = []
    report_tasks = [t for t in dict.fromkeys(r["task"] for r in rows) if t in tasks and tasks[t].kind != "grounding"]
    for task in report_tasks:
        models = sorted({r["model"] for r in rows if r["task"] == task})
        out.append(
            {
                "title": f"{task} (RadVLM-GRPO Tables 1 and 3)",
                "columns": ["Model", *(c[0] for c in RADVLM_GRPO_REPORT_COLUMNS)],
                "rows": [[m, *(cell(task, m, *c[1:]) for c in RADVLM_GRPO_REPORT_COLUMNS)] for m in models],
            }
        )
    grounding = [t for t in RADVLM_GRPO_GROUNDING_COLUMNS if any(r["task"] == t for r in rows)]
    grounding += sorted(
        t for t in {r["task"] for r in rows} if t in tasks and tasks[t].kind == "grounding" and t not in grounding
    )
    if grounding:
        models = sorted({r["model"] for r in rows if r["task"] in grounding})
        out.append(
            {
                "title": "grounding: mAP@0.5 (RadVLM-GRPO Table 2)",
                "columns": ["Model", *(RADVLM_GRPO_GROUNDING_COLUMNS.get(t, t) for t in grounding)],
                "rows": [[m, *(cell(t, m, "radvlm_map50", 100.0, 1) for t in grounding)] for m in models],
            }
        )
    return out
