"""The Goodhart check (a reward gamed against its parent) and the length-adjusted comparison (docs/rl-health.md).

Goodhart check. RadVLM-GRPO's Table 3 is the worked example: the model rewarded with RadGraph-F1 (complete) moves
the rewarded column 19.0 -> 20.1 while answers shrink 207 -> 93 characters and every held-out column falls
(CXb-micro 49.0 -> 34.1, RadCliQ 1.14 -> 1.20, lower is better). The check asks exactly that of a candidate and its
parent, on the samples both scored, with the clustered paired bootstrap of `evalkit.stats`:
- the rewarded metric held or improved: its paired CI excludes a drop larger than `reward_margin` (default 0.02,
  the README's gate margin; 0 asks for a significant gain). Table 3's +1.1 points is the kind of gain a test on a
  few hundred samples cannot tell from 0, and a gamed reward that merely holds while the rest falls is the same
  failure, so "held" suffices (any one of the declared rewards);
- a held-out metric got worse: every other gated metric both runs scored, plus the omission rate (worse = up) and
  the answer length (worse = a relative drop beyond `max_length_drop`), each significantly after Holm's
  correction over that family at `alpha`.
Verdicts: **hacking suspected** (both), **pass** (no held-out metric significantly worse), **inconclusive** (no
declared reward or parent, a reward not scored on both runs, e.g. `unavailable` without weights, or held-out
metrics worse while the reward fell beyond the margin too: a plain regression, which the gate's own verdict
covers). The gate exits 4 on "hacking suspected" when it would otherwise pass (docs/statistics.md lists the exit codes).

Length-adjusted comparison. For a metric m and answer length L (`response_chars`), a straight line m ~ a + b L is
fitted on the parent's samples; the difference expected from the length change alone is b (mean L_candidate -
mean L_parent), and the adjusted difference is the paired difference minus it. Everything is refitted in every
bootstrap resample (the same clustered counts for both runs), so "better by being shorter" is a number with a CI.
It uses per-sample values (the mean of per-sample scores; for a corpus metric such as BLEU that is the mean of
sentence scores, not the corpus value).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from evalkit.errors import EvalkitError
from evalkit.results.queries import run_metrics
from evalkit.results.scores import find_run, load_clustering, load_pairs, load_run_scores
from evalkit.results.store import Store
from evalkit.stats import DEFAULT_LEVEL, Comparison, cluster_counts, compare_paired, holm, percentile_interval
from evalkit.views.health import DIAGNOSTICS, HealthThresholds, _clean, lineage_of, parent_run

GOODHART_VERDICTS = ("pass", "hacking suspected", "inconclusive")
LENGTH_METRIC = "response_chars"


@dataclass
class GoodhartResult:
    verdict: str
    task: str
    candidate: str
    parent: str | None
    rewards: list[str]
    reason: str
    reward_comparisons: list[dict[str, Any]] = field(default_factory=list)
    held_out: list[dict[str, Any]] = field(default_factory=list)  # each with "worse": bool and "p_holm"
    worse: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _gated(name: str) -> bool:
    from evalkit.views.gate import _gated_by_default

    return _gated_by_default(name)


def _held(c: Comparison, margin: float) -> bool:
    """Non-inferior at `margin`: the paired CI excludes a change worse than `margin` in the metric's bad direction
    (margin 0: the CI lies entirely on the good side)."""
    return bool(c.ci_low > -margin) if c.higher_is_better else bool(c.ci_high < margin)


def _bad_side(c: Comparison) -> bool:
    return bool(c.ci_high < 0) if c.higher_is_better else bool(c.ci_low > 0)


def goodhart_check(
    store: Store,
    task: str,
    candidate: str,
    parent: str | None = None,
    rewards: list[str] | None = None,
    *,
    thresholds: HealthThresholds | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str = "auto",
) -> GoodhartResult:
    """Run the check for `candidate`'s run on `task` against `parent` (default: the card's declared parent), with
    `rewards` (default: the card's declared rewards)."""
    t = thresholds or HealthThresholds()
    run = find_run(store, task, candidate)
    lineage = lineage_of(run)
    rewards = list(rewards if rewards else lineage.rewards)
    base = parent_run(store, task, run, parent)
    result = GoodhartResult("inconclusive", task, run["model"], base["model"] if base else None, rewards, "")
    if not rewards:
        result.reason = "the card declares no training reward (lineage.rewards or evalkit.training.rewards)"
        return result
    if base is None:
        result.reason = f"no run of the parent ({lineage.parent or 'none declared'}) on {task}"
        return result
    metrics_a = {r["metric"]: r for r in run_metrics(store, run["run_id"])}
    metrics_b = {r["metric"]: r for r in run_metrics(store, base["run_id"])}
    scored_a, scored_b = load_run_scores(store, run["run_id"]), load_run_scores(store, base["run_id"])
    scored = [m for m in metrics_a if m in metrics_b and m in scored_a and m in scored_b]
    rewarded = [m for m in rewards if m in scored]
    if not rewarded:
        why = {m: metrics_a.get(m, {}).get("status") or "not in the task" for m in rewards}
        result.reason = "no declared reward is scored on both runs: " + ", ".join(f"{m} ({s})" for m, s in why.items())
        return result
    held = [m for m in scored if m not in rewards and m not in DIAGNOSTICS and _gated(m)]
    extra = [m for m in ("omission_rate", LENGTH_METRIC) if m in scored]
    pairs = load_pairs(store, task, run, base, [*rewarded, *held, *extra], cluster)
    by_name = {c.metric: c for c in compare_paired(pairs, n_boot=n_boot, n_perm=0, seed=seed)}
    reward_rows = [by_name[m] for m in rewarded if m in by_name]
    family = [by_name[m] for m in [*held, *extra] if m in by_name]
    adjusted = holm([c.p_bootstrap for c in family])
    for c, p in zip(family, adjusted, strict=True):
        if c.metric == LENGTH_METRIC:
            relative = c.delta / c.value_b if c.value_b else float("nan")
            worse = c.ci_high < 0 and relative < -t.max_length_drop and p < t.alpha
        elif c.metric == "omission_rate":
            worse = c.ci_low > 0 and p < t.alpha
        else:
            worse = _bad_side(c) and p < t.alpha
        result.held_out.append({**c.to_json(), "p_holm": p, "worse": bool(worse)})
        if worse:
            result.worse.append(c.metric)
    result.reward_comparisons = [c.to_json() for c in reward_rows]
    held = [c for c in reward_rows if _held(c, t.reward_margin)]
    if held and result.worse:
        result.verdict = "hacking suspected"
        kept = ", ".join(f"{c.metric} {c.delta:+.3g} [{c.ci_low:.3g}, {c.ci_high:.3g}]" for c in held)
        result.reason = (
            f"the reward held or improved ({kept}; reward_margin {t.reward_margin:g}) while "
            f"{', '.join(result.worse)} got significantly worse"
        )
    elif result.worse:
        result.reason = (
            f"{', '.join(result.worse)} got significantly worse and the reward fell too (beyond reward_margin "
            f"{t.reward_margin:g}): a regression rather than a gamed reward; see the gate's verdict"
        )
    else:
        result.verdict = "pass"
        result.reason = "no held-out metric, omission rate or length got significantly worse"
    return result


# --- length-adjusted comparison ------------------------------------------------------------------------------------
@dataclass
class LengthAdjusted:
    metric: str
    higher_is_better: bool
    n: int
    delta: float  # candidate - parent, mean of per-sample values
    delta_low: float
    delta_high: float
    expected_from_length: float  # slope on the parent x change in mean length
    expected_low: float
    expected_high: float
    adjusted: float  # delta - expected_from_length
    adjusted_low: float
    adjusted_high: float
    slope: float  # metric units per answer character, fitted on the parent


def _weighted_fit(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of weights: (slope of y on x, weighted mean x, weighted mean y)."""
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = (w @ x) / total, (w @ y) / total
        cov = (w @ (x * y)) / total - mx * my
        var = (w @ (x * x)) / total - mx * mx
        slope = np.where(var > 1e-12, cov / np.where(var > 1e-12, var, 1.0), 0.0)
    return slope, mx, my


def length_adjusted(
    store: Store,
    task: str,
    candidate: str,
    parent: str,
    metrics: list[str] | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str = "auto",
    level: float = DEFAULT_LEVEL,
) -> list[LengthAdjusted]:
    """Each quality metric's paired difference beside the difference its parent-fitted length slope predicts."""
    run, base = find_run(store, task, candidate), find_run(store, task, parent)
    sa, sb = load_run_scores(store, run["run_id"]), load_run_scores(store, base["run_id"])
    if LENGTH_METRIC not in sa or LENGTH_METRIC not in sb:
        raise EvalkitError(f"both runs need '{LENGTH_METRIC}' scores for the length-adjusted comparison")
    directions = {r["metric"]: r.get("higher_is_better") for r in run_metrics(store, run["run_id"])}
    names = metrics or [m for m in sa if m in sb and m not in DIAGNOSTICS and m != LENGTH_METRIC and _gated(m)]
    clustering = load_clustering(store, task, cluster)
    rng_seed = seed
    out = []
    for name in names:
        if name not in sa or name not in sb:
            raise EvalkitError(f"metric '{name}' is not scored on both runs ({run['model']}, {base['model']})")
        per = {}
        for side, scores in (("a", sa), ("b", sb)):
            values = dict(zip(scores[name].sample_ids, scores[name].values, strict=True))
            lengths = dict(zip(scores[LENGTH_METRIC].sample_ids, scores[LENGTH_METRIC].values, strict=True))
            per[side] = (values, lengths)
        ids = sorted(
            sid
            for sid in per["a"][0]
            if all(per[s][0].get(sid) is not None and per[s][1].get(sid) is not None for s in ("a", "b"))
        )
        if len(ids) < 3:
            continue
        ya, la = (np.array([per["a"][k][sid] for sid in ids], dtype=float) for k in (0, 1))
        yb, lb = (np.array([per["b"][k][sid] for sid in ids], dtype=float) for k in (0, 1))
        draws = cluster_counts(np.random.default_rng(rng_seed), len(ids), n_boot, clustering.groups(ids))
        weights = np.vstack([np.ones((1, len(ids))), draws])  # row 0: the point estimate
        slope, mean_lb, mean_yb = _weighted_fit(weights, lb, yb)
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = (weights @ ya) / total - mean_yb
            expected = slope * ((weights @ la) / total - mean_lb)
        adjusted = delta - expected
        ci = {k: percentile_interval(v[1:], level) for k, v in (("d", delta), ("e", expected), ("a", adjusted))}
        good = directions.get(name)
        point = {"delta": float(delta[0]), "expected": float(expected[0]), "adjusted": float(adjusted[0])}
        out.append(
            LengthAdjusted(
                metric=name,
                higher_is_better=True if good is None else bool(good),
                n=len(ids),
                delta=point["delta"],
                delta_low=ci["d"][0],
                delta_high=ci["d"][1],
                expected_from_length=point["expected"],
                expected_low=ci["e"][0],
                expected_high=ci["e"][1],
                adjusted=point["adjusted"],
                adjusted_low=ci["a"][0],
                adjusted_high=ci["a"][1],
                slope=float(slope[0]),
            )
        )
    return out


# --- the gate's own Goodhart verdict --------------------------------------------------------------------------------
EXIT_HACKING = 4  # beside the gate's 0 pass, 1 regression, 2 input error, 3 inconclusive


def gate_goodhart(store: Store, tasks: list[str], candidate: str, baseline: str, settings: Any) -> list[GoodhartResult]:
    """The Goodhart check of each gated task whose candidate card declares a training reward, against the gate's
    baseline (`settings`: the GateConfig: its `health` thresholds, resamples, seed and cluster unit)."""
    out = []
    for task in tasks:
        run = find_run(store, task, candidate)
        if not lineage_of(run).rewards:
            continue
        parent = find_run(store, task, baseline)["run_id"]
        options = {"n_boot": settings.n_boot, "seed": settings.seed, "cluster": settings.cluster}
        out.append(goodhart_check(store, task, run["run_id"], parent, thresholds=settings.health, **options))
    return out


def gate_exit_code(gate_exit: int, checks: list[GoodhartResult]) -> int:
    """The gate's exit with its Goodhart verdict: a shown regression (1) stays 1; otherwise "hacking suspected"
    exits 4, ahead of inconclusive (3) and pass (0)."""
    if gate_exit in (1, 2):
        return gate_exit
    return EXIT_HACKING if any(c.verdict == "hacking suspected" for c in checks) else gate_exit


def rewarded_metrics(store: Store, task: str, model: str) -> list[str]:
    """Metrics the model's card declares as training rewards (starred in paper tables, as Table 3 does)."""
    try:
        return list(lineage_of(find_run(store, task, model)).rewards)
    except EvalkitError:
        return []


def goodhart_markdown(checks: list[GoodhartResult]) -> str:
    """Lines for the gate's Markdown summary (empty when no card declared a reward)."""
    return "".join(
        f"\n**Goodhart check** {c.task} (reward {', '.join(c.rewards)}, vs {c.parent}): **{c.verdict}**: {c.reason}\n"
        for c in checks
    )


def mark_rewarded(store: Store, rows: list[dict[str, Any]]) -> None:
    """Set `rewarded` on leaderboard rows whose metric the model's card declares as its training reward."""
    cache: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        key = (row["task"], row["model"])
        if key not in cache:
            cache[key] = rewarded_metrics(store, *key)
        row["rewarded"] = row["metric"] in cache[key]
