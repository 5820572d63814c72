"""RL health of a run: its diagnostics with CIs, each against the parent checkpoint, and the flags raised by named,
documented thresholds (docs/rl-health.md).

Everything comes from the store: the diagnostics are metrics (`evalkit.metrics.health_*`) whose per-sample values
and sufficient statistics were stored when the run was scored, so the CIs and the paired contrasts are the same
clustered resampling as every other metric (`evalkit.stats`). A flag needs both a size (the threshold, in the
diagnostic's units) and evidence (the Holm-adjusted paired-bootstrap p-value below alpha, over the diagnostics of
the table): a large but noisy change is shown, not flagged.

Without a parent, only the diagnostics that have a reference of their own (the task's references: length ratio,
the all-normal rate against the references' rate) or an absolute meaning (empty answers, template collapse) can
flag, and they do so when the whole CI lies beyond the threshold. With a parent, only changes flag: a property the
parent already had is not what the RL step did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from evalkit.config import Lineage, Strict
from evalkit.errors import EvalkitError
from evalkit.results.queries import run_metrics
from evalkit.results.scores import find_run, load_clustering, load_pairs, load_run_scores, run_intervals
from evalkit.results.store import Store, loads
from evalkit.stats import DEFAULT_LEVEL, Comparison, compare_paired


class HealthThresholds(Strict):
    """Named defaults of the health flags; a gate YAML's `health:` section (or `evalkit health --config`) changes
    them. Changes are in the diagnostic's own units against the parent (absolute shares unless named relative)."""

    max_length_drop: float = Field(
        default=0.25, ge=0, le=1, description="relative drop of response_chars vs the parent (Table 3: 207->93 = 0.55)"
    )
    max_length_growth: float = Field(default=1.0, ge=0, description="relative growth of response_chars vs the parent")
    min_length_ratio: float = Field(default=0.5, ge=0, description="no parent: answer/reference length below this")
    max_empty_increase: float = Field(default=0.05, ge=0, description="empty_answer share increase")
    max_unclosed_think_increase: float = Field(default=0.05, ge=0, description="unclosed_think share increase")
    max_repetition_increase: float = Field(
        default=0.05, ge=0, description="repeated_sentences / repeated_trigrams share increase"
    )
    max_omission_increase: float = Field(default=0.10, ge=0, description="omission_rate increase")
    max_invention_increase: float = Field(default=0.05, ge=0, description="invention_rate increase")
    max_negation_flip_increase: float = Field(default=0.05, ge=0, description="negation_flip_rate increase")
    max_all_normal_increase: float = Field(default=0.10, ge=0, description="all_normal_rate increase")
    max_all_normal_excess: float = Field(
        default=0.15, ge=0, description="no parent: all-normal rate above the references' own rate"
    )
    max_thinking_only_increase: float = Field(default=0.10, ge=0, description="thinking_only_findings increase")
    max_distinct_drop: float = Field(
        default=0.5, ge=0, le=1, description="relative drop of distinct_answers / distinct_2 vs the parent"
    )
    max_cluster_increase: float = Field(default=0.20, ge=0, description="largest_cluster_share increase")
    max_cluster_share: float = Field(default=0.5, ge=0, le=1, description="no parent: largest_cluster_share above")
    max_self_bleu_increase: float = Field(default=0.05, ge=0, description="self_bleu_presence increase")
    max_box_count_change: float = Field(default=0.5, ge=0, description="|box_count_excess| change (boxes)")
    max_no_box_increase: float = Field(default=0.10, ge=0, description="no_box_rate increase")
    max_whole_image_increase: float = Field(default=0.10, ge=0, description="whole_image_box_rate increase")
    max_template_increase: float = Field(
        default=0.20, ge=0, description="template_share increase (answers identical to normal-template's)"
    )
    max_template_share: float = Field(default=0.5, ge=0, le=1, description="no parent: template_share CI above")
    max_token_limit_increase: float = Field(default=0.05, ge=0, description="token_limit_share increase")
    max_token_limit_share: float = Field(default=0.10, ge=0, le=1, description="no parent: token_limit_share above")
    max_prior_box_increase: float = Field(default=0.10, ge=0, description="prior_box_share increase")
    alpha: float = Field(default=0.05, gt=0, lt=0.5, description="Holm-adjusted level for a flag against a parent")
    reward_margin: float = Field(
        default=0.02,
        ge=0,
        description="Goodhart check: the rewarded metric 'held' when its paired CI excludes a drop larger than this "
        "(metric units; 0 asks for a significant improvement)",
    )


