"""The site's pairwise significance map: every pair of models on a task's primary metric, paired and clustered.

For models ranked by the leaderboard, each pair (i, j) gets the paired bootstrap difference i − j on the samples
both scored, its 95% CI and a p-value; Holm adjusts the p-values across all pairs of the task (they are one family:
"which pairs differ?"). The map is an inline SVG matrix (no script needed to read it), drawn twice, in leaderboard
order and by model name, and a sortable table lists the same numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from markupsafe import Markup

from evalkit.errors import EvalkitError
from evalkit.metrics.base import Metric
from evalkit.results.aggregates import StoredMean
from evalkit.results.scores import load_clustering, load_pairs, load_run_scores, stored_metrics
from evalkit.results.store import Store
from evalkit.stats import (
    MetricScores,
    Resampler,
    bootstrap_distribution,
    bootstrap_p_value,
    compare_paired,
    holm,
    percentile_interval,
    unit_text,
)

ALPHA = 0.05
MATRIX_LAYOUT = (64, 150, 120)  # cell size, room for row labels (left), room for column labels (top); site.js too
BETTER, WORSE, TIED = "#1b7f3b", "#b3261e", "#d9d9d9"


@dataclass
class PairCell:
    """Row model minus column model on the primary metric, in the metric's units."""

    row: str
    col: str
    delta: float | None
    low: float | None
    high: float | None
    p: float | None  # raw paired-bootstrap p
    p_adjusted: float | None  # Holm across the task's pairs
    n: int
    unit: str

    @property
    def significant(self) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < ALPHA


@dataclass
class PairwiseMap:
    metric: str
    higher_is_better: bool
    models: list[str]  # leaderboard order
    cells: dict[tuple[str, str], PairCell] = field(default_factory=dict)  # both (a, b) and (b, a)
    unit: str = ""
    shown: list[str] = field(default_factory=list)  # the matrix's models: the first `max_models` of `models`

    def __post_init__(self) -> None:
        self.shown = self.shown or list(self.models)

    def pairs(self) -> list[PairCell]:
        """Each unordered pair once, the better-ranked model as the row."""
        rank = {m: i for i, m in enumerate(self.models)}
        return [c for (a, b), c in self.cells.items() if rank[a] < rank[b]]


# The matrix shows at most this many models (leaderboard order); every other model is paired with the leader only.
PAIRWISE_MAX_MODELS = 20


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def pairwise_map(
    store: Store,
    task: str,
    runs: Sequence[tuple[str, dict[str, Any]]],
    metric: str,
    higher_is_better: bool,
    *,
    n_boot: int,
    seed: int,
    cluster: str = "auto",
    scores: Mapping[str, MetricScores | None] | None = None,
    instances: Mapping[str, Metric | None] | None = None,
    max_models: int = PAIRWISE_MAX_MODELS,
) -> PairwiseMap:
    """Paired comparisons of every pair of (model, run) in `runs` (leaderboard order); Holm across the pairs.

    Beyond `max_models` runs, the pairs are those among the first `max_models` (the matrix) and the leader against
    every other model (the leaderboard's "Δ vs #1"): a page's pairs then grow linearly with the models, not with
    their square (1,770 pairs and 1.1 MB per task page at 60 models, a matrix nobody can read).

    Runs scored on the same samples (the usual case: full runs of one task) are bootstrapped once, together: a
    resample's counts depend only on the samples, the seed and the clusters, so the replicates of a − b equal
    those of the pair's own paired bootstrap (`compare_paired`), at one bootstrap per run instead of one per pair.
    Pairs on different sample sets take the per-pair path.

    `scores` and `instances` (run id -> the metric's current scores / its stored instance), when the caller has
    read them for the whole task already (the site build), stand in for reading each run again.
    """
    clustering = load_clustering(store, task, cluster)
    loaded: dict[str, Resampler] = {}
    sample_sets: dict[str, tuple[str, ...]] = {}
    for model, run in runs:
        if scores is not None:
            found_scores = scores.get(run["run_id"])
        else:
            found_scores = load_run_scores(store, run["run_id"], [metric]).get(metric)
        if found_scores is None or not found_scores.sample_ids:
            continue  # the metric is missing on this run: its cells stay empty
        if instances is not None:
            instance = instances.get(run["run_id"])
        else:
            instance = stored_metrics(store, run["run_id"]).get(metric)
        loaded[model] = Resampler(instance or StoredMean(metric), found_scores.values, found_scores.stats)
        sample_sets[model] = tuple(found_scores.sample_ids)
    replicates: dict[str, np.ndarray] = {}
    by_samples: dict[tuple[str, ...], list[str]] = {}
    for model, ids in sample_sets.items():
        by_samples.setdefault(ids, []).append(model)
    for ids, models in by_samples.items():
        if len(models) > 1:
            reps = bootstrap_distribution([loaded[m] for m in models], n_boot, seed, groups=clustering.groups(ids))
            replicates.update(zip(models, reps, strict=True))

    shown = {m for m, _ in runs[:max_models]}
    found: list[tuple[str, str, Any]] = []
    for i, (model_a, run_a) in enumerate(runs):
        for model_b, run_b in runs[i + 1 :]:
            if model_a not in loaded or model_b not in loaded:
                continue
            if i > 0 and not (model_a in shown and model_b in shown):
                continue  # outside the matrix and not against the leader
            if sample_sets[model_a] == sample_sets[model_b]:
                shared = _shared_comparison(loaded, replicates, model_a, model_b)
                units = unit_text(clustering.unit, clustering.count(sample_sets[model_a]))
                found.append((model_a, model_b, (*shared, units)))
                continue
            try:
                paired = load_pairs(store, task, run_a, run_b, [metric], cluster)
            except EvalkitError:
                continue  # no shared samples: the cell stays empty
            comparison = compare_paired(paired, n_boot=n_boot, n_perm=0, seed=seed)
            if comparison:
                c = comparison[0]
                units = unit_text(c.unit, c.n_clusters)
                found.append((model_a, model_b, (c.delta, c.ci_low, c.ci_high, c.p_bootstrap, c.n_shared, units)))
    adjusted = holm([c[3] for _, _, c in found])
    out = PairwiseMap(metric, higher_is_better, [m for m, _ in runs], shown=[m for m, _ in runs[:max_models]])
    for (a, b, (delta, low, high, p, n, unit)), p_adj in zip(found, adjusted, strict=True):
        out.unit = out.unit or unit
        p_raw, p_holm = _finite(p), _finite(p_adj)
        delta, low, high = _finite(delta), _finite(low), _finite(high)
        out.cells[(a, b)] = PairCell(a, b, delta, low, high, p_raw, p_holm, n, unit)
        flip = lambda v: None if v is None else -v  # noqa: E731 - b − a is the negated difference
        out.cells[(b, a)] = PairCell(b, a, flip(delta), flip(high), flip(low), p_raw, p_holm, n, unit)
    return out


