"""PadChest-GR (BIMCV) grounded-report phrase grounding: one sample per finding sentence that has boxes.

Layout read (the data set folder, `--data-root`/padchest_gr by default):
    grounded_reports_*.json   [{ImageID, StudyID, findings: [{sentence_en, boxes: [[x1, y1, x2, y2], ...], labels,
                              abnormal, ...}]}]; boxes already in 0-1 image coordinates (the newest file by name,
                              or option `reports`)
    master_table.csv          ImageID, split (train / validation / test), ... (one row per study and label;
                              `master_table.csv.zip` as distributed is read too)
    images: `<ImageID>` (a PNG file name) in the first of `images_grounding/` (RadVLM), `Padchest_GR_files/`,
            `Padchest_GR_files/PadChest_GR/`, `images/` that exists, or option `images_dir`.

    PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv(.gz)   optional: PadChest's label table (ImageID,
                              Projection, ...); torchxrayvision ships it (`evalkit data public-annotations`)

As in RadVLM (`PadChest_grounding`): only images of the split, one sample per finding with a non-empty `boxes`
list (sentences without boxes, e.g. normal findings, are not grounding samples and are skipped silently), the
English sentence as the phrase. `extra_boxes` are ignored, as RadVLM does. RadVLM also keeps only images whose
`Projection` in the 160K table is exactly "AP" or "PA" (pandas `isin`: "AP_horizontal", "L", "COSTAL",
"EXCLUDE", "UNK" and images absent from the table are left out); the loader applies that filter when the table
is in the folder (option `projections`, default [AP, PA]; null turns it off) and logs a warning when it is not.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import (
    first_existing,
    image_size,
    no_images_error,
    option,
    radvlm_case,
    read_csv_rows,
    require_columns,
)
from evalkit.data.issues import clean_box, report_row
from evalkit.errors import EvalkitError
from evalkit.sample import Sample, cluster_units

log = logging.getLogger(__name__)

_SPLITS = {
    "train": "train",
    "test": "test",
    **{name: "validation" for name in ("validation", "val", "valid", "validate")},
}
_OPTIONS = ("images_dir", "reports", "projections")
PROJECTION_TABLES = (
    "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv",
    "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
)
RADVLM_PROJECTIONS = ("AP", "PA")
_IMAGE_DIRS = ("images_grounding", "Padchest_GR_files/PadChest_GR", "Padchest_GR_files", "images")


def _reports_path(root: Path, given: str | None) -> Path:
    if given:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_file():
            raise EvalkitError(f"padchest_gr: dataset option reports={given!r}: {path} not found")
        return path
    found = sorted(root.glob("grounded_reports_*.json"))
    if not found:
        raise EvalkitError(f"padchest_gr: no grounded_reports_*.json in {root}; is it the PadChest-GR folder?")
    return found[-1]


def _images_dir(root: Path, given: str | None) -> Path:
    if given:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_dir():
            raise EvalkitError(f"padchest_gr: dataset option images_dir={given!r}: {path} is not a folder")
        return path
    for name in _IMAGE_DIRS:
        if (root / name).is_dir() and any((root / name).glob("*.png")):
            return root / name
    raise EvalkitError(
        f"padchest_gr: no PNG images in any of {', '.join(_IMAGE_DIRS)} under {root}; unzip PadChest_GR.zip there "
        "or set `images_dir` in the task's dataset options"
    )


def read_projections(path: Path) -> dict[str, str]:
    """ImageID -> Projection of PadChest's 160K label table, streamed (the table's Report column makes it large).

    The table's first column has an empty name (a saved pandas index); rows whose length differs from the
    header's are reported and skipped.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    projections: dict[str, str] = {}
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if "ImageID" not in header or "Projection" not in header:
                raise EvalkitError(f"{path}: missing column(s) ImageID / Projection; found {header[:8]}...")
            image_col, projection_col = header.index("ImageID"), header.index("Projection")
            for line, row in enumerate(reader, start=2):
                if len(row) != len(header):
                    report_row(path.name, f"line {line}", "bad_row", "dropped", f"{len(row)} fields, not {len(header)}")
                    continue
                projections[row[image_col].strip()] = row[projection_col].strip()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvalkitError(f"{path}: cannot read CSV: {exc}") from exc
    return projections


