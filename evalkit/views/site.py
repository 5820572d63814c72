"""`evalkit site build`: a static leaderboard site from the DuckDB store (Jinja2 templates under site/).

What it writes, all relative links, no network (works from file://):
- `index.html`: one sortable leaderboard per task (value and 95% CI per metric, direction, primary metric first);
- `tasks/<task>.html`: the leaderboard, difference to the leader, CI plots, IoU distributions, sample list;
- `models/<model>.html`: model card and provenance of every run (task version, decoding, versions, git hash, dates);
- `samples/<task>.html`: one sample viewer per task (the image with reference and predicted boxes, reference
  and generated text), drawn in the browser from `data/<task>/*.js` (evalkit/views/site_data.py), so the site grows
  with the data, not with samples x models x pages.

Privacy: per-sample data, viewer pages and images exist only for `public` tasks, unless `private=True`, in which
case every page carries a banner saying the build holds credentialed data. A task counts as credentialed when any of its
runs (the `runs.access` column) or its task spec says so, or when neither says anything. All text goes through
Jinja2 autoescaping; nothing a model wrote is ever marked safe.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evalkit._version import __version__
from evalkit.config import TRANSFORM_NAMES
from evalkit.errors import EvalkitError
from evalkit.metrics import is_diagnostic
from evalkit.published import UNKNOWN, all_records
from evalkit.registry import all_cards
from evalkit.resources import bundled
from evalkit.results.aggregates import StoredMean, stored_metric
from evalkit.results.intervals import runs_cis
from evalkit.results.queries import failed_samples_of, parse_failure_counts, run_metrics_of, task_spec
from evalkit.results.store import Store, loads
from evalkit.stats import DISPLAY_MAX_GENERIC, MetricScores, holm, unit_text
from evalkit.views.leaderboard import latest_runs, one_run_per_model, reference_label
from evalkit.views.published_compare import match_published, published_names, site_numbers
from evalkit.views.site_data import write_task_data
from evalkit.views.site_health import health_panels, panels_by_task
from evalkit.views.site_scores import task_scores
from evalkit.views.site_svg import REFERENCE_COLOUR, Point, ci_plot, colour, histogram_plot
from evalkit.views.site_swap import staged_folder

SITE_DIR = bundled("site")
MARKER = ".evalkit-site"
IMAGE_MAX_SIDE = 768


def slug(name: str) -> str:
    """A file-name-safe slug; a short hash keeps two names that differ only in odd characters apart."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or "x"
    return clean if clean == name else f"{clean}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@dataclass
class Cell:
    value: float | None
    low: float | None = None
    high: float | None = None
    status: str = "ok"
    reason: str | None = None


@dataclass
class MetricColumn:
    name: str
    higher_is_better: bool
    primary: bool
    description: str = ""


@dataclass
class ModelRow:
    model: str
    model_slug: str
    run: dict[str, Any]
    cells: dict[str, Cell]
    n: int
    rank: int = 0
    vs_leader: dict[str, Any] | None = None
    reference: str | None = None  # label of a reference row (e.g. inter-reader agreement): shown, never ranked
    task_size: int | None = None
    partial: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)
    parse_failures: int = 0  # answers the parser could not read (scored as empty answers)

    @property
    def failed(self) -> int:
        return len({f["sample_id"] for f in self.failures})


@dataclass
class TaskView:
    name: str
    slug: str
    spec: Any
    access: str
    samples_included: bool
    columns: list[MetricColumn]
    rows: list[ModelRow]
    versions: list[str]
    kind: str
    description: str
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (metric, reason) not computed for any model
    plots: list[Any] = field(default_factory=list)
    iou_plot: Any = None
    samples: dict[str, Any] | None = None  # the sample index (evalkit.views.site_data) when samples are included
    ci_unit: str = ""  # what the CIs resampled: "by patient (212 clusters)"
    pairwise: Any = None  # evalkit.views.site_pairwise.PairwiseMap on the primary metric
    pairwise_svgs: dict[str, Any] = field(default_factory=dict)  # order name -> SVG matrix
    published: list[Any] = field(default_factory=list)  # evalkit.views.published_compare.Comparison beside the runs
    reliance: list[Any] = field(default_factory=list)  # evalkit.views.reliance.RelianceRow of the image-reliance panel


@dataclass
class SiteResult:
    out: Path
    pages: int
    tasks: list[str]
    withheld: list[str]
    private: bool


