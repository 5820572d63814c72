"""Inline SVG plots for the static site, written directly (no plotting library, no script, works offline).

Every piece of text goes through `Markup.format`, which escapes its arguments: a model or metric name can never
become markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

# Okabe-Ito colours (distinguishable with colour-vision deficiency); green is kept for reference boxes.
PALETTE = ("#0072B2", "#E69F00", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000", "#999999")
REFERENCE_COLOUR = "#00C853"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(low / step) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


@dataclass
class Point:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    colour: str = PALETTE[0]


def ci_plot(points: Sequence[Point], metric: str, higher_is_better: bool, width: int = 560) -> Markup:
    """Dot-and-whisker plot: one row per model, the value with its 95% CI, best model on top."""
    shown = [p for p in points if p.value is not None and math.isfinite(p.value)]
    if not shown:
        return Markup("")
    shown.sort(key=lambda p: -p.value if higher_is_better else p.value)  # type: ignore[operator]
    bounds = [v for p in shown for v in (p.value, p.low, p.high) if v is not None and math.isfinite(v)]
    low, high = min(bounds), max(bounds)
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 0.05)
    low, high = low - pad, high + pad
    if min(bounds) >= 0 and low < 0:
        low = 0.0
    left, right, top, row = 150, 70, 26, 24
    plot_width = width - left - right
    height = top + row * len(shown) + 30

    def x(value: float) -> float:
        return left + (value - low) / (high - low) * plot_width

    arrow = "higher is better" if higher_is_better else "lower is better"
    parts = [
        Markup(
            '<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            'role="img" aria-label="{m}: value and 95% CI per model">'
        ).format(w=width, h=height, m=metric),
        Markup(
            '<text class="plot-title" x="0" y="16">{m} {d} <tspan class="tick">{a}; value and 95% CI</tspan></text>'
        ).format(m=metric, d="↑" if higher_is_better else "↓", a=arrow),
    ]
    axis_y = top + row * len(shown) + 4
    for tick in _nice_ticks(low, high):
        tx = x(tick)
        parts.append(
            Markup(
                '<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{t}" y2="{b}"/>'
                '<text class="tick" x="{x:.1f}" y="{ty}" text-anchor="middle">{label}</text>'
            ).format(x=tx, t=top - 4, b=axis_y, ty=axis_y + 14, label=_label(tick))
        )
    for i, p in enumerate(shown):
        cy = top + row * i + row / 2
        title = f"{p.label}: {p.value:.4f}"
        if p.low is not None and p.high is not None and math.isfinite(p.low) and math.isfinite(p.high):
            title += f" [{p.low:.4f}, {p.high:.4f}]"
            parts.append(
                Markup(
                    '<line class="whisker" x1="{a:.1f}" x2="{b:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                    '<line class="whisker" x1="{a:.1f}" x2="{a:.1f}" y1="{y0:.1f}" y2="{y1:.1f}"/>'
                    '<line class="whisker" x1="{b:.1f}" x2="{b:.1f}" y1="{y0:.1f}" y2="{y1:.1f}"/>'
                ).format(a=x(p.low), b=x(p.high), y=cy, y0=cy - 5, y1=cy + 5)
            )
        parts.append(
            Markup(
                '<g><title>{title}</title><circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{c}"/></g>'
                '<text class="row-label" x="{lx}" y="{ty:.1f}" text-anchor="end">{label}</text>'
                '<text class="row-value" x="{vx}" y="{ty:.1f}">{value}</text>'
            ).format(
                title=title,
                x=x(p.value),  # type: ignore[arg-type]
                y=cy,
                c=p.colour,
                lx=left - 8,
                ty=cy + 4,
                label=_truncate(p.label, 22),
                vx=width - right + 8,
                value=f"{p.value:.3f}",
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def histogram_plot(
    series: Sequence[tuple[str, Sequence[float], str]], title: str, bins: int = 10, width: int = 560
) -> Markup:
    """Small multiples: one histogram row per (label, values in [0, 1], colour), e.g. per-box best IoU."""
    series = [(label, [v for v in values if v is not None and math.isfinite(v)], c) for label, values, c in series]
    series = [(label, values, c) for label, values, c in series if values]
    if not series:
        return Markup("")
    left, right, top, row, gap = 150, 20, 26, 44, 8
    plot_width = width - left - right
    height = top + len(series) * (row + gap) + 22
    bar = plot_width / bins
    parts = [
        Markup(
            '<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
            'role="img" aria-label="{t}">'
        ).format(w=width, h=height, t=title),
        Markup('<text class="plot-title" x="0" y="16">{t}</text>').format(t=title),
    ]
    for i, (label, values, fill) in enumerate(series):
        counts = [0] * bins
        for v in values:
            counts[min(bins - 1, max(0, int(v * bins)))] += 1
        peak = max(counts) or 1
        base = top + i * (row + gap) + row
        parts.append(
            Markup(
                '<text class="row-label" x="{lx}" y="{y:.1f}" text-anchor="end">{label}</text>'
                '<text class="tick" x="{lx}" y="{y2:.1f}" text-anchor="end">n={n}</text>'
                '<line class="axis" x1="{l}" x2="{r}" y1="{b}" y2="{b}"/>'
            ).format(
                lx=left - 8,
                y=base - row / 2,
                y2=base - row / 2 + 13,
                label=_truncate(label, 22),
                n=len(values),
                l=left,
                r=left + plot_width,
                b=base,
            )
        )
        for k, count in enumerate(counts):
            h = (row - 4) * count / peak
            parts.append(
                Markup(
                    "<g><title>{label}: {n} of {total} in [{a:.1f}, {b:.1f}{close}</title>"
                    '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{c}"/></g>'
                ).format(
                    label=label,
                    n=count,
                    total=len(values),
                    a=k / bins,
                    b=(k + 1) / bins,
                    close="]" if k == bins - 1 else ")",
                    x=left + k * bar + 1,
                    y=base - h,
                    w=bar - 2,
                    h=h,
                    c=fill,
                )
            )
    axis = top + len(series) * (row + gap) + 10
    for k in range(0, bins + 1, max(1, bins // 5)):
        parts.append(
            Markup('<text class="tick" x="{x:.1f}" y="{y}" text-anchor="middle">{v}</text>').format(
                x=left + k * bar, y=axis, v=f"{k / bins:.1f}"
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _truncate(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
