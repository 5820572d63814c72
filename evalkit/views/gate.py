"""The CI regression gate: paired non-inferiority and inferiority tests per metric, with three verdicts and power.

For each metric, `improvement` is candidate − baseline in the metric's good direction (baseline − candidate for a
lower-is-better metric such as RadCliQ), so `regression = −improvement`. Two one-sided paired-bootstrap tests:
- non-inferiority, H0 "regression ≥ margin", p = share of resampled improvements at or below −margin;
- inferiority, H0 "regression ≤ margin", p = share of resampled improvements at or above −margin.
Verdicts: **pass** when non-inferiority is shown (the upper confidence bound of the regression is below the
margin), **regression** when inferiority is shown (the lower bound is above the margin), **inconclusive** when
neither: the data cannot tell, which a CI user must not read as "worse". Exit codes 0, 1, 3.

Resampling draws the data set's clusters (patient, study or image; `evalkit.stats`), so the bounds and the power
reflect the samples that are not independent.

Multiplicity: Holm within a gate (each task's metrics), as both families of p-values; `correction: bh` uses
Benjamini-Hochberg across a metric x task grid (a task group) instead, and `none` the plain tests. The gate passes
only when every metric passes (an intersection-union test), which controls the chance of passing a regressed
candidate at alpha even without correction; Holm is the conservative default.

Power: the chance that a candidate exactly as good as the baseline passes, by the normal approximation
Φ(margin / SE − z), with SE the standard deviation of the bootstrap improvements (it already reflects the sample
size, the clusters and the pairing) and z the one-sided critical value at the strictest level (alpha / m). The
margin that would give 80% power, and the samples (and clusters of the same size) that would give 80% power at
the chosen margin, are reported alongside, so an underpowered gate says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from evalkit.config import Strict, load_spec
from evalkit.errors import EvalkitError
from evalkit.results.queries import current_scores, stored_task_names, task_model_names, task_run_ids
from evalkit.results.scores import find_run, load_pairs
from evalkit.results.store import Store
from evalkit.stats import PairedData, holm, paired_bootstrap_distribution
from evalkit.views.health import HealthThresholds

TARGET_POWER = 0.8


class GateConfig(Strict):
    """gate.yaml: which metrics, their margins (in metric units), alpha, resamples, seed, multiplicity correction."""

    metrics: list[str] | None = Field(default=None, description="Metrics to gate; default: every shared metric.")
    margin: float | None = Field(default=None, description="Margin for metrics without their own entry.")
    margins: dict[str, float] = Field(default_factory=dict, description="Per-metric margins, in metric units.")
    alpha: float = 0.05
    n_boot: int = 10_000
    seed: int = 0
    correction: Literal["holm", "bh", "none"] = Field(
        default="holm",
        description="holm: within each task's gate; bh: Benjamini-Hochberg across the metric x task grid; none.",
    )
    cluster: Literal["auto", "none", "image", "study", "patient"] = Field(
        default="auto", description="Unit of resampling; auto: each sample's stored cluster (patient/study/image)."
    )
    inconclusive: Literal["pass", "fail"] = Field(
        default="fail", description="Exit of an inconclusive gate: fail (exit 3) or pass (exit 0)."
    )
    health: HealthThresholds = Field(
        default_factory=HealthThresholds,
        description="RL-health flag thresholds and the Goodhart check's settings (docs/rl-health.md).",
    )

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, value: float) -> float:
        if not (math.isfinite(value) and 0 < value < 0.5):
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
        if value is not None and not (math.isfinite(value) and value >= 0):
            # NaN compares false with everything, so an unchecked NaN margin would pass every metric.
            raise ValueError(f"margin must be >= 0 and finite (the regression the gate tolerates), not {value}")
        return value

    @field_validator("margins")
    @classmethod
    def _margins(cls, value: dict[str, float]) -> dict[str, float]:
        for name, margin in value.items():
            if not (math.isfinite(margin) and margin >= 0):
                raise ValueError(f"margin of '{name}' must be >= 0 and finite, not {margin}")
        return value


def _gated_by_default(name: str) -> bool:
    from evalkit.metrics import metric_class

    try:
        return bool(getattr(metric_class(name), "gated_by_default", True))
    except EvalkitError:
        return True  # a metric no longer registered: its stored scores are still gated


def load_gate_config(path: Path) -> GateConfig:
    return load_spec(GateConfig, Path(path))


VERDICTS = ("pass", "regression", "inconclusive")
EXIT_CODES = {"pass": 0, "regression": 1, "inconclusive": 3}  # 2 stays for input errors


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
    regression_upper: float  # one-sided upper confidence bound of the regression, at this metric's level
    level: float  # one-sided confidence level of regression_upper
    p_value: float  # non-inferiority: H0 regression >= margin
    p_adjusted: float
    passed: bool  # non-inferiority shown (verdict == "pass")
    se: float
    power: float  # P(pass) for a candidate equal to the baseline (normal approximation)
    margin_for_80: float  # the margin that would give 80% power at this n
    n_for_80: int  # samples needed for 80% power at this margin (same samples per cluster)
    vectorised: bool = True
    verdict: str = "pass"  # pass | regression | inconclusive
    regression_lower: float = float("nan")  # one-sided lower confidence bound of the regression
    p_inferiority: float = float("nan")  # inferiority: H0 regression <= margin
    p_inferiority_adjusted: float = float("nan")
    task: str = ""
    unit: str = "sample"  # the resampled unit
    n_clusters: int = 0
    clusters_for_80: int = 0  # clusters needed for 80% power at this margin


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
    inconclusive: str = "fail"  # what an inconclusive gate exits with: fail (3) or pass (0)
    tasks: list[str] = field(default_factory=list)  # member tasks of a grid gate (a task group)

    @property
    def verdict(self) -> str:
        """regression when any metric is shown worse than its margin, else inconclusive when any is not shown
        non-inferior, else pass."""
        found = {v.verdict for v in self.verdicts}
        return "regression" if "regression" in found else "inconclusive" if "inconclusive" in found else "pass"

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def exit_code(self) -> int:
        if self.verdict == "inconclusive" and self.inconclusive == "pass":
            return 0
        return EXIT_CODES[self.verdict]

    @property
    def power(self) -> float:
        """P(all metrics pass) for an unchanged candidate, if metrics were independent (positively correlated
        metrics pass together more often, so this is a lower bound in the usual case)."""
        return float(math.prod(v.power for v in self.verdicts))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict
        data["exit_code"] = self.exit_code
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


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (same order); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    if m:
        order = valid[np.argsort(p[valid], kind="stable")]
        scaled = p[order] * m / np.arange(1, m + 1)
        adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted.tolist()


def _levels(p_values: Sequence[float], alpha: float, correction: str) -> tuple[list[float], list[float]]:
    """(adjusted p-values, the one-sided alpha each metric's confidence bound is drawn at).

    Holm: alpha / (m − rank), the step-down level. BH: k·alpha / m with k the number of rejections (Benjamini and
    Yekutieli's false-coverage-rate adjusted level). none: alpha.
    """
    m = len(p_values)
    if correction == "holm":
        order = sorted(range(m), key=lambda i: p_values[i])
        step = [alpha] * m
        for rank, i in enumerate(order):
            step[i] = alpha / (m - rank)
        return holm(p_values), step
    if correction == "bh":
        adjusted = benjamini_hochberg(p_values)
        k = sum(1 for q in adjusted if q < alpha)
        return adjusted, [alpha * max(k, 1) / m] * m
    return list(p_values), [alpha] * m


@dataclass
class _Test:
    """One metric's raw bootstrap test, before the multiplicity correction of its family."""

    pair: PairedData
    task: str
    margin: float
    improvements: np.ndarray
    p_noninferiority: float
    p_inferiority: float


def _raw_tests(
    paired: Sequence[PairedData], margins: dict[str, float], n_boot: int, seed: int, task: str = ""
) -> list[_Test]:
    groups: dict[tuple[str, ...], list[PairedData]] = {}
    for p in paired:
        groups.setdefault(tuple(p.sample_ids), []).append(p)
    raw: dict[str, _Test] = {}
    for group in groups.values():
        deltas = paired_bootstrap_distribution([(p.a, p.b) for p in group], n_boot, seed, group[0].groups)
        for p, reps in zip(group, deltas, strict=True):
            sign = 1.0 if p.a.metric.higher_is_better else -1.0
            improvements = sign * reps[np.isfinite(reps)]
            margin = margins[p.metric]
            size = improvements.size + 1
            p_non = float((1 + (improvements <= -margin).sum()) / size)
            p_inf = float((1 + (improvements >= -margin).sum()) / size)
            raw[p.metric] = _Test(p, task, margin, improvements, p_non, p_inf)
    return [raw[p.metric] for p in paired if p.metric in raw]


def _decide(tests: Sequence[_Test], alpha: float, correction: str) -> list[MetricVerdict]:
    """Verdicts of one multiplicity family: a gate's metrics (Holm) or a metric x task grid (BH)."""
    adjusted, step = _levels([t.p_noninferiority for t in tests], alpha, correction)
    adjusted_inf, step_inf = _levels([t.p_inferiority for t in tests], alpha, correction)
    m = len(tests)
    strictest = alpha / m if correction in ("holm", "bh") and m else alpha
    normal = NormalDist()
    z = normal.inv_cdf(1 - strictest)
    z_power = normal.inv_cdf(TARGET_POWER)
    verdicts = []
    for i, t in enumerate(tests):
        p, margin, improvements = t.pair, t.margin, t.improvements
        sign = 1.0 if p.a.metric.higher_is_better else -1.0
        candidate, baseline = p.a.point(), p.b.point()
        delta = candidate - baseline
        regressions = -improvements
        upper = float(np.quantile(regressions, 1 - step[i])) if regressions.size else float("nan")
        lower = float(np.quantile(regressions, step_inf[i])) if regressions.size else float("nan")
        se = float(improvements.std(ddof=1)) if improvements.size > 1 else float("nan")
        groups = p.groups
        g = p.a.n if groups is None else int(groups.max()) + 1
        if se > 0:
            power = normal.cdf(margin / se - z)
            margin_80 = (z + z_power) * se
            # SE falls as 1/sqrt(clusters): more clusters of the same size are what more data means here.
            scale = (margin_80 / margin) ** 2 if margin > 0 else -1.0
            n_80 = math.ceil(p.a.n * scale) if margin > 0 else -1
            g_80 = math.ceil(g * scale) if margin > 0 else -1
        else:  # identical outputs on every sample: the improvement is exactly known
            power, margin_80, n_80, g_80 = (1.0 if margin > 0 else 0.0), 0.0, p.a.n, g
        if adjusted[i] < alpha:
            verdict = "pass"
        elif adjusted_inf[i] < alpha:
            verdict = "regression"
        else:
            verdict = "inconclusive"
        verdicts.append(
            MetricVerdict(
                metric=p.metric,
                higher_is_better=p.a.metric.higher_is_better,
                margin=margin,
                n=p.a.n,
                baseline=baseline,
                candidate=candidate,
                delta=delta,
                improvement=sign * delta,
                regression_upper=upper,
                level=1 - step[i],
                p_value=t.p_noninferiority,
                p_adjusted=adjusted[i],
                passed=verdict == "pass",
                se=se,
                power=float(power),
                margin_for_80=float(margin_80),
                n_for_80=int(n_80),
                vectorised=p.a.vectorised and p.b.vectorised,
                verdict=verdict,
                regression_lower=lower,
                p_inferiority=t.p_inferiority,
                p_inferiority_adjusted=adjusted_inf[i],
                task=t.task,
                unit=p.clustering.unit,
                n_clusters=g,
                clusters_for_80=int(g_80),
            )
        )
    return verdicts


def noninferiority(
    paired: Sequence[PairedData],
    margins: dict[str, float],
    *,
    alpha: float = 0.05,
    n_boot: int = 10_000,
    seed: int = 0,
    correction: str = "holm",
    task: str = "",
) -> list[MetricVerdict]:
    """Per-metric verdicts for candidate (`a` of each pair) against baseline (`b`), on their shared samples.

    pass: non-inferiority shown (adjusted p of H0 "regression >= margin" below alpha); regression: inferiority
    shown (adjusted p of H0 "regression <= margin" below alpha); inconclusive: neither.
    """
    return _decide(_raw_tests(paired, margins, n_boot, seed, task), alpha, correction)


def _task_tests(
    store: Store, task: str, candidate: str, baseline: str, config: GateConfig, notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any], list[_Test]]:
    """One task's runs and raw per-metric tests; what deserves a word goes to `notes`."""
    cand_run, base_run = find_run(store, task, candidate), find_run(store, task, baseline)
    if cand_run["run_id"] == base_run["run_id"]:
        raise EvalkitError(f"candidate and baseline are the same run ({cand_run['run_id']})")
    if cand_run.get("task_version") != base_run.get("task_version"):
        notes.append(
            f"{task}: task versions differ: candidate v{cand_run.get('task_version')}, "
            f"baseline v{base_run.get('task_version')}"
        )
    for run, role in ((cand_run, "candidate"), (base_run, "baseline")):
        if run.get("status") != "finished":
            notes.append(f"the {role} run {run['run_id']} is '{run.get('status')}', not finished")
    paired = load_pairs(store, task, cand_run, base_run, config.metrics, config.cluster)
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
        notes.append(f"{task}: margins given for metrics not gated here: {', '.join(unknown)}")
    counts = {}
    for run in (cand_run, base_run):
        current = current_scores(store, run["run_id"])
        counts[run["run_id"]] = {metric: len(ids) for metric, (ids, _, _) in current.items()}
    for p in paired:
        scored = (counts[cand_run["run_id"]].get(p.metric, 0), counts[base_run["run_id"]].get(p.metric, 0))
        if p.a.n < max(scored):
            notes.append(
                f"{task} {p.metric}: compared on the {p.a.n} shared samples (candidate scored {scored[0]}, "
                f"baseline {scored[1]})"
            )
    return cand_run, base_run, _raw_tests(paired, margins, config.n_boot, config.seed, task)


def gate_tasks(store: Store, task: str, candidate: str, baseline: str) -> list[str]:
    """The tasks a gate covers: the task itself, or the members of a task group that both models ran."""
    from evalkit.registry import task_groups

    members = task_groups().get(task)
    stored = set(stored_task_names(store))
    if not members or task in stored:
        return [task]
    ran = []
    for name in members:
        models, ids = set(task_model_names(store, name)), set(task_run_ids(store, name))
        if all(who in models or who in ids for who in (candidate, baseline)):
            ran.append(name)
    if not ran:
        raise EvalkitError(
            f"task group '{task}' ({', '.join(members)}): no member task has runs of both '{candidate}' and "
            f"'{baseline}'"
        )
    return ran


def run_gate(
    store: Store,
    task: str,
    candidate: str,
    baseline: str,
    config: GateConfig,
) -> GateResult:
    """Gate the latest run of `candidate` (card name or run id) against `baseline` on `task` (or a task group).

    A task group gives one verdict table over the metric x task grid: Holm within each task (each task is its
    own gate), or Benjamini-Hochberg across the whole grid with `correction: bh`.
    """
    notes: list[str] = []
    tasks = gate_tasks(store, task, candidate, baseline)
    per_task = [_task_tests(store, name, candidate, baseline, config, notes) for name in tasks]
    if config.correction == "bh":
        verdicts = _decide([t for _, _, tests in per_task for t in tests], config.alpha, "bh")
    else:
        verdicts = [v for _, _, tests in per_task for v in _decide(tests, config.alpha, config.correction)]
    cand_run, base_run, _ = per_task[0]
    grid = len(tasks) > 1
    return GateResult(
        task=task,
        candidate=cand_run["model"],
        baseline=base_run["model"],
        candidate_run=", ".join(r["run_id"] for r, _, _ in per_task) if grid else cand_run["run_id"],
        baseline_run=", ".join(r["run_id"] for _, r, _ in per_task) if grid else base_run["run_id"],
        alpha=config.alpha,
        n_boot=config.n_boot,
        seed=config.seed,
        correction=config.correction,
        verdicts=verdicts,
        notes=notes,
        inconclusive=config.inconclusive,
        tasks=tasks,
    )
