"""Sections of MIMIC-CXR free-text reports, following the official rules (MIT-LCP/mimic-cxr `txt/`).

`section_text` splits a report at all-caps headers (`\\n HEADER:`), normalises the header names
(`normalize_section_names`: frequent headers, typos, view descriptions that mean "findings"), drops empty
findings/impression sections, and, when neither exists, splits the last section at its first blank line into
a `last_paragraph`. `sectioned` then keeps, for each of impression / findings / last_paragraph / comparison,
the *last* section of that name, stripped: what `create_section_files.py` writes to `mimic_cxr_sectioned.csv`.
The studies that script handles by hand (its `custom_mimic_cxr_rules`) are left out of that CSV, and so here.
"""

from __future__ import annotations

import re

SECTIONED = ("impression", "findings", "last_paragraph", "comparison")
_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s", re.DOTALL)

_FREQUENT = {
    "preamble": "preamble",
    "impression": "impression",
    "comparison": "comparison",
    "indication": "indication",
    "findings": "findings",
    "examination": "examination",
    "technique": "technique",
    "history": "history",
    "comparisons": "comparison",
    "clinical history": "history",
    "reason for examination": "indication",
    "notification": "notification",
    "reason for exam": "indication",
    "clinical information": "history",
    "exam": "examination",
    "clinical indication": "indication",
    "conclusion": "impression",
    "chest, two views": "findings",
    "recommendation(s)": "recommendations",
    "type of examination": "examination",
    "reference exam": "comparison",
    "patient history": "history",
    "addendum": "addendum",
    "comparison exam": "comparison",
    "date": "date",
    "comment": "comment",
    "findings and impression": "impression",
    "wet read": "wet read",
    "comparison film": "comparison",
    "recommendations": "recommendations",
    "findings/impression": "impression",
    "pfi": "history",
    "recommendation": "recommendations",
    "wetread": "wet read",
    "ndication": "impression",
    "impresson": "impression",
    "imprression": "impression",
    "imoression": "impression",
    "impressoin": "impression",
    "imprssion": "impression",
    "impresion": "impression",
    "imperssion": "impression",
    "mpression": "impression",
    "impession": "impression",
    "findings/ impression": "impression",
    "finding": "findings",
    "findins": "findings",
    "findindgs": "findings",
    "findgings": "findings",
    "findngs": "findings",
    "findnings": "findings",
    "finidngs": "findings",
    "idication": "indication",
    "reference findings": "findings",
    "comparision": "comparison",
    "comparsion": "comparison",
    "comparrison": "comparison",
    "comparisions": "comparison",
}
_VIEW_MEANS_FINDINGS = re.compile(
    "(chest|portable|pa and lateral|lateral and pa|ap and lateral|lateral and ap|frontal and|two views|"
    "frontal view|pa view|ap view|one view|lateral view|bone window|frontal upright|frontal semi-upright|ribs|"
    "pa and lat)"
)
_MAIN = ("impression", "findings", "history", "comparison", "addendum")

# Studies create_section_files.py sections by hand (custom_section_names, custom_indices): absent from its CSV.
HAND_SECTIONED = frozenset(
    """
    s50913680 s59363654 s59279892 s59768032 s57936451 s50058765 s53356173 s53202765 s50808053 s51966317
    s50743547 s56451190 s59067458 s59215320 s55124749 s54365831 s59087630 s58157373 s56482935 s58375018
    s54654948 s55157853 s51491012 s50525523 s57564132 s59982525 s53488209 s54875119 s50196495 s56579911
    s52648681 s59889364 s53514462 s59505494 s53182247 s51410602 s56412866 s54986978 s59003148 s57150433
    s56760320 s59562049 s52674888 s55258338 s59330497 s52119491 s58235663 s50798377 s54168089 s53071062
    s56724958 s54231141 s53607029 s52035334
    """.split()
)


def normalize_section_names(names: list[str]) -> list[str]:
    out = []
    for name in (n.lower().strip() for n in names):
        if name in _FREQUENT:
            out.append(_FREQUENT[name])
            continue
        main = next((m for m in _MAIN if m in name), None)
        if main is not None:
            out.append(main)
        elif _VIEW_MEANS_FINDINGS.search(name):
            out.append("findings")
        else:
            out.append(name)
    return out


def section_text(text: str) -> tuple[list[str], list[str], list[int]]:
    """(sections, normalised names, start offsets) of one report, as the official `section_text`."""
    sections, names, starts = [], [], []
    match = _HEADER.search(text, 0)
    if match:
        sections.append(text[0 : match.start(1)])
        names.append("preamble")
        starts.append(0)
        while match:
            current = match.group(1).lower()
            start = match.end()
            skip = text[start:].find("\n")  # skip past the first newline to avoid some bad parses
            match = _HEADER.search(text, start + (skip if skip != -1 else 0))
            end = len(text) if match is None else match.start()
            sections.append(text[start:end])
            names.append(current)
            starts.append(start)
    else:
        sections.append(text)
        names.append("full report")
        starts.append(0)
    names = normalize_section_names(names)
    for i in reversed(range(len(names))):
        if names[i] in ("impression", "findings") and sections[i].strip() == "":
            sections.pop(i)
            names.pop(i)
            starts.pop(i)
    if "impression" not in names and "findings" not in names and "\n \n" in sections[-1]:
        sections.append("\n \n".join(sections[-1].split("\n \n")[1:]))
        sections[-2] = sections[-2].split("\n \n")[0]
        names.append("last_paragraph")
        starts.append(starts[-1] + len(sections[-2]))
    return sections, names, starts


def sectioned(text: str) -> dict[str, str | None]:
    """The `mimic_cxr_sectioned.csv` row of one report: last section of each kind, stripped, or None."""
    sections, names, _ = section_text(text)
    out: dict[str, str | None] = {}
    for kind in SECTIONED:
        if kind in names:
            last = len(names) - 1 - names[::-1].index(kind)
            out[kind] = sections[last].strip()
        else:
            out[kind] = None
    return out
