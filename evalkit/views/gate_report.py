"""The gate's verdicts as people read them: the markdown summary (a PR comment, `$GITHUB_STEP_SUMMARY`) and
JUnit XML (CI test reports). The decision itself is evalkit/views/gate.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.etree import ElementTree

from evalkit.stats import unit_text
from evalkit.views.gate import TARGET_POWER, GateResult, MetricVerdict


def _f(value: float, digits: int = 4, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _md(text: str) -> str:
    """Markdown table cell: no pipes, no HTML."""
    return str(text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


_STATUS = {"pass": "✅ PASS", "regression": "❌ REGRESSION", "inconclusive": "⚠️ INCONCLUSIVE"}
_CORRECTIONS = {
    "holm": "Holm across the metrics of each task",
    "bh": "Benjamini-Hochberg across the metric x task grid",
    "none": "no multiplicity correction",
}


def units_line(verdicts: Sequence[MetricVerdict]) -> str:
    """'resampled by patient (212 clusters)': which unit every interval of the gate resampled (per task in a grid)."""
    grid = len({v.task for v in verdicts}) > 1
    seen = dict.fromkeys((f"{v.task}: " if grid else "") + unit_text(v.unit, v.n_clusters) for v in verdicts)
    return "resampled " + "; ".join(seen) if seen else "resampled by sample"


def power_advice(v: MetricVerdict) -> str:
    """What 80% power needs, for an inconclusive or underpowered metric."""
    if v.n_for_80 < 0:
        return f"80% power needs a margin of {_f(v.margin_for_80)} (a margin of 0 can never be shown)"
    clusters = f" ({v.clusters_for_80} {v.unit}s)" if v.unit != "sample" else ""
    return (
        f"80% power needs a margin of {_f(v.margin_for_80)} at n={v.n}, or n≈{v.n_for_80}{clusters} at margin "
        f"{_f(v.margin)}"
    )


def to_markdown(result: GateResult) -> str:
    grid = len(result.tasks) > 1
    lines = [
        f"### evalkit gate: {_STATUS[result.verdict]}",
        "",
        f"Task `{_md(result.task)}`{' (' + ', '.join(result.tasks) + ')' if grid else ''}: candidate "
        f"**{_md(result.candidate)}** (`{result.candidate_run}`) vs baseline **{_md(result.baseline)}** "
        f"(`{result.baseline_run}`). Paired bootstrap non-inferiority and inferiority tests, "
        f"{result.n_boot} resamples, {units_line(result.verdicts)}, seed {result.seed}, alpha {result.alpha}, "
        f"{_CORRECTIONS[result.correction]}.",
        "",
        f"| {'task | ' if grid else ''}metric | n | baseline | candidate | Δ | regression bounds | margin | p (adj.) "
        "| power | verdict |",
        f"|{'---|' if grid else ''}---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in result.verdicts:
        arrow = "↑" if v.higher_is_better else "↓"
        shown = v.verdict if v.verdict == "pass" else f"**{v.verdict}**"
        p = v.p_inferiority_adjusted if v.verdict == "regression" else v.p_adjusted
        lines.append(
            f"| {_md(v.task) + ' | ' if grid else ''}{_md(v.metric)} {arrow} | {v.n} | {_f(v.baseline)} "
            f"| {_f(v.candidate)} | {_f(v.delta, signed=True)} | [{_f(v.regression_lower)}, {_f(v.regression_upper)}] "
            f"({v.level:.1%}) | {_f(v.margin)} | {_f(p)} | {v.power:.0%} | {shown} |"
        )
    lines += [
        "",
        "pass: the regression's upper bound is below the margin; regression: its lower bound is above it; "
        "inconclusive: neither (not enough data for this margin).",
        f"Power (chance that a candidate as good as the baseline passes every metric): about {result.power:.0%}.",
    ]
    if result.verdict == "inconclusive" and result.inconclusive == "pass":
        lines.append("- inconclusive metrics do not fail this build (`--inconclusive pass`).")
    for v in result.verdicts:
        if v.verdict == "inconclusive" or v.power < TARGET_POWER:
            what = "inconclusive" if v.verdict == "inconclusive" else "underpowered"
            where = f"{_md(v.task)} " if grid else ""
            lines.append(f"- {where}`{_md(v.metric)}` is {what} (power {v.power:.0%}): {power_advice(v)}.")
    for note in result.notes:
        lines.append(f"- note: {_md(note)}")
    return "\n".join(lines) + "\n"


def to_junit(result: GateResult) -> str:
    hard = {"regression"} | ({"inconclusive"} if result.inconclusive == "fail" else set())
    suite = ElementTree.Element(
        "testsuite",
        name=f"evalkit-gate.{result.task}",
        tests=str(len(result.verdicts)),
        failures=str(sum(v.verdict in hard for v in result.verdicts)),
        errors="0",
        skipped=str(sum(v.verdict == "inconclusive" and "inconclusive" not in hard for v in result.verdicts)),
    )
    properties = ElementTree.SubElement(suite, "properties")
    for key in ("candidate", "baseline", "candidate_run", "baseline_run", "alpha", "n_boot", "seed", "correction"):
        ElementTree.SubElement(properties, "property", name=key, value=str(getattr(result, key)))
    ElementTree.SubElement(properties, "property", name="verdict", value=result.verdict)
    ElementTree.SubElement(properties, "property", name="resampled", value=units_line(result.verdicts))
    ElementTree.SubElement(properties, "property", name="power", value=f"{result.power:.4f}")
    for v in result.verdicts:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"evalkit.views.gate.{v.task or result.task}",
            name=f"{v.metric} non-inferiority",
        )
        summary = (
            f"{v.metric}: {v.verdict}; candidate {_f(v.candidate)} vs baseline {_f(v.baseline)} "
            f"(delta {_f(v.delta, signed=True)}); regression bounds [{_f(v.regression_lower)}, "
            f"{_f(v.regression_upper)}] vs margin {_f(v.margin)}; adjusted p {_f(v.p_adjusted)} (non-inferiority), "
            f"{_f(v.p_inferiority_adjusted)} (inferiority); power {v.power:.0%}; n {v.n}, resampled by {v.unit}"
        )
        if v.verdict == "inconclusive":
            summary += f"; {power_advice(v)}"
        if v.verdict in hard:
            message = (
                f"{v.metric} regressed by more than {_f(v.margin)}"
                if v.verdict == "regression"
                else f"{v.metric}: inconclusive at margin {_f(v.margin)}; {power_advice(v)}"
            )
            ElementTree.SubElement(case, "failure", message=message, type=v.verdict).text = summary
        elif v.verdict == "inconclusive":
            ElementTree.SubElement(case, "skipped", message=f"inconclusive; {power_advice(v)}")
        ElementTree.SubElement(case, "system-out").text = summary
    ElementTree.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suite, encoding="unicode") + "\n"
