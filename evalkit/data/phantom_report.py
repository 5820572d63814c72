"""Templated radiology text for phantom findings: reports, grounding phrases and CheXpert labels.

Each sentence carries the CheXpert classes it asserts and negates, so the labels of a report are consistent
with its text by construction (a labeller run on the text should agree with them).

Label mapping (chosen to match what the CheXpert labeller extracts from such sentences):
nodule, mass -> Lung Lesion (not Lung Opacity: "nodule" alone does not fire the opacity rule);
consolidation -> Consolidation + Lung Opacity (the sentences say "opacity"/"consolidation");
cardiomegaly -> Cardiomegaly + Enlarged Cardiomediastinum (its parent in the CheXpert hierarchy);
pleural_effusion -> Pleural Effusion; pneumothorax -> Pneumothorax; support_device -> Support Devices.
"No Finding" is 1.0 when the only findings are devices, otherwise None.
"""

from __future__ import annotations

import numpy as np

from evalkit.chexpert import CHEXPERT_LABELS
from evalkit.data.phantom_draw import Finding

# The CheXpert labeler's output (and MIMIC-CXR's chexpert.csv header before sorting) puts "No Finding" first.
CHEXPERT_CLASSES = ("No Finding", *(c for c in CHEXPERT_LABELS if c != "No Finding"))
POSITIVE_CLASSES = {
    "nodule": ("Lung Lesion",),
    "mass": ("Lung Lesion",),
    "consolidation": ("Consolidation", "Lung Opacity"),
    "pleural_effusion": ("Pleural Effusion",),
    "pneumothorax": ("Pneumothorax",),
    "cardiomegaly": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "support_device": ("Support Devices",),
}
HUMAN_LABELS = {label: label.replace("_", " ") for label in POSITIVE_CLASSES}

# (text, negated classes). The first is the mode of the train reports, so "always say normal" is a baseline.
NORMAL_REPORTS = (
    (
        "The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
        "No pleural effusion or pneumothorax.",
        ("Lung Opacity", "Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax"),
    ),
    (
        "Heart size is normal. The lungs are clear without focal consolidation. No pleural effusion or pneumothorax.",
        ("Cardiomegaly", "Lung Opacity", "Consolidation", "Pleural Effusion", "Pneumothorax"),
    ),
    (
        "No acute cardiopulmonary process. The heart is normal in size. There is no pneumothorax or pleural effusion.",
        ("Cardiomegaly", "Pneumothorax", "Pleural Effusion"),
    ),
    (
        "The lungs are well expanded and clear. Cardiac and mediastinal contours are normal. "
        "No effusion or pneumothorax.",
        ("Lung Opacity", "Enlarged Cardiomediastinum", "Pleural Effusion", "Pneumothorax"),
    ),
)
_NORMAL_WEIGHTS = (0.34, 0.22, 0.22, 0.22)

_POSITIVE = {
    "nodule": (
        "There is a {size} cm nodule in the {side} {zone} lung zone.",
        "A {size} cm nodular opacity is seen in the {side} {zone} lung.",
        "{Lobe} nodule measuring {size} cm.",
    ),
    "mass": (
        "There is a {size} cm mass in the {side} {zone} lung zone.",
        "A lobulated {size} cm mass projects over the {side} {zone} lung.",
        "{Lobe} mass measuring {size} cm.",
    ),
    "consolidation": (
        "There is consolidation in the {side} {zone} lung zone.",
        "Patchy airspace opacity in the {side} {zone} lung is compatible with consolidation.",
        "{Lobe} consolidation with associated opacity.",
    ),
    "pleural_effusion": (
        "There is a {extent} {side} pleural effusion.",
        "{Extent} {side} pleural effusion with blunting of the costophrenic angle.",
        "Blunting of the {side} costophrenic angle is consistent with a {extent} pleural effusion.",
    ),
    "pneumothorax": (
        "There is a {extent} {side} pneumothorax.",
        "{Extent} {side} apicolateral pneumothorax with a visible pleural line.",
        "A {extent} {side} pneumothorax is present.",
    ),
    "cardiomegaly": (
        "The heart is enlarged.",
        "The cardiomediastinal silhouette is enlarged.",
        "Moderate cardiomegaly.",
    ),
    "ett": (
        "Endotracheal tube terminates {tip} cm above the carina.",
        "An endotracheal tube is in standard position, {tip} cm above the carina.",
        "Endotracheal tube in place.",
    ),
    "cvc": (
        "Right internal jugular central venous catheter terminates in the SVC.",
        "A right IJ line is seen with its tip in the superior vena cava.",
        "Right-sided central venous catheter with tip in the SVC.",
    ),
}
_PHRASES = {
    "nodule": ("{lobe} nodule", "{side} {zone} zone nodule", "nodule in the {side} {zone} lung"),
    "mass": ("{lobe} mass", "{side} {zone} zone mass", "mass in the {side} lung"),
    "consolidation": (
        "{lobe} consolidation",
        "{side} {zone} zone consolidation",
        "airspace opacity in the {side} {zone} lung",
    ),
    "pleural_effusion": ("{side} pleural effusion", "{extent} {side} pleural effusion", "{side} effusion"),
    "pneumothorax": ("{side} pneumothorax", "{extent} {side} pneumothorax", "{side} apical pneumothorax"),
    "cardiomegaly": ("enlarged cardiac silhouette", "cardiomegaly", "enlarged heart"),
    "ett": ("endotracheal tube", "ET tube"),
    "cvc": ("right internal jugular catheter", "central venous catheter", "right IJ line"),
}
_LUNG_FINDINGS = {"nodule", "mass", "consolidation", "pleural_effusion", "pneumothorax"}


