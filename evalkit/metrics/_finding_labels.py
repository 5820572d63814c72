"""A weight-free finding labeller for the RL-health diagnostics: which CheXpert observations a text asserts and
which it negates.

Why not CheXbert: the health diagnostics must run everywhere the phantom demo runs (CI, a laptop, no weights), and
they only need the direction of each mention (asserted / negated / absent), not CheXbert's uncertain class. The
rules are keyword patterns per observation with a NegEx-style cue ("no", "without", "negative for"...) that negates
every observation after it up to the end of its clause, plus the "is normal" / "are clear" phrasings radiologists
use for a negative finding. They label every sentence the phantom report writer uses exactly as the phantom's own
labels (tests/metrics/test_health_metrics.py checks it on the whole phantom test split); on free text they are a proxy,
documented as such (docs/rl-health.md), and CheXbert remains the metric to report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# The observations a report can assert, with the patterns that mention them (lower-case text).
_MENTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Cardiomegaly",
        (
            r"cardiomegaly",
            r"heart (?:size )?is enlarged",
            r"enlarged (?:heart|cardiac silhouette)",
            r"cardiomediastinal silhouette is enlarged",
        ),
    ),
    ("Enlarged Cardiomediastinum", (r"mediastin\w* (?:is )?widen", r"enlarged cardiomediastin\w*")),
    ("Lung Lesion", (r"nodul\w*", r"\bmass\b", r"\blesion")),
    ("Lung Opacity", (r"(?<!nodular )opacit\w*",)),
    ("Consolidation", (r"consolidation",)),
    ("Edema", (r"edema",)),
    ("Pneumonia", (r"pneumonia",)),
    ("Atelectasis", (r"atelecta\w*",)),
    ("Pneumothorax", (r"pneumothora\w*",)),
    ("Pleural Effusion", (r"effusion",)),
    ("Fracture", (r"fracture",)),
    ("Support Devices", (r"\btube\b", r"catheter", r"\bij line\b", r"pacemaker", r"\bpicc\b")),
)
# CheXpert's hierarchy: asserting a child asserts its parent (negating it does not negate the parent).
_IMPLIES = {"Cardiomegaly": "Enlarged Cardiomediastinum", "Consolidation": "Lung Opacity"}
# Phrasings that negate an observation without a negation cue ("heart size is normal").
_NORMAL: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Cardiomegaly", (r"heart size is normal", r"heart is normal in size", r"heart size is within normal")),
    (
        "Enlarged Cardiomediastinum",
        (r"cardiomediastinal silhouette is (?:within normal limits|normal)", r"mediastinal contours are normal"),
    ),
    ("Lung Opacity", (r"lungs are (?:well expanded and )?clear",)),
)
_NEGATION = re.compile(r"\b(?:no|without|not|negative for|free of|resolved)\b")
_CLAUSE_END = re.compile(r"[.;:\n]|\bbut\b|\bhowever\b")
_COMPILED = tuple((label, tuple(re.compile(p) for p in patterns)) for label, patterns in _MENTIONS)
_COMPILED_NORMAL = tuple((label, tuple(re.compile(p) for p in patterns)) for label, patterns in _NORMAL)
# Observations that do not make a report abnormal: a study with only devices is "No Finding" in CheXpert.
NOT_ABNORMAL = frozenset({"Support Devices"})
LABELS: tuple[str, ...] = tuple(label for label, _ in _MENTIONS)


@dataclass(frozen=True)
class FindingLabels:
    """Observations a text asserts and negates (a label both asserted and negated counts as asserted)."""

    positive: frozenset[str]
    negative: frozenset[str]

    @property
    def abnormal(self) -> frozenset[str]:
        return self.positive - NOT_ABNORMAL


@lru_cache(maxsize=1 << 16)
def label_text(text: str) -> FindingLabels:
    """Label one report: per clause, each mention is negated when a negation cue precedes it in the clause."""
    positive: set[str] = set()
    negative: set[str] = set()
    for clause in _CLAUSE_END.split(text.lower()):
        cue = _NEGATION.search(clause)
        for label, patterns in _COMPILED:
            for pattern in patterns:
                for match in pattern.finditer(clause):
                    (negative if cue and cue.start() < match.start() else positive).add(label)
        for label, patterns in _COMPILED_NORMAL:
            if any(p.search(clause) for p in patterns):
                negative.add(label)
    positive |= {_IMPLIES[label] for label in positive if label in _IMPLIES}
    return FindingLabels(frozenset(positive), frozenset(negative - positive))
