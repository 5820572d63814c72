"""MS-CXR (PhysioNet 1.0.0 / 1.1.0) phrase grounding over MIMIC-CXR-JPG images.

Layout read (the data set folder, `--data-root`/ms_cxr by default):
    MS_CXR_Local_Alignment_v1.1.0.csv (the newest `MS_CXR_Local_Alignment_v*.csv`, or option `csv`): one row per
    (phrase, box): dicom_id, study_id, subject_id, category_name, label_text, path, x, y, w, h, image_width,
    image_height, split (train / val / test)
Images: `path` (MIMIC-CXR-JPG relative path) under `images_root` (see `mimic_images_root`).

One sample per (image, phrase), the boxes of the same phrase grouped, as RadVLM's `MS_CXR` dataset does; boxes are
`[x / width, y / height, (x + w) / width, (y + h) / height]` (RadVLM's normalize_mscxr.py). The split is the CSV's
own `split` column (RadVLM filters on MIMIC-CXR's split instead).
"""

from __future__ import annotations

from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import (
    mimic_image_path,
    mimic_images_root,
    no_images_error,
    option,
    radvlm_case,
    read_csv_rows,
    require_columns,
    text_key,
)
from evalkit.data.issues import clean_box, normalise, report_row, to_number
from evalkit.errors import EvalkitError
from evalkit.sample import Box, Sample, cluster_units

_SPLITS = {"train": "train", "test": "test", "val": "val", "valid": "val", "validate": "val", "validation": "val"}
_OPTIONS = ("images_root", "csv")
_COLUMNS = ["dicom_id", "label_text", "x", "y", "w", "h", "image_width", "image_height", "split"]


def _csv_path(root: Path, given: str | None) -> Path:
    if given:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_file():
            raise EvalkitError(f"ms_cxr: dataset option csv={given!r}: {path} not found")
        return path
    found = sorted(root.glob("MS_CXR_Local_Alignment_v*.csv"))
    if not found:
        raise EvalkitError(f"ms_cxr: no MS_CXR_Local_Alignment_v*.csv in {root}; is it the MS-CXR folder?")
    return found[-1]


@register_loader("ms_cxr")
def load_ms_cxr(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of one split of MS-CXR.

    Options (`spec.options`):
        images_root: MIMIC-CXR-JPG folder (holding `files/`), absolute or relative to the data set folder.
        csv: the annotation CSV (default: the newest MS_CXR_Local_Alignment_v*.csv in the data set folder).
    """
    root = Path(root)
    options = spec.options
    csv_path = _csv_path(root, option(options, "csv", None, _OPTIONS, "ms_cxr"))
    if split not in _SPLITS:
        raise EvalkitError(f"ms_cxr: unknown split '{split}'; use train, val or test")
    rows = read_csv_rows(csv_path)
    require_columns(rows, csv_path, _COLUMNS)
    images_root = mimic_images_root(options, root, "ms_cxr")
    source = csv_path.name

    groups: dict[tuple[str, str], list[Box]] = {}
    first_row: dict[tuple[str, str], dict[str, str]] = {}
    images_seen, images_found = 0, 0
    checked: dict[str, bool] = {}
    for line, row in enumerate(rows, start=2):
        if row["split"].strip() != _SPLITS[split]:
            continue
        dicom_id, phrase = row["dicom_id"].strip(), row["label_text"].strip()
        relative = row.get("path") or mimic_image_path(row["subject_id"], row["study_id"], dicom_id)
        if dicom_id not in checked:
            checked[dicom_id] = (images_root / relative).is_file()
            images_seen += 1
            images_found += checked[dicom_id]
        if not checked[dicom_id]:
            report_row(source, f"line {line}", "missing_image", "dropped", str(images_root / relative))
            continue
        width, height = to_number(row["image_width"]), to_number(row["image_height"])
        if not (width > 0 and height > 0):
            report_row(
                source, f"line {line}", "bad_image_size", "dropped", f"{row['image_width']}x{row['image_height']}"
            )
            continue
        x, y, w, h = (to_number(row[k]) for k in ("x", "y", "w", "h"))
        box = clean_box([x, y, x + w, y + h], width, height, source, f"line {line}")
        if box is None:
            continue
        key = (dicom_id, phrase)
        groups.setdefault(key, []).append(normalise(box, width, height))
        first_row.setdefault(key, {**row, "_path": relative})
    if images_seen and not images_found:
        raise no_images_error("ms_cxr", images_root, "set `images_root` to your MIMIC-CXR-JPG folder")

    samples = []
    for (dicom_id, phrase), boxes in groups.items():
        row = first_row[(dicom_id, phrase)]
        category = row.get("category_name", "")
        samples.append(
            Sample(
                sample_id=f"{dicom_id}/{text_key(phrase)}",
                units=cluster_units(image=dicom_id, study=row.get("study_id"), patient=row.get("subject_id")),
                task=task,
                image_paths=[str((images_root / row["_path"]).resolve())],
                prompt_vars={"phrase": radvlm_case(phrase)},
                reference_text=phrase,
                reference_boxes=boxes,
                reference_labels=[category or phrase] * len(boxes),
                meta={
                    "split": split,
                    "image_size": [int(float(row["image_width"])), int(float(row["image_height"]))],
                    "dicom_id": dicom_id,
                    "study_id": row.get("study_id"),
                    "subject_id": row.get("subject_id"),
                    "category": category,
                },
            )
        )
    return samples
