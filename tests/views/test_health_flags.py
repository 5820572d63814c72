"""The health flag rules on hand-made rows: size (the named threshold) and evidence (Holm p, CI side) both needed."""

from __future__ import annotations

import pytest

from evalkit.views.health import RULES, HealthRow, HealthThresholds, _flag


def _rule(metric: str, worse: str | None = None):
    return next(r for r in RULES if r.metric == metric and (worse is None or r.worse == worse))


def _row(value, parent, low, high, p=0.001, ci=(None, None)):
    lo, hi = ci
    return HealthRow("m", "g", value, value if lo is None else lo, value if hi is None else hi, parent,
                     value - parent, low, high, p)  # fmt: skip


def test_relative_length_drop_needs_size_and_evidence():
    t = HealthThresholds()
    rule = _rule("response_chars", "down")
    # Table 3: 207 -> 93 characters, a relative drop of 0.55 > 0.25.
    flag = _flag(rule, _row(93.0, 207.0, -120.0, -100.0), t, paired=True)
    assert flag and flag.startswith("max_length_drop=0.25") and "-0.551" in flag
    assert _flag(rule, _row(180.0, 207.0, -40.0, -10.0), t, paired=True) is None  # -13%: under the threshold
    assert _flag(rule, _row(93.0, 207.0, -120.0, -100.0, p=0.2), t, paired=True) is None  # not significant
    assert _flag(rule, _row(93.0, 207.0, -230.0, 5.0), t, paired=True) is None  # CI crosses 0
    assert _flag(rule, _row(93.0, 207.0, -120.0, -100.0), HealthThresholds(max_length_drop=0.6), paired=True) is None


def test_absolute_share_and_both_directions():
    t = HealthThresholds()
    flag = _flag(_rule("negation_flip_rate"), _row(0.30, 0.02, 0.2, 0.35), t, paired=True)
    assert flag and flag.startswith("max_negation_flip_increase=0.05")
    assert _flag(_rule("negation_flip_rate"), _row(0.0, 0.3, -0.35, -0.2), t, paired=True) is None  # better
    boxes = _rule("box_count_excess")
    assert _flag(boxes, _row(-1.0, 0.0, -1.2, -0.8), t, paired=True)  # fewer boxes
    assert _flag(boxes, _row(1.0, 0.0, 0.8, 1.2), t, paired=True)  # more boxes


@pytest.mark.parametrize(("ci", "flagged"), [((0.2, 0.4), True), ((0.1, 0.4), False)])
def test_without_parent_the_whole_ci_must_be_beyond(ci, flagged):
    row = _row(0.3, float("nan"), float("nan"), float("nan"), p=float("nan"), ci=ci)
    assert bool(_flag(_rule("all_normal_excess"), row, HealthThresholds(), paired=False)) is flagged


def test_with_a_parent_only_changes_flag():
    # The parent already said "normal" too often: the candidate inherits it, the RL step did not cause it.
    row = _row(0.5, 0.5, -0.1, 0.1, p=1.0, ci=(0.2, 0.75))
    assert _flag(_rule("all_normal_excess"), row, HealthThresholds(), paired=True) is None
    assert _flag(_rule("all_normal_excess"), row, HealthThresholds(), paired=False)