@dataclass(frozen=True)
class Rule:
    """How a diagnostic flags: `worse` is the bad direction ('up', 'down' or 'both'), `relative` compares the change
    to the parent's value, `threshold` names a HealthThresholds field; `absolute` a field for runs without parent."""

    metric: str
    group: str
    worse: Literal["up", "down", "both"]
    threshold: str | None = None
    relative: bool = False
    absolute: str | None = None


# The table's rows, in order. Length rows also cover Table 3's ANC (`response_chars`).
RULES: tuple[Rule, ...] = (
    Rule("response_chars", "length", "down", "max_length_drop", relative=True),
    Rule("response_chars", "length", "up", "max_length_growth", relative=True),
    Rule("answer_words", "length", "both"),
    Rule("length_ratio", "length", "down", None, absolute="min_length_ratio"),
    Rule("empty_answer", "length", "up", "max_empty_increase", absolute="max_empty_increase"),
    Rule("unclosed_think", "thinking", "up", "max_unclosed_think_increase", absolute="max_unclosed_think_increase"),
    Rule("thinking_chars", "thinking", "both"),
    Rule("thinking_only_findings", "thinking", "up", "max_thinking_only_increase"),
    Rule("omission_rate", "findings", "up", "max_omission_increase"),
    Rule("invention_rate", "findings", "up", "max_invention_increase"),
    Rule("negation_flip_rate", "findings", "up", "max_negation_flip_increase"),
    Rule("all_normal_rate", "findings", "up", "max_all_normal_increase"),
    Rule("omission_rate_chexbert", "findings", "up", "max_omission_increase"),
    Rule("invention_rate_chexbert", "findings", "up", "max_invention_increase"),
    Rule("negation_flip_rate_chexbert", "findings", "up", "max_negation_flip_increase"),
    Rule("all_normal_excess", "findings", "up", None, absolute="max_all_normal_excess"),
    Rule("distinct_answers", "collapse", "down", "max_distinct_drop", relative=True),
    Rule("largest_cluster_share", "collapse", "up", "max_cluster_increase", absolute="max_cluster_share"),
    Rule("distinct_2", "collapse", "down", "max_distinct_drop", relative=True),
    Rule("self_bleu_presence", "collapse", "up", "max_self_bleu_increase"),
    Rule("repeated_sentences", "degeneration", "up", "max_repetition_increase"),
    Rule("repeated_trigrams", "degeneration", "up", "max_repetition_increase"),
    Rule("template_share", "collapse", "up", "max_template_increase", absolute="max_template_share"),
    Rule("token_limit_share", "length", "up", "max_token_limit_increase", absolute="max_token_limit_share"),
    Rule("box_count_excess", "grounding", "both", "max_box_count_change"),
    Rule("no_box_rate", "grounding", "up", "max_no_box_increase"),
    Rule("whole_image_box_rate", "grounding", "up", "max_whole_image_increase"),
    Rule("prior_box_share", "grounding", "up", "max_prior_box_increase"),
)
# Rows computed at read time from stored outputs of two runs (or a run's decoding), not stored metrics: a metric
# sees one answer and its sample, not another model's answer to the same sample (evalkit.views.health_outputs).
OUTPUT_DIAGNOSTICS: tuple[str, ...] = ("template_share", "token_limit_share", "prior_box_share")
DIAGNOSTICS: tuple[str, ...] = tuple(m for m in dict.fromkeys(r.metric for r in RULES) if m not in OUTPUT_DIAGNOSTICS)