def _shared_comparison(
    loaded: dict[str, Resampler], replicates: dict[str, np.ndarray], a: str, b: str
) -> tuple[float, float, float, float, int]:
    """(delta, CI low, CI high, bootstrap p, n) of a − b from the jointly bootstrapped replicates."""
    delta = loaded[a].point() - loaded[b].point()
    reps = replicates[a] - replicates[b]
    low, high = percentile_interval(reps)
    return delta, low, high, bootstrap_p_value(reps, delta), loaded[a].n


def _fill(cell: PairCell, higher_is_better: bool) -> str:
    if not cell.significant or cell.delta is None or cell.delta == 0:
        return TIED
    return BETTER if (cell.delta > 0) == higher_is_better else WORSE


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def matrix_svg(
    pmap: PairwiseMap, order: Sequence[str], label: str, reorders: dict[str, Sequence[str]] | None = None
) -> Markup:
    """The matrix: row model minus column model; green = row significantly better, red = worse, grey = tied.

    `reorders` (label -> model order): other orders site.js draws from this matrix when asked (the same cells,
    moved; `data-orders`), instead of the page holding each order's matrix: at 60 models one matrix is 1.4 MB.
    """
    k = len(order)
    if k < 2:
        return Markup("")
    size, left, top = MATRIX_LAYOUT
    # Column labels run up and to the right at 45 degrees: the last one needs about `top` of room past the grid.
    width, height = left + k * size + top, top + k * size + 10
    orders = json.dumps({"": list(order), **{name: list(o) for name, o in (reorders or {}).items()}})
    parts = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="pairwise-map" role="img" viewBox="0 0 {w} {h}" '
            'width="{w}" height="{h}" data-order="{o}" data-orders="{orders}"><title>{t}</title>'
        ).format(w=width, h=height, o=label, orders=orders, t=f"pairwise differences on {pmap.metric}, {label} order")
    ]
    for i, name in enumerate(order):
        y = top + i * size + size / 2
        x = left + i * size + size / 2
        parts.append(
            Markup(
                '<text x="{x}" y="{y}" text-anchor="end" dominant-baseline="middle" class="row-label">{n}</text>'
            ).format(x=left - 6, y=y, n=_short(name))
        )
        parts.append(
            Markup(
                '<text transform="translate({x},{y}) rotate(-45)" text-anchor="start" class="col-label">{n}</text>'
            ).format(x=x, y=top - 6, n=_short(name))
        )
    for i, row in enumerate(order):
        for j, col in enumerate(order):
            x, y = left + j * size, top + i * size
            if i == j:
                parts.append(
                    Markup(
                        '<rect x="{x}" y="{y}" width="{s}" height="{s}" class="diagonal" fill="#ffffff" '
                        'stroke="#bbbbbb"/>'
                    ).format(x=x, y=y, s=size)
                )
                continue
            cell = pmap.cells.get((row, col))
            if cell is None:
                parts.append(
                    Markup(
                        '<rect x="{x}" y="{y}" width="{s}" height="{s}" fill="#ffffff" stroke="#bbbbbb">'
                        "<title>{t}</title></rect>"
                    ).format(x=x, y=y, s=size, t=f"{row} vs {col}: no shared samples")
                )
                continue
            tip = (
                f"{row} − {col} on {pmap.metric}: {_num(cell.delta, True)} "
                f"[{_num(cell.low, True)}, {_num(cell.high, True)}], Holm p {_p(cell.p_adjusted)}, "
                f"n {cell.n}, resampled {cell.unit}"
            )
            parts.append(
                Markup(
                    # Stroke, text-anchor and baseline of a cell are site.css's (svg.pairwise-map g.pair).
                    '<g class="pair" data-row="{r}" data-col="{c}" data-significant="{sig}">'
                    '<rect x="{x}" y="{y}" width="{s}" height="{s}" fill="{f}"/>'
                    '<text x="{tx}" y="{ty}">{d}</text>'
                    "<title>{t}</title></g>"
                ).format(
                    r=row,
                    c=col,
                    sig="yes" if cell.significant else "no",
                    x=x,
                    y=y,
                    s=size,
                    f=_fill(cell, pmap.higher_is_better),
                    tx=x + size // 2,
                    ty=y + size // 2,
                    d=_num(cell.delta, True, 3),
                    t=tip,
                )
            )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _num(value: float | None, signed: bool = False, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"