def _lobe(side: str | None, zone: str | None) -> str:
    if side == "left" and zone == "mid":
        return "lingular"
    return f"{side} {'middle' if zone == 'mid' else zone} lobe"


def _fill(template: str, finding: Finding) -> str:
    attrs = finding.attrs
    lobe = _lobe(finding.side, finding.zone)
    extent = str(attrs.get("extent", ""))
    return template.format(
        side=finding.side,
        zone=finding.zone,
        lobe=lobe,
        Lobe=lobe[0].upper() + lobe[1:],
        size=attrs.get("size_cm"),
        extent=extent,
        Extent=extent.capitalize(),
        tip=attrs.get("tip_cm"),
    )


def _key(finding: Finding) -> str:
    return str(finding.attrs["device"]) if finding.label == "support_device" else finding.label


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def phrase_for(rng: np.random.Generator, finding: Finding) -> str:
    """A short grounding phrase, as in MS-CXR ("right upper lobe nodule")."""
    return _fill(_pick(rng, _PHRASES[_key(finding)]), finding)


def write_report(rng: np.random.Generator, findings: list[Finding]) -> tuple[str, dict[str, float | None]]:
    """Findings-section text (positives first, then negatives) and the CheXpert labels that text implies."""
    labels = {f.label for f in findings}
    positives = {cls for f in findings for cls in POSITIVE_CLASSES[f.label]}
    negatives: set[str] = set()
    if not findings:
        idx = int(rng.choice(len(NORMAL_REPORTS), p=_NORMAL_WEIGHTS))
        text, negated = NORMAL_REPORTS[idx]
        return text, _labels(set(), set(negated))

    sentences = [_fill(_pick(rng, _POSITIVE[_key(f)]), f) for f in findings]
    pleural = [name for name in ("pleural effusion", "pneumothorax") if name.replace(" ", "_") not in labels]
    if len(pleural) == 2:
        sentences.append(
            _pick(rng, ("No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax."))
        )
    elif pleural:
        sentences.append(_pick(rng, (f"No {pleural[0]}.", f"There is no {pleural[0]}.")))
    negatives |= {name.title() for name in pleural}
    if "cardiomegaly" not in labels:
        if rng.random() < 0.6:
            sentences.append("Heart size is normal.")
            negatives.add("Cardiomegaly")
        else:
            sentences.append("The cardiomediastinal silhouette is within normal limits.")
            negatives.add("Enlarged Cardiomediastinum")
    if not labels & _LUNG_FINDINGS:
        sentences.append(_pick(rng, ("The lungs are clear.", "Lungs are clear.")))
        negatives.add("Lung Opacity")
    elif "consolidation" not in labels and rng.random() < 0.6:
        sentences.append("No focal consolidation.")
        negatives.add("Consolidation")
    if not labels & {"nodule", "mass"} and rng.random() < 0.25:
        sentences.append("No suspicious pulmonary nodules.")
        negatives.add("Lung Lesion")
    # Positive findings first, then the pertinent negatives: the conventional order of a findings section.
    return " ".join(sentences), _labels(positives, negatives)


def _labels(positives: set[str], negatives: set[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(CHEXPERT_CLASSES)
    for cls in negatives:
        out[cls] = 0.0
    for cls in positives:
        out[cls] = 1.0
    out["No Finding"] = 1.0 if positives <= {"Support Devices"} else None
    return out


def impression(findings: list[dict]) -> tuple[str, dict[str, float | None]]:
    """Impression line for the MIMIC-style report files, and the CheXpert labels of that line.

    MIMIC-CXR's labels were extracted from the impression, so these (not the findings-section labels) go into the
    MIMIC-style CSV. It says "pneumonia cannot be excluded" next to a consolidation (Pneumonia = -1.0, uncertain).
    """
    labels = {f["label"] for f in findings}
    if not findings:
        return "No acute cardiopulmonary process.", _labels(set(), set())
    parts = [f["phrase"][0].upper() + f["phrase"][1:] for f in findings]
    out = _labels({cls for label in labels for cls in POSITIVE_CLASSES[label]}, set())
    if "consolidation" in labels:
        parts.append("Pneumonia cannot be excluded")
        out["Pneumonia"] = -1.0
    if "pneumothorax" not in labels:
        parts.append("No pneumothorax")
        out["Pneumothorax"] = 0.0
    return ". ".join(parts) + ".", out
