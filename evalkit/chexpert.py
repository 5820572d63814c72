"""The 14 CheXpert observations, defined once for the CheXbert metrics and the phantom's labels.

The order is CheXbert's: its 14 output heads, in the order f1chexbert's `CONDITIONS` lists them ("No Finding"
last), which is the order the micro/macro F1 indices refer to.
"""

from __future__ import annotations

CHEXPERT_LABELS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
# The five observations of the CheXpert competition, scored by the `*_f1_5` metrics.
CHEXPERT_FIVE: tuple[str, ...] = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