def projection_filter(root: Path, wanted: list[str] | None) -> set[str] | None:
    """RadVLM's frontal filter: the ImageIDs whose Projection is in `wanted`; None when not applied."""
    if wanted is None:
        return None
    path = first_existing(root, PROJECTION_TABLES)
    if path is None:
        log.warning(
            "padchest_gr: %s not in %s: RadVLM's projection filter (AP/PA only) is not applied; "
            "`evalkit data public-annotations` writes it",
            PROJECTION_TABLES[0],
            root,
        )
        return None
    keep = {str(p) for p in wanted}
    return {image for image, projection in read_projections(path).items() if projection in keep}


@register_loader("padchest_gr")
def load_padchest_gr(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of one split of PadChest-GR.

    Options (`spec.options`):
        images_dir: folder of the PNG images (absolute or relative to the data set folder).
        reports: the grounded-reports JSON (default: the newest grounded_reports_*.json).
        projections: Projection values of the 160K table to keep (default [AP, PA], RadVLM's); null: no filter.
    """
    root = Path(root)
    options = spec.options
    reports_path = _reports_path(root, option(options, "reports", None, _OPTIONS, "padchest_gr"))
    if split not in _SPLITS:
        raise EvalkitError(f"padchest_gr: unknown split '{split}'; use train, validation or test")
    table_path = first_existing(root, ["master_table.csv", "master_table.csv.zip"])
    if table_path is None:
        raise EvalkitError(f"padchest_gr: {root / 'master_table.csv'} (or master_table.csv.zip) not found")
    table = read_csv_rows(table_path)
    require_columns(table, table_path, ["ImageID", "split"])
    in_split = {r["ImageID"].strip() for r in table if r["split"].strip() == _SPLITS[split]}
    frontal = projection_filter(root, options.get("projections", list(RADVLM_PROJECTIONS)))
    if frontal is not None:
        in_split &= frontal
    patients = {r["ImageID"].strip(): (r.get("PatientID") or "").strip() for r in table}
    try:
        entries = json.loads(reports_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalkitError(f"{reports_path}: not valid JSON: {exc}") from exc
    if not isinstance(entries, list):
        raise EvalkitError(f"{reports_path}: expected a list of studies at the top level")
    folder = _images_dir(root, options.get("images_dir"))
    source = reports_path.name

    samples: list[Sample] = []
    images_seen, images_found = 0, 0
    for entry_index, entry in enumerate(entries):
        image_id = str(entry.get("ImageID", "")).strip()
        if image_id not in in_split:
            continue
        findings = [f for f in entry.get("findings", []) if f.get("boxes")]
        if not findings:
            continue
        path = folder / image_id
        images_seen += 1
        size = image_size(path) if path.is_file() else None
        if size is None:
            report_row(source, f"entry {entry_index}", "missing_image", "dropped", str(path))
            continue
        images_found += 1
        for finding_index, finding in enumerate(entry.get("findings", [])):
            if not finding.get("boxes"):
                continue
            sentence = str(finding.get("sentence_en") or "").strip()
            where = f"entry {entry_index} (ImageID {image_id}) finding {finding_index}"
            if not sentence:
                report_row(source, where, "no_sentence", "dropped")
                continue
            boxes = []
            for box_index, raw in enumerate(finding["boxes"]):
                box = clean_box(raw if isinstance(raw, list) else [raw], 1.0, 1.0, source, f"{where} box {box_index}")
                if box is not None:
                    boxes.append(list(box))
            if not boxes:
                continue
            label = "; ".join(str(x) for x in finding.get("labels") or []) or sentence
            samples.append(
                Sample(
                    sample_id=f"{image_id.rsplit('.', 1)[0]}/{finding_index}",
                    units=cluster_units(image=image_id, study=entry.get("StudyID"), patient=patients.get(image_id)),
                    task=task,
                    image_paths=[str(path.resolve())],
                    prompt_vars={"phrase": radvlm_case(sentence)},
                    reference_text=sentence,
                    reference_boxes=boxes,
                    reference_labels=[label] * len(boxes),
                    meta={
                        "split": split,
                        "image_size": list(size),
                        "image_id": image_id,
                        "study_id": entry.get("StudyID"),
                        "labels": list(finding.get("labels") or []),
                    },
                )
            )
    if images_seen and not images_found:
        raise no_images_error("padchest_gr", folder, "check `images_dir`")
    return samples