@dataclass
class HealthRow:
    metric: str
    group: str
    value: float
    ci_low: float
    ci_high: float
    parent_value: float = float("nan")
    delta: float = float("nan")  # candidate - parent, the diagnostic's units
    delta_low: float = float("nan")
    delta_high: float = float("nan")
    p_holm: float = float("nan")
    flags: list[str] = field(default_factory=list)  # "<threshold name> = <value>: <what happened>"


@dataclass
class HealthReport:
    task: str
    model: str
    run_id: str
    parent: str | None
    parent_run_id: str | None
    rows: list[HealthRow]
    thresholds: HealthThresholds
    label_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    parent_label_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    unit: str = "sample"
    n_boot: int = 0

    @property
    def flagged(self) -> bool:
        return any(r.flags for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["thresholds"] = self.thresholds.model_dump()
        data["flagged"] = self.flagged
        return _clean(data)


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


# --- lineage: a run's parent and rewards -------------------------------------------------------------------------
def run_card(run: dict[str, Any]) -> dict[str, Any]:
    """The card a run stored (what it ran), as a dict; {} for runs that stored none."""
    card = loads(run.get("card"), {}) if isinstance(run.get("card"), str) else run.get("card")
    return card or {}


def lineage_of(run: dict[str, Any]) -> Lineage:
    """Parent and rewards of the model behind a run: the stored card's `lineage`, else its `training:` block
    (`base_card`, `rewards`), else today's card of that name (external cards that gained a lineage later)."""
    card = run_card(run)
    if card.get("lineage"):
        return Lineage.model_validate(card["lineage"])
    training = card.get("training") or {}
    if training.get("base_card") or training.get("rewards"):
        return Lineage(parent=training.get("base_card"), rewards=list(training.get("rewards") or []))
    from evalkit.registry import all_cards

    known = all_cards().get(run["model"])
    if known is not None and known.lineage is not None:
        return known.lineage
    return Lineage()


def parent_run(store: Store, task: str, run: dict[str, Any], parent: str | None) -> dict[str, Any] | None:
    """The parent's run on the task: the one named, else the lineage's parent when it has a run; None otherwise."""
    if parent:
        return find_run(store, task, parent)
    declared = lineage_of(run).parent
    if not declared:
        return None
    try:
        return find_run(store, task, declared)
    except EvalkitError:
        return None


# --- the table ----------------------------------------------------------------------------------------------------
def health_report(
    store: Store,
    task: str,
    model: str,
    parent: str | None = None,
    *,
    thresholds: HealthThresholds | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    cluster: str = "auto",
    level: float = DEFAULT_LEVEL,
) -> HealthReport:
    """The diagnostics of `model`'s run on `task` with CIs, against `parent` (or the card's declared parent when it
    has a run of the task), flagged by `thresholds`."""
    thresholds = thresholds or HealthThresholds()
    run = find_run(store, task, model)
    stored = {row["metric"] for row in run_metrics(store, run["run_id"])}
    names = [m for m in DIAGNOSTICS if m in stored]
    if not names:
        raise EvalkitError(
            f"run {run['run_id']} ({run['model']} on {task}) has no RL-health diagnostics; score them with "
            f"`evalkit run --model {run['model']} --task {task}` (stored generations are re-scored, not regenerated)"
        )
    cis = run_intervals(store, run, names, n_boot=n_boot, seed=seed, level=level, cluster=cluster)
    base = parent_run(store, task, run, parent)
    if base is not None and base["run_id"] == run["run_id"]:
        raise EvalkitError(f"--parent names the run itself ({run['run_id']}); name the checkpoint it was trained from")
    comparisons: dict[str, Comparison] = {}
    if base is not None:
        shared = [m for m in names if m in {r["metric"] for r in run_metrics(store, base["run_id"])}]
        if shared:
            pairs = load_pairs(store, task, run, base, shared, cluster)
            comparisons = {c.metric: c for c in compare_paired(pairs, n_boot=n_boot, n_perm=0, seed=seed, level=level)}
            _holm_bootstrap(comparisons)
    from evalkit.views.health_outputs import output_diagnostics

    extra_cis, extra_comparisons = output_diagnostics(store, task, run, base, n_boot=n_boot, seed=seed,
                                                      cluster=cluster, level=level)  # fmt: skip
    cis = {**cis, **extra_cis}
    comparisons = {**comparisons, **extra_comparisons}
    if extra_comparisons:
        _holm_bootstrap(comparisons)
    names = [*names, *extra_cis]
    rows = []
    for name in names:
        ci = cis.get(name)
        if ci is None:
            continue
        row = HealthRow(name, next(r.group for r in RULES if r.metric == name), ci.value, ci.ci_low, ci.ci_high)
        c = comparisons.get(name)
        if c is not None:
            row.parent_value, row.delta, row.delta_low, row.delta_high = c.value_b, c.delta, c.ci_low, c.ci_high
            row.p_holm = c.p_bootstrap_holm
        for rule in (r for r in RULES if r.metric == name):
            flag = _flag(rule, row, thresholds, c is not None)
            if flag:
                row.flags.append(flag)
        rows.append(row)
    report = HealthReport(
        task, run["model"], run["run_id"], base["model"] if base else None, base["run_id"] if base else None, rows,
        thresholds, unit=load_clustering(store, task, cluster).unit, n_boot=n_boot,
    )  # fmt: skip
    report.label_rates = _label_rates(store, run["run_id"])
    if base is not None:
        report.parent_label_rates = _label_rates(store, base["run_id"])
    return report


def _holm_bootstrap(comparisons: dict[str, Comparison]) -> None:
    """Holm over every diagnostic of the table at once (compare_paired corrects within a sample set only)."""
    from evalkit.stats import holm

    ordered = list(comparisons.values())
    for c, adjusted in zip(ordered, holm([c.p_bootstrap for c in ordered]), strict=True):
        c.p_bootstrap_holm = adjusted


def _flag(rule: Rule, row: HealthRow, t: HealthThresholds, paired: bool) -> str | None:
    if paired and rule.threshold:
        limit = float(getattr(t, rule.threshold))
        change = row.delta / abs(row.parent_value) if rule.relative and row.parent_value else row.delta
        if not np.isfinite(change) or not row.p_holm < t.alpha:
            return None
        kind = "relative change" if rule.relative else "change"
        if rule.worse in ("up", "both") and change > limit and row.delta_low > 0:
            return f"{rule.threshold}={limit:g}: {kind} {change:+.3g} vs parent (p_holm {row.p_holm:.3g})"
        if rule.worse in ("down", "both") and change < -limit and row.delta_high < 0:
            return f"{rule.threshold}={limit:g}: {kind} {change:+.3g} vs parent (p_holm {row.p_holm:.3g})"
        return None
    if rule.absolute and not paired:
        limit = float(getattr(t, rule.absolute))
        if rule.worse == "down" and row.ci_high < limit:
            return f"{rule.absolute}={limit:g}: CI [{row.ci_low:.3g}, {row.ci_high:.3g}] below"
        if rule.worse == "up" and row.ci_low > limit:
            return f"{rule.absolute}={limit:g}: CI [{row.ci_low:.3g}, {row.ci_high:.3g}] above"
    return None


def _label_rates(store: Store, run_id: str) -> dict[str, dict[str, float]]:
    from evalkit.metrics.health_text import label_rates

    scores = load_run_scores(store, run_id, ["omission_rate"])
    return label_rates(scores["omission_rate"].stats) if "omission_rate" in scores else {}