class SiteBuilder:
    """Reads the store once per task, renders every page. Construct, then `build()`."""

    def __init__(
        self,
        store: Store,
        out: Path,
        *,
        private: bool = False,
        n_boot: int = 2000,
        seed: int = 0,
        max_samples: int | None = None,
        templates: Path = SITE_DIR,
        cluster: str = "auto",
    ) -> None:
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        self.store, self.out, self.private = store, Path(out), private
        self.n_boot, self.seed, self.max_samples = n_boot, seed, max_samples
        self.cluster = cluster  # the unit CIs and paired tests resample (evalkit.stats.load_clustering)
        self.templates = Path(templates)
        if not (self.templates / "templates" / "base.html").exists():
            raise EvalkitError(f"{self.templates}: site templates not found (expected templates/base.html there)")
        self.env = Environment(
            loader=FileSystemLoader(self.templates / "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["num"] = _num
        self.env.filters["signed"] = _signed
        self.env.filters["pval"] = _pval
        self.pages = 0
        self.images: dict[str, tuple[str, int, int] | None] = {}
        # The ledger and the records added to this database; cells evalkit has no metric for are left out here.
        self.published = [r for r in all_records(store) if r.metric != UNKNOWN]
        self.cards = functools.cache(all_cards)  # today's cards, read once for every run's published names

    # --- entry point ------------------------------------------------------------------------------------------
    def build(self) -> SiteResult:
        """Renders into a fresh folder beside --out and swaps it in when complete (evalkit.views.site_swap)."""
        final = self.out
        with staged_folder(final, MARKER) as staging:
            self.out = staging
            try:
                result = self._build()
            finally:
                self.out = final
        return replace(result, out=final)

    def _build(self) -> SiteResult:
        self._prepare_out()
        runs = one_run_per_model(latest_runs(self.store))  # pages are per model name
        by_task: dict[str, list[dict[str, Any]]] = {}
        for run in runs:
            by_task.setdefault(run["task"], []).append(run)
        tasks = [self._task_view(name, group, _stored_spec(group)) for name, group in sorted(by_task.items())]
        for view in tasks:
            self._reliance(view, list(by_task))
        withheld = [t.name for t in tasks if t.access != "public" and not t.samples_included]
        credentialed = [t.name for t in tasks if t.access != "public"]
        self.context = {
            "build": {
                "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "version": __version__,
                "git_sha": _git_sha(),
                "db_name": self.store.path.name,
                "private": self.private,
                "credentialed": credentialed,
                "n_boot": self.n_boot,
                "max_generic": min(self.n_boot, DISPLAY_MAX_GENERIC),
                "seed": self.seed,
            },
            "tasks": tasks,
            # RL-health panels of runs whose card declares a parent that ran the task (evalkit.views.site_health).
            "health": health_panels(self.store, runs, n_boot=self.n_boot, seed=self.seed, cluster=self.cluster),
        }
        self.context["health_by_task"] = panels_by_task(self.context["health"])
        models = sorted({r.model for t in tasks for r in t.rows})
        model_slugs = {m: slug(m) for m in models}
        self._render("index.html", "index.html", root="", title="Leaderboard")
        for task in tasks:
            self._render("task.html", f"tasks/{task.slug}.html", root="../", title=task.name, task=task)
            if task.samples:
                self._render(
                    "sample.html",
                    f"samples/{task.slug}.html",
                    root="../",
                    title=f"samples · {task.name}",
                    task=task,
                    reference_colour=REFERENCE_COLOUR,
                )
        for model in models:
            runs_of_model = [(t, r) for t in tasks for r in t.rows if r.model == model]
            self._render(
                "model.html",
                f"models/{model_slugs[model]}.html",
                root="../",
                title=model,
                model=model,
                card=_card_of(runs_of_model),
                entries=runs_of_model,
            )
        assets = self.out / "assets"
        assets.mkdir(parents=True, exist_ok=True)
        for path in (self.templates / "static").iterdir():
            if path.is_file():
                shutil.copy2(path, assets / path.name)
        (self.out / MARKER).write_text("built by evalkit site build; the folder is replaced on every build\n")
        return SiteResult(self.out, self.pages, [t.name for t in tasks], withheld, self.private)

    def _prepare_out(self) -> None:
        """Start from an empty folder, so nothing of an earlier (e.g. private) build survives in a public one."""
        if self.out.exists():
            if not self.out.is_dir():
                raise EvalkitError(f"{self.out}: exists and is not a folder")
            if any(self.out.iterdir()) and not (self.out / MARKER).exists():
                raise EvalkitError(
                    f"{self.out}: folder is not empty and was not made by `evalkit site build`; "
                    "choose another --out (the build replaces the whole folder)"
                )
            shutil.rmtree(self.out)
        self.out.mkdir(parents=True)

    def _render(self, template: str, path: str, **context: Any) -> None:
        target = self.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        html = self.env.get_template(template).render(**self.context, **context)
        target.write_text(html, encoding="utf-8")
        self.pages += 1

    # --- one task ---------------------------------------------------------------------------------------------
    def _task_view(self, name: str, runs: list[dict[str, Any]], spec: dict[str, Any] | None) -> TaskView:
        """One task's page data, from what its runs stored (spec, metric rows); today's YAML plays no part."""
        access = _access(runs, spec)
        include = access == "public" or self.private
        metric_names: list[str] = []
        stored: dict[str, dict[str, dict[str, Any]]] = {}
        first_row: dict[str, dict[str, Any]] = {}
        # Every run of the task read at once (metric rows, stored CIs, failures): one query each, not one per run.
        run_ids = [run["run_id"] for run in runs]
        metrics_of = run_metrics_of(self.store, run_ids)
        for run in runs:
            rows = metrics_of[run["run_id"]]
            stored[run["run_id"]] = {r["metric"]: r for r in rows}
            for r in rows:
                if r["metric"] not in metric_names:
                    metric_names.append(r["metric"])
                    first_row[r["metric"]] = r
        # RL-health diagnostics have their own panel (evalkit/views/site_health.py): not leaderboard columns or plots.
        metric_names = [m for m in metric_names if not is_diagnostic(m)]
        spec_primary = spec.get("primary_metric") if spec else None
        order = [spec_primary, *(m["name"] for m in spec.get("metrics", []))] if spec else []
        metric_names.sort(key=lambda m: (order.index(m) if m in order else len(order), m))
        primary = spec_primary if spec_primary in metric_names else None
        if primary is None:
            flagged = [m for m in metric_names if first_row[m]["is_primary"]]
            primary = (flagged or metric_names or [None])[0]
        instances = {m: stored_metric(first_row[m]) for m in metric_names}
        columns = [
            MetricColumn(m, instances[m].higher_is_better, m == primary, instances[m].description) for m in metric_names
        ]
        rows = []
        units: dict[str, None] = {}
        numbers: list[Any] = []  # for the published results beside the runs
        cis = runs_cis(
            self.store, runs, n_boot=self.n_boot, seed=self.seed, cluster=self.cluster, metrics_of=metrics_of
        )
        failures = failed_samples_of(self.store, run_ids)
        unparsed = parse_failure_counts(self.store, run_ids)
        for run in runs:
            bounds = cis[run["run_id"]]
            units.update(dict.fromkeys(unit_text(b.unit, b.n_clusters) for b in bounds.values()))
            cells = {}
            for m in metric_names:
                row = stored[run["run_id"]].get(m)
                if row is None:
                    cells[m] = Cell(None, status="missing")
                elif row["status"] != "ok":
                    cells[m] = Cell(None, status=row["status"], reason=row["reason"])
                else:
                    b = bounds.get(m)
                    cells[m] = Cell(
                        _finite(row["value"]), _finite(b.ci_low) if b else None, _finite(b.ci_high) if b else None
                    )
            profile = (task_spec(run) or spec or {}).get("profile") or "evalkit"
            numbers += site_numbers(name, run, stored[run["run_id"]], cells, profile)
            n = max((r["n"] or 0 for r in stored[run["run_id"]].values()), default=0)
            row = ModelRow(run["model"], slug(run["model"]), _provenance(run), cells, n, reference=reference_label(run))
            row.task_size, row.partial = run.get("task_size"), bool(run.get("partial"))
            row.failures = failures[run["run_id"]]
            row.parse_failures = unparsed[run["run_id"]]
            rows.append(row)
        # Metrics no model could compute here (e.g. clinical metrics without their weights) become one note.
        unavailable = [
            (c.name, next((r.cells[c.name].reason for r in rows if r.cells[c.name].reason), "") or "")
            for c in columns
            if not c.primary and all(r.cells[c.name].status != "ok" for r in rows)
        ]
        columns = [c for c in columns if c.name not in {name for name, _ in unavailable}]
        if primary:
            good = instances[primary].higher_is_better

            def key(r: ModelRow) -> tuple[bool, float]:
                # Partial runs are listed after the full ones, never ranked among them.
                v = r.cells[primary].value
                return (r.partial, math.inf if v is None else (-v if good else v))

            rows.sort(key=key)
        # Reference rows (radiologists) go below the models, unranked, and are never "the leader".
        rows = [r for r in rows if not r.reference] + [r for r in rows if r.reference]
        for i, r in enumerate(r for r in rows if not r.reference):
            r.rank = i + 1
        view = TaskView(
            name=name,
            slug=slug(name),
            spec=spec,
            access=access,
            samples_included=include,
            columns=columns,
            rows=rows,
            versions=sorted({str(r["task_version"]) for r in runs}),
            kind=spec.get("kind", "") if spec else "",
            description=spec.get("description", "") if spec else "",
            unavailable=unavailable,
            ci_unit="; ".join(units),
        )
        view.published = match_published(
            self.published, numbers, {r["model"]: published_names(r, self.cards) for r in runs}
        )
        # The per-sample scores the views below resample or plot, read and decoded once for all runs.
        grounding = view.kind == "grounding" or any(c.name == "miou" for c in columns)
        wanted = [m for m in (primary, "miou" if grounding else None) if m]
        own = {
            run_id: stored_metric(stored[run_id][primary]) if primary and primary in stored[run_id] else None
            for run_id in run_ids
        }
        # A plain mean (StoredMean, as the pairwise map builds it where a run has none) resamples its values alone.
        plain = primary != "miou" and all(i is None or type(i) is StoredMean for i in own.values())
        scores = task_scores(self.store, run_ids, wanted, [primary] if plain and primary else []) if wanted else {}
        if primary and sum(1 for r in rows if not r.reference) > 1:
            per_run = {run_id: found.get(primary) for run_id, found in scores.items()}
            self._pairwise(view, primary, instances[primary].higher_is_better, per_run, own)
            self._vs_leader(view, primary)
        for column in columns:
            points = [
                Point(
                    r.model, r.cells[column.name].value, r.cells[column.name].low, r.cells[column.name].high, colour(i)
                )
                for i, r in enumerate(rows)
            ]
            view.plots.append(ci_plot(points, column.name, column.higher_is_better))
        if grounding:
            view.iou_plot = self._iou_plot(rows, {run_id: found.get("miou") for run_id, found in scores.items()})
        if include:
            view.samples = write_task_data(
                self.store,
                self.out,
                view.name,
                view.slug,
                [(r.run["run_id"], r.model, r.model_slug) for r in rows],
                [c.name for c in columns],
                primary,
                self._image,
                self.max_samples,
            )
        return view

    def _reliance(self, view: TaskView, tasks_with_runs: list[str]) -> None:
        """The image-reliance panel of a task whose variants (`T@blank`...) have runs (docs/image-reliance.md)."""
        from evalkit.views.reliance import panel_rows, variant_task

        if not any(variant_task(view.name, t) in tasks_with_runs for t in TRANSFORM_NAMES):
            return
        primary = next((c.name for c in view.columns if c.primary), None)
        models = [r.model for r in view.rows]
        view.reliance = panel_rows(
            self.store,
            view.name,
            view.kind,
            primary,
            models,
            tasks_with_runs,
            n_boot=self.n_boot,
            seed=self.seed,
            cluster=self.cluster,
        )

    def _vs_leader(self, view: TaskView, primary: str) -> None:
        """Each model against the leader on the primary metric, Holm across models (their own family).

        The numbers are the pairwise map's (same paired bootstrap, seed and resamples, `site_pairwise`), so the
        build bootstraps each pair once; only the Holm family differs (the leader's row, not every pair).
        """
        leader = view.rows[0]
        if leader.cells[primary].value is None or view.pairwise is None:
            return
        found = [
            (row, cell)
            for row in view.rows[1:]
            if not row.reference
            and (cell := view.pairwise.cells.get((row.model, leader.model))) is not None
            and cell.p is not None
        ]
        adjusted = holm([cell.p for _, cell in found])
        for (row, cell), p_adj in zip(found, adjusted, strict=True):
            row.vs_leader = {
                "delta": cell.delta,
                "low": cell.low,
                "high": cell.high,
                "p": _finite(p_adj),
                "n": cell.n,
                "tied": p_adj >= 0.05,
            }

    def _pairwise(
        self,
        view: TaskView,
        primary: str,
        higher_is_better: bool,
        scores: dict[str, MetricScores | None],
        instances: dict[str, Any],
    ) -> None:
        from evalkit.views.site_pairwise import matrix_svg, pairwise_map

        ranked = [(r.model, r.run) for r in view.rows if r.cells[primary].value is not None and not r.reference]
        view.pairwise = pairwise_map(
            self.store,
            view.name,
            ranked,
            primary,
            higher_is_better,
            n_boot=self.n_boot,
            seed=self.seed,
            cluster=self.cluster,
            scores=scores,
            instances=instances,
        )
        models = view.pairwise.shown
        # The name order is drawn by site.js from this matrix when asked (the same cells moved): one matrix per page.
        view.pairwise_svgs = {
            "leaderboard": matrix_svg(view.pairwise, models, "leaderboard", {"name": sorted(models, key=str.lower)}),
        }

    def _iou_plot(self, rows: Sequence[ModelRow], miou: dict[str, MetricScores | None]) -> Any:
        series = []
        for i, r in enumerate(rows):
            values: list[float] = []
            current = miou.get(r.run["run_id"])
            for value, stats in zip(current.values, current.stats, strict=True) if current else []:
                best = (stats or {}).get("best_iou")
                values.extend(best if best else ([value] if value is not None else []))
            series.append((r.model, values, colour(i)))
        return histogram_plot(series, "best IoU of each reference box (histogram per model)")

    # --- samples ----------------------------------------------------------------------------------------------
    def _image(self, paths: list[str]) -> dict[str, Any] | None:
        """The sample's first image as a PNG under images/ (downscaled), shared by every page that shows it."""
        if not paths:
            return None
        path = str(paths[0])
        if path not in self.images:
            self.images[path] = _copy_image(Path(path), self.out / "images")
        found = self.images[path]
        return None if found is None else {"src": f"images/{found[0]}", "width": found[1], "height": found[2]}


# --- helpers ------------------------------------------------------------------------------------------------------
def _stored_spec(runs: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The task spec stored by the most recent of a task's runs (None when no run stored one)."""
    for run in sorted(runs, key=lambda r: str(r.get("started_at") or ""), reverse=True):
        spec = task_spec(run)
        if spec:
            return spec
    return None


def _access(runs: Sequence[dict[str, Any]], spec: dict[str, Any] | None) -> str:
    """'public' only when every run and the task spec that exist say public; unknown counts as credentialed."""
    said = {r.get("access") for r in runs if r.get("access")}
    if spec and spec.get("access"):
        said.add(spec["access"])
    return "public" if said == {"public"} else "credentialed"


def _provenance(run: dict[str, Any]) -> dict[str, Any]:
    card = loads(run.get("card"), {}) or {}
    return {
        **run,
        "card_data": card,
        "decoding_data": loads(run.get("decoding"), {}) or {},
        "summary_data": loads(run.get("summary"), {}) or {},
        "started": _date(run.get("started_at")),
        "finished": _date(run.get("finished_at")),
    }


def _card_of(entries: Sequence[tuple[TaskView, ModelRow]]) -> dict[str, Any]:
    latest = max(entries, key=lambda e: str(e[1].run.get("started_at") or ""), default=None)
    return latest[1].run["card_data"] if latest else {}


def _date(value: Any) -> str:
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else str(value)


def _copy_image(source: Path, folder: Path) -> tuple[str, int, int] | None:
    from PIL import Image

    from evalkit.errors import SampleError
    from evalkit.images import load_image
    from evalkit.transforms.pixels import is_virtual

    virtual = is_virtual(str(source))  # a transformed image of a derived task (evalkit/transforms): render it
    try:
        if virtual:
            converted = load_image(str(source))
        else:
            with Image.open(source) as image:
                image.load()
                converted = image.convert("L" if image.mode in ("L", "I", "I;16", "F", "1") else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError, SampleError):
        return None
    converted.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    name = hashlib.sha1(str(source if virtual else source.resolve()).encode()).hexdigest()[:16] + ".png"
    folder.mkdir(parents=True, exist_ok=True)
    converted.save(folder / name, optimize=True)
    return name, converted.width, converted.height


def _git_sha() -> str | None:
    from evalkit.run.runner import git_sha

    return git_sha()


def _num(value: Any, digits: int = 3) -> str:
    v = _finite(value)
    return "—" if v is None else f"{v:.{digits}f}"


def _signed(value: Any, digits: int = 3) -> str:
    v = _finite(value)
    return "—" if v is None else f"{v:+.{digits}f}"


def _pval(value: Any) -> str:
    v = _finite(value)
    if v is None:
        return "—"
    return f"{v:.3f}" if v >= 0.001 else "<0.001"


def build_site(
    store: Store,
    out: Path,
    *,
    private: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    max_samples: int | None = None,
    cluster: str = "auto",
) -> SiteResult:
    return SiteBuilder(
        store, out, private=private, n_boot=n_boot, seed=seed, max_samples=max_samples, cluster=cluster
    ).build()
