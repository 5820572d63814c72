"""The site's "RL health" panels: for every run whose card declares a parent that ran the same task, the health
table against that parent (evalkit.views.health), the Goodhart verdict, and two plots (answer length, finding label
rates), as inline SVG written here (no script, works offline; every text escaped by `Markup.format`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from evalkit.errors import EvalkitError
from evalkit.results.store import Store
from evalkit.views.goodhart import GoodhartResult, goodhart_check
from evalkit.views.health import HealthReport, health_report, lineage_of, parent_run
from evalkit.views.site_svg import colour

ROW_HEIGHT = 16
# A flag needs a Holm-adjusted bootstrap p below alpha over ~20 diagnostics: the smallest p of B resamples is
# 1 / (B + 1), so the panels resample at least this often whatever the site's --n-boot (200 could never flag).
MIN_HEALTH_BOOT = 2000


@dataclass
class HealthPanel:
    task: str
    model: str
    parent: str
    report: HealthReport
    goodhart: GoodhartResult
    plots: list[Markup] = field(default_factory=list)

    @property
    def flags(self) -> list[str]:
        return [f"{r.metric}: {flag}" for r in self.report.rows for flag in r.flags]


def health_panels(store: Store, runs: list[dict[str, Any]], *, n_boot: int, seed: int, cluster: str) -> dict:
    """{model: {task: HealthPanel}} for the runs with a declared parent that ran the task (others get none)."""
    out: dict[str, dict[str, HealthPanel]] = {}
    n_boot = max(n_boot, MIN_HEALTH_BOOT)
    for run in runs:
        if not lineage_of(run).parent:
            continue
        try:
            base = parent_run(store, run["task"], run, None)
            if base is None or base["run_id"] == run["run_id"]:
                continue
            report = health_report(store, run["task"], run["run_id"], base["run_id"], n_boot=n_boot, seed=seed,
                                   cluster=cluster)  # fmt: skip
            check = goodhart_check(store, run["task"], run["run_id"], base["run_id"], n_boot=n_boot, seed=seed,
                                   cluster=cluster)  # fmt: skip
        except EvalkitError:
            continue  # no diagnostics stored for this run: no panel (the task predates them)
        panel = HealthPanel(run["task"], run["model"], base["model"], report, check)
        panel.plots = [p for p in (length_plot(report), label_plot(report)) if p]
        out.setdefault(run["model"], {})[run["task"]] = panel
    return out


def _bars(title: str, rows: list[tuple[str, list[tuple[str, float]]]], unit: str, width: int = 520) -> Markup:
    """Grouped horizontal bars: one group per row label, one bar per (series, value)."""
    top = max((v for _, series in rows for _, v in series), default=0.0) or 1.0
    label_w, bar_w = 190, width - 260
    series_names = list(dict.fromkeys(name for _, series in rows for name, _ in series))
    height = 24 + sum(len(series) * ROW_HEIGHT + 6 for _, series in rows) + 18
    parts = [Markup('<text x="0" y="14" class="plot-title">{}</text>').format(title)]
    y = 24
    for label, series in rows:
        parts.append(Markup('<text x="0" y="{}" class="axis">{}</text>').format(y + 12, label))
        for name, value in series:
            length = max(0.0, value) / top * bar_w
            fill = colour(series_names.index(name))
            parts.append(
                Markup('<rect x="{}" y="{}" width="{:.1f}" height="{}" fill="{}"><title>{}: {:.3f}</title></rect>')
                .format(label_w, y + 2, length, ROW_HEIGHT - 4, fill, name, value)
            )  # fmt: skip
            parts.append(
                Markup('<text x="{:.1f}" y="{}" class="axis">{:.3g}{}</text>').format(
                    label_w + length + 4, y + 12, value, unit
                )
            )
            y += ROW_HEIGHT
        y += 6
    legend = Markup("").join(
        Markup('<tspan fill="{}">■ {}</tspan> ').format(colour(i), name) for i, name in enumerate(series_names)
    )
    parts.append(Markup('<text x="0" y="{}" class="axis">{}</text>').format(y + 10, legend))
    body = Markup("").join(parts)
    return Markup('<svg class="plot health-plot" width="{}" height="{}" role="img" aria-label="{}">{}</svg>').format(
        width, height, title, body
    )


def length_plot(report: HealthReport) -> Markup | None:
    rows = {r.metric: r for r in report.rows}
    wanted = [m for m in ("response_chars", "answer_words") if m in rows]
    if not wanted:
        return None
    data = [(m, [(report.model, rows[m].value), (f"{report.parent} (parent)", rows[m].parent_value)]) for m in wanted]
    return _bars("answer length: candidate vs parent", data, "")


def label_plot(report: HealthReport) -> Markup | None:
    if not report.label_rates:
        return None
    labels = sorted(set(report.label_rates) | set(report.parent_label_rates))
    data = []
    for label in labels:
        own = report.label_rates.get(label, {})
        parent = report.parent_label_rates.get(label, {})
        reference = own.get("reference", parent.get("reference", 0.0))
        series = [(report.model, own.get("answer", 0.0)), (f"{report.parent} (parent)", parent.get("answer", 0.0))]
        data.append((label, [*series, ("references", reference)]))
    return _bars("finding label rates (share of answers asserting each)", data, "")


def panels_by_task(panels: dict[str, dict[str, HealthPanel]]) -> dict[str, list[HealthPanel]]:
    """The same panels keyed by task, models in name order (the task page's RL health section)."""
    out: dict[str, list[HealthPanel]] = {}
    for model in sorted(panels):
        for task, panel in panels[model].items():
            out.setdefault(task, []).append(panel)
    return out
