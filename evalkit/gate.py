"""The CI regression gate: a paired non-inferiority test per metric, Holm across metrics, with its power.

For each metric, `improvement` is candidate − baseline in the metric's good direction (baseline − candidate for a
lower-is-better metric such as RadCliQ), so `regression = −improvement`. The null hypothesis is "the candidate
regressed by at least the margin" (regression ≥ margin); the gate passes a metric only when the paired bootstrap
rejects it, i.e. when the one-sided upper confidence bound of the regression stays below the margin. The
bootstrap p-value is the share of resampled improvements at or below −margin, (1 + #) / (B + 1); Holm adjusts
those p-values across the gated metrics, and the gate passes when every adjusted p-value is below alpha.

Holm is conservative here: the gate passes only when *all* metrics pass (an intersection-union test), which
controls the chance of passing a regressed candidate at alpha even without correction. `correction: none` in the
gate config gives that uncorrected test.

Power: the chance that a candidate exactly as good as the baseline passes, by the normal approximation
Φ(margin / SE − z), with SE the standard deviation of the bootstrap improvements (it already reflects the sample
size and the pairing) and z the one-sided critical value at the most stringent Holm level (alpha / m). The
margin that would give 80% power and the sample size that would give 80% power at the chosen margin are
reported alongside, so an underpowered gate says so instead of failing at random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal
from xml.etree import ElementTree

import numpy as np
from pydantic import Field, field_validator

from evalkit.config import Strict, load_spec
from evalkit.errors import EvalkitError
from evalkit.stats import PairedData, find_run, holm, load_pairs, paired_bootstrap_distribution
from evalkit.store import Store

TARGET_POWER = 0.8


class GateConfig(Strict):
    """gate.yaml: which metrics, their margins (in metric units), alpha, resamples, seed, multiplicity correction."""

    metrics: list[str] | None = Field(default=None, description="Metrics to gate; default: every shared metric.")
    margin: float | None = Field(default=None, description="Margin for metrics without their own entry.")
    margins: dict[str, float] = Field(default_factory=dict, description="Per-metric margins, in metric units.")
    alpha: float = 0.05
    n_boot: int = 10_000
    seed: int = 0
    correction: Literal["holm", "none"] = "holm"

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: float) -> float:
        if not 0 < value < 0.5:
            raise ValueError("alpha must be between 0 and 0.5")
        return value

    @field_validator("n_boot")
    @classmethod
    def _n_boot(cls, value: int) -> int:
        if value < 100:
            raise ValueError("n_boot must be at least 100")
        return value

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("margin must be >= 0 (it is the regression the gate tolerates)")
        return value

    @field_validator("margins")
    @classmethod
    def _margins(cls, value: dict[str, float]) -> dict[str, float]:
        for name, margin in value.items():
            if margin < 0:
                raise ValueError(f"margin of '{name}' must be >= 0")
        return value


def _gated_by_default(name: str) -> bool:
    from evalkit.metrics import metric_class

    try:
        return bool(getattr(metric_class(name), "gated_by_default", True))
    except EvalkitError:
        return True  # a metric no longer registered: its stored scores are still gated


def load_gate_config(path: Path) -> GateConfig:
    return load_spec(GateConfig, Path(path))


@dataclass
class MetricVerdict:
    metric: str
    higher_is_better: bool
    margin: float
    n: int
    baseline: float
    candidate: float
    delta: float  # candidate − baseline, metric units
    improvement: float  # delta in the metric's good direction
    regression_upper: float  # one-sided upper confidence bound of the regression, at this metric's Holm level
    level: float  # one-sided confidence level of regression_upper
    p_value: float
    p_adjusted: float
    passed: bool
    se: float
    power: float  # P(pass) for a candidate equal to the baseline (normal approximation)
    margin_for_80: float  # the margin that would give 80% power at this n
    n_for_80: int  # samples needed for 80% power at this margin
    vectorised: bool = True


@dataclass
class GateResult:
    task: str
    candidate: str
    baseline: str
    candidate_run: str
    baseline_run: str
    alpha: float
    n_boot: int
    seed: int
    correction: str
    verdicts: list[MetricVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    @property
    def power(self) -> float:
        """P(all metrics pass) for an unchanged candidate, if metrics were independent (positively correlated
        metrics pass together more often, so this is a lower bound in the usual case)."""
        return float(math.prod(v.power for v in self.verdicts))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["power"] = self.power
        return _clean(data)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def noninferiority(
    paired: Sequence[PairedData],
    margins: dict[str, float],
    *,
    alpha: float = 0.05,
    n_boot: int = 10_000,
    seed: int = 0,
    correction: str = "holm",
) -> list[MetricVerdict]:
    """Per-metric verdicts for candidate (`a` of each pair) against baseline (`b`), on their shared samples."""
    verdicts: list[MetricVerdict] = []
    groups: dict[tuple[str, ...], list[PairedData]] = {}
    for p in paired:
        groups.setdefault(tuple(p.sample_ids), []).append(p)
    raw: dict[str, tuple[PairedData, np.ndarray, float]] = {}
    for group in groups.values():
        deltas = paired_bootstrap_distribution([(p.a, p.b) for p in group], n_boot, seed)
        for p, reps in zip(group, deltas, strict=True):
            sign = 1.0 if p.a.metric.higher_is_better else -1.0
            improvements = sign * reps[np.isfinite(reps)]
            margin = margins[p.metric]
            p_value = float((1 + (improvements <= -margin).sum()) / (improvements.size + 1))
            raw[p.metric] = (p, improvements, p_value)
    names = [p.metric for p in paired if p.metric in raw]
    p_values = [raw[name][2] for name in names]
    adjusted = holm(p_values) if correction == "holm" else list(p_values)
    m = len(names)
    # The Holm level of each metric: alpha / (m - rank), rank 0 for the smallest p-value.
    order = sorted(range(m), key=lambda i: p_values[i])
    step_alpha = [alpha] * m
    if correction == "holm":
        for rank, i in enumerate(order):
            step_alpha[i] = alpha / (m - rank)
    strictest = alpha / m if correction == "holm" and m else alpha
    normal = NormalDist()
    z_power = normal.inv_cdf(TARGET_POWER)
    for i, name in enumerate(names):
        p, improvements, p_value = raw[name]
        margin = margins[name]
        sign = 1.0 if p.a.metric.higher_is_better else -1.0
        candidate, baseline = p.a.point(), p.b.point()
        delta = candidate - baseline
        regressions = -improvements
        upper = float(np.quantile(regressions, 1 - step_alpha[i])) if regressions.size else float("nan")
        se = float(improvements.std(ddof=1)) if improvements.size > 1 else float("nan")
        z = normal.inv_cdf(1 - strictest)
        if se > 0:
            power = normal.cdf(margin / se - z)
            margin_80 = (z + z_power) * se
            n_80 = math.ceil(p.a.n * (margin_80 / margin) ** 2) if margin > 0 else -1
        else:  # identical outputs on every sample: the improvement is exactly known
            power, margin_80, n_80 = (1.0 if margin > 0 else 0.0), 0.0, p.a.n
        verdicts.append(
            MetricVerdict(
                metric=name,
                higher_is_better=p.a.metric.higher_is_better,
                margin=margin,
                n=p.a.n,
                baseline=baseline,
                candidate=candidate,
                delta=delta,
                improvement=sign * delta,
                regression_upper=upper,
                level=1 - step_alpha[i],
                p_value=p_value,
                p_adjusted=adjusted[i],
                passed=bool(adjusted[i] < alpha),
                se=se,
                power=float(power),
                margin_for_80=float(margin_80),
                n_for_80=int(n_80),
                vectorised=p.a.vectorised and p.b.vectorised,
            )
        )
    return verdicts


def run_gate(
    store: Store,
    task: str,
    candidate: str,
    baseline: str,
    config: GateConfig,
) -> GateResult:
    """Gate the latest run of `candidate` (card name or run id) against `baseline` on `task`."""
    cand_run, base_run = find_run(store, task, candidate), find_run(store, task, baseline)
    if cand_run["run_id"] == base_run["run_id"]:
        raise EvalkitError(f"candidate and baseline are the same run ({cand_run['run_id']})")
    notes = []
    if cand_run.get("task_version") != base_run.get("task_version"):
        notes.append(
            f"task versions differ: candidate v{cand_run.get('task_version')}, baseline v{base_run.get('task_version')}"
        )
    for run, role in ((cand_run, "candidate"), (base_run, "baseline")):
        if run.get("status") != "finished":
            notes.append(f"the {role} run {run['run_id']} is '{run.get('status')}', not finished")
    paired = load_pairs(store, task, cand_run, base_run, config.metrics)
    if config.metrics is None:  # descriptive statistics (response length) are gated only when named
        paired = [p for p in paired if _gated_by_default(p.metric)]
    margins: dict[str, float] = {}
    for p in paired:
        margin = config.margins.get(p.metric, config.margin)
        if margin is None:
            raise EvalkitError(
                f"no margin for metric '{p.metric}': pass --margin or set 'margin' / 'margins: {{{p.metric}: ...}}' "
                "in the gate config"
            )
        margins[p.metric] = float(margin)
    unknown = sorted(set(config.margins) - {p.metric for p in paired})
    if unknown and config.metrics is None:
        notes.append(f"margins given for metrics not gated here: {', '.join(unknown)}")
    counts = {}
    for run in (cand_run, base_run):
        rows = store.query("SELECT metric, count(*) AS n FROM scores WHERE run_id = ? GROUP BY metric", [run["run_id"]])
        counts[run["run_id"]] = {r["metric"]: r["n"] for r in rows}
    for p in paired:
        scored = (counts[cand_run["run_id"]].get(p.metric, 0), counts[base_run["run_id"]].get(p.metric, 0))
        if p.a.n < max(scored):
            notes.append(
                f"{p.metric}: compared on the {p.a.n} shared samples (candidate scored {scored[0]}, "
                f"baseline {scored[1]})"
            )
    verdicts = noninferiority(
        paired, margins, alpha=config.alpha, n_boot=config.n_boot, seed=config.seed, correction=config.correction
    )
    return GateResult(
        task=task,
        candidate=cand_run["model"],
        baseline=base_run["model"],
        candidate_run=cand_run["run_id"],
        baseline_run=base_run["run_id"],
        alpha=config.alpha,
        n_boot=config.n_boot,
        seed=config.seed,
        correction=config.correction,
        verdicts=verdicts,
        notes=notes,
    )


# --- reports --------------------------------------------------------------------------------------------------
def _f(value: float, digits: int = 4, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _md(text: str) -> str:
    """Markdown table cell: no pipes, no HTML."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def to_markdown(result: GateResult) -> str:
    status = "✅ PASS" if result.passed else "❌ REGRESSION"
    lines = [
        f"### evalkit gate: {status}",
        "",
        f"Task `{_md(result.task)}`: candidate **{_md(result.candidate)}** (`{result.candidate_run}`) vs baseline "
        f"**{_md(result.baseline)}** (`{result.baseline_run}`). Paired bootstrap non-inferiority test, "
        f"{result.n_boot} resamples, seed {result.seed}, alpha {result.alpha}, "
        f"{'Holm across metrics' if result.correction == 'holm' else 'no multiplicity correction'}.",
        "",
        "| metric | n | baseline | candidate | Δ | regression upper bound | margin | p (adj.) | power | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in result.verdicts:
        arrow = "↑" if v.higher_is_better else "↓"
        lines.append(
            f"| {_md(v.metric)} {arrow} | {v.n} | {_f(v.baseline)} | {_f(v.candidate)} | {_f(v.delta, signed=True)} "
            f"| {_f(v.regression_upper)} ({v.level:.1%}) | {_f(v.margin)} | {_f(v.p_adjusted)} | {v.power:.0%} "
            f"| {'pass' if v.passed else '**fail**'} |"
        )
    lines += [
        "",
        f"Power (chance that a candidate as good as the baseline passes every metric): about {result.power:.0%}.",
    ]
    weak = [v for v in result.verdicts if v.power < TARGET_POWER]
    for v in weak:
        need = f"{v.n_for_80} samples" if v.n_for_80 >= 0 else "a margin above 0"
        lines.append(
            f"- `{_md(v.metric)}` is underpowered ({v.power:.0%}): 80% power needs a margin of "
            f"{_f(v.margin_for_80)} at n={v.n}, or {need} at margin {_f(v.margin)}."
        )
    for note in result.notes:
        lines.append(f"- note: {_md(note)}")
    return "\n".join(lines) + "\n"


def to_junit(result: GateResult) -> str:
    failures = sum(not v.passed for v in result.verdicts)
    suite = ElementTree.Element(
        "testsuite",
        name=f"evalkit-gate.{result.task}",
        tests=str(len(result.verdicts)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    properties = ElementTree.SubElement(suite, "properties")
    for key in ("candidate", "baseline", "candidate_run", "baseline_run", "alpha", "n_boot", "seed", "correction"):
        ElementTree.SubElement(properties, "property", name=key, value=str(getattr(result, key)))
    ElementTree.SubElement(properties, "property", name="power", value=f"{result.power:.4f}")
    for v in result.verdicts:
        case = ElementTree.SubElement(
            suite, "testcase", classname=f"evalkit.gate.{result.task}", name=f"{v.metric} non-inferiority"
        )
        summary = (
            f"{v.metric}: candidate {_f(v.candidate)} vs baseline {_f(v.baseline)} (delta {_f(v.delta, signed=True)}); "
            f"regression upper bound {_f(v.regression_upper)} at {v.level:.1%} vs margin {_f(v.margin)}; "
            f"adjusted p {_f(v.p_adjusted)}; power {v.power:.0%}; n {v.n}"
        )
        if not v.passed:
            failure = ElementTree.SubElement(
                case, "failure", message=f"{v.metric} may have regressed by more than {_f(v.margin)}", type="regression"
            )
            failure.text = summary
        ElementTree.SubElement(case, "system-out").text = summary
    ElementTree.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suite, encoding="unicode") + "\n"
