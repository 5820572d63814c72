"""Synthetic files in the real on-disk layouts of Chest ImaGenome, VinDr-CXR and PadChest-GR, made from the phantom set.

They let the real loaders (and the whole runner) be tested without credentialed data; MS-CXR's writer lives in
`phantom.write_ms_cxr_layout`. With `malformed=True` each writer adds a few known bad rows (inverted, NaN, outside
the image, zero area, missing image / scene graph) whose handling the tests check; `MALFORMED_*` say what the
loader must report.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from evalkit.data.phantom import mimic_ids, read_manifest, write_mimic_cxr_layout, write_ms_cxr_layout

VINDR_CLASSES = {
    "nodule": "Nodule/Mass",
    "mass": "Nodule/Mass",
    "consolidation": "Consolidation",
    "pleural_effusion": "Pleural effusion",
    "pneumothorax": "Pneumothorax",
    "cardiomegaly": "Cardiomegaly",
    "support_device": "Other lesion",
}
_IMAGENOME_SPLITS = {"train": "train", "validate": "valid", "test": "test"}
_PADCHEST_SPLITS = {"train": "train", "validate": "validation", "test": "test"}

# What the loaders must report for `malformed=True` files: {problem: (fixed, dropped)} on the test split.
MALFORMED_IMAGENOME = {"inverted": (1, 0), "nan": (0, 1), "outside_image": (1, 0), "missing_scene_graph": (0, 1)}
MALFORMED_VINDR = {
    "inverted": (1, 0),
    "nan": (0, 1),
    "outside_image": (1, 0),
    "zero_area": (0, 1),
    "missing_image": (0, 1),
}
MALFORMED_PADCHEST = {"inverted": (1, 0), "nan": (0, 1), "outside_image": (1, 0)}
MALFORMED_MS_CXR = {"inverted": (1, 0), "nan": (0, 1), "outside_image": (1, 0), "missing_image": (0, 1)}


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _pixels(box: list[float], width: int, height: int) -> list[float]:
    return [round(box[0] * width, 1), round(box[1] * height, 1), round(box[2] * width, 1), round(box[3] * height, 1)]


def _frontal_view(record_index: int) -> str:
    return "AP" if record_index % 4 == 3 else "PA"  # as write_mimic_cxr_layout


def write_imagenome_layout(phantom_root: Path, out: Path, malformed: bool = False) -> Path:
    """Chest ImaGenome 1.0.0 silver data set (splits + scene graphs, original-pixel boxes) over MIMIC-CXR-JPG files.

    The MIMIC-CXR-JPG images and metadata are written into `out` too (`files/`, the loader's default
    `images_root`). Only frontal images get scene graphs, as in Chest ImaGenome.
    """
    phantom_root, out = Path(phantom_root), Path(out)
    write_mimic_cxr_layout(phantom_root, out)
    graphs = out / "silver_dataset" / "scene_graph"
    graphs.mkdir(parents=True, exist_ok=True)
    split_rows: dict[str, list[list[Any]]] = {name: [] for name in _IMAGENOME_SPLITS.values()}
    first_test = True
    for record in read_manifest(phantom_root)["records"]:
        subject_id, study_id, dicom_id = mimic_ids(record["image_id"])
        width, height = record["image_size"]
        view = _frontal_view(study_id - 50_000_000)
        split = _IMAGENOME_SPLITS[record["split"]]
        path = f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}/{dicom_id}.dcm"
        split_rows[split].append([dicom_id, subject_id, study_id, view, path])
        objects = []
        for region in record["regions"]:
            x1, y1, x2, y2 = _pixels(region["box"], width, height)
            objects.append(
                {
                    "object_id": f"{dicom_id}_{region['name']}",
                    "bbox_name": region["name"],
                    "name": region["name"].capitalize(),
                    "original_x1": x1,
                    "original_y1": y1,
                    "original_x2": x2,
                    "original_y2": y2,
                    "x1": round(x1 * 224 / width),
                    "y1": round(y1 * 224 / height),
                    "x2": round(x2 * 224 / width),
                    "y2": round(y2 * 224 / height),
                }
            )
        if malformed and split == "test" and first_test:
            first_test = False
            objects += [
                {"bbox_name": "malformed inverted", "original_x1": 120, "original_y1": 40, "original_x2": 20,
                 "original_y2": 90},
                {"bbox_name": "malformed nan", "original_x1": None, "original_y1": 10, "original_x2": 30,
                 "original_y2": 40},
                {"bbox_name": "malformed outside", "original_x1": 200, "original_y1": 10, "original_x2": width + 40,
                 "original_y2": 60},
            ]  # fmt: skip
        scene = {"image_id": dicom_id, "viewpoint": view, "gender": "F", "objects": objects}
        (graphs / f"{dicom_id}_SceneGraph.json").write_text(json.dumps(scene), encoding="utf-8")
    if malformed:  # a split row whose scene graph file is missing (RadVLM's missing_ids)
        split_rows["test"].append(["0000dead-beef0000-00000000-00000000-00000000", 19_999_999, 59_999_999, "PA", ""])
    header = ["dicom_id", "subject_id", "study_id", "ViewPosition", "path"]
    for split, rows in split_rows.items():
        _write_csv(out / "silver_dataset" / "splits" / f"{split}.csv", header, rows)
    return out


def vindr_image_id(phantom_image_id: str) -> str:
    """A 32-hex-digit id like VinDr-CXR's, stable for a phantom image."""
    return hashlib.md5(f"evalkit-vindr/{phantom_image_id}".encode()).hexdigest()


def write_vindr_cxr_layout(
    phantom_root: Path, out: Path, readers: int = 3, resize: int | None = None, malformed: bool = False
) -> Path:
    """VinDr-CXR 1.0.0 annotations (one row per reader box, original pixels; "No finding" rows) + converted JPGs.

    Phantom train and validate images form VinDr's train split, test its test split. Each of `readers`
    radiologists draws every finding with a small deterministic jitter, so WBF has boxes to fuse. With `resize`,
    the JPGs are resized to `resize` x `resize` and `image_resolutions_<split>.json` ([rows, columns]) is written,
    as RadVLM's converter does.
    """
    phantom_root, out = Path(phantom_root), Path(out)
    rows: dict[str, list[list[Any]]] = {"train": [], "test": []}
    resolutions: dict[str, dict[str, list[int]]] = {"train": {}, "test": {}}
    for record in read_manifest(phantom_root)["records"]:
        split = "test" if record["split"] == "test" else "train"
        image_id = vindr_image_id(record["image_id"])
        width, height = record["image_size"]
        target = out / f"{split}_jpg" / f"{image_id}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(phantom_root / "images" / f"{record['image_id']}.png") as image:
            image = image.convert("L")
            if resize:
                image = image.resize((resize, resize), Image.LANCZOS)
                resolutions[split][image_id] = [height, width]
            image.save(target, quality=95)
        rng = np.random.default_rng([7, int(record["image_id"].split("-")[1])])
        for reader in range(readers):
            rad = f"R{reader + 1 + (0 if split == 'train' else 8)}"
            if not record["findings"]:
                rows[split].append([image_id, rad, "No finding", "", "", "", ""])
            for finding in record["findings"]:
                jitter = rng.normal(0.0, 0.01, 4) if reader else np.zeros(4)
                box = np.clip(np.asarray(finding["box"]) + jitter, 0.0, 1.0).tolist()
                if box[2] - box[0] < 0.01 or box[3] - box[1] < 0.01:  # keep thin boxes (devices) well formed
                    box = finding["box"]
                rows[split].append([image_id, rad, VINDR_CLASSES[finding["label"]], *_pixels(box, width, height)])
    if malformed:
        bad = next(r for r in rows["test"] if r[2] != "No finding")
        image_id, rad, class_name = bad[:3]
        rows["test"] += [
            [image_id, rad, class_name, 120, 40, 20, 90],  # inverted: swapped
            [image_id, rad, class_name, "", 10, 30, 40],  # NaN: dropped
            [image_id, rad, class_name, 200, 10, 300, 60],  # outside a 256-pixel image: clipped
            [image_id, rad, class_name, 50, 50, 50, 80],  # zero width: dropped
            ["ffffffffffffffffffffffffffffffff", rad, class_name, 10, 10, 40, 40],  # no image: dropped
        ]
    for split in ("train", "test"):
        reader_column = "rad_id" if split == "train" else "rad_ID"  # as in the release
        header = ["image_id", reader_column, "class_name", "x_min", "y_min", "x_max", "y_max"]
        _write_csv(out / "annotations" / f"annotations_{split}.csv", header, rows[split])
        if resize:
            (out / f"image_resolutions_{split}.json").write_text(json.dumps(resolutions[split]), encoding="utf-8")
    return out


def write_padchest_gr_layout(phantom_root: Path, out: Path, malformed: bool = False) -> Path:
    """PadChest-GR: grounded_reports_20240819.json (0-1 boxes per finding sentence), master_table.csv, PNG images.

    Each image also gets a normal sentence without boxes, which the loader must skip silently.
    """
    phantom_root, out = Path(phantom_root), Path(out)
    images = out / "images_grounding"
    images.mkdir(parents=True, exist_ok=True)
    entries, table = [], []
    for index, record in enumerate(read_manifest(phantom_root)["records"]):
        image_id = f"{vindr_image_id(record['image_id'])[:20]}_00-000-{index:03d}.png"
        study_id = f"study-{index:05d}"
        shutil.copyfile(phantom_root / "images" / f"{record['image_id']}.png", images / image_id)
        findings = [
            {
                "sentence_en": finding["phrase"][0].upper() + finding["phrase"][1:],
                "sentence_es": "",
                "abnormal": True,
                "boxes": [[round(v, 4) for v in finding["box"]]],
                "extra_boxes": [],
                "labels": [finding["label"].replace("_", " ")],
                "locations": [finding["zone"]],
            }
            for finding in record["findings"]
        ]
        findings.append({"sentence_en": "No pneumothorax.", "sentence_es": "", "abnormal": False})
        entries.append({"StudyID": study_id, "ImageID": image_id, "findings": findings})
        split = _PADCHEST_SPLITS[record["split"]]
        labels = sorted({f["label"] for f in record["findings"]}) or ["normal"]
        table += [[image_id, study_id, f"patient-{index:05d}", split, label] for label in labels]
    if malformed:
        test_images = {row[0] for row in table if row[3] == "test"}
        entry = next(e for e in entries if len(e["findings"]) > 1 and e["ImageID"] in test_images)
        entry["findings"].insert(
            0,
            {
                "sentence_en": "Malformed boxes.",
                "abnormal": True,
                "boxes": [[0.6, 0.2, 0.4, 0.5], [0.1, None, 0.2, 0.3], [0.8, 0.1, 1.2, 0.3]],
                "labels": ["malformed"],
            },
        )
    (out / "grounded_reports_20240819.json").write_text(json.dumps(entries), encoding="utf-8")
    _write_csv(out / "master_table.csv", ["ImageID", "StudyID", "PatientID", "split", "label_group"], table)
    return out


def append_ms_cxr_malformed_rows(out: Path) -> None:
    """Add bad rows to a `phantom.write_ms_cxr_layout` CSV: inverted (w < 0), NaN, outside, missing image."""
    path = next(Path(out).glob("MS_CXR_Local_Alignment_v*.csv"))
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    good = next(r for r in rows if r["split"] == "test")
    extra = [
        {**good, "label_text": "malformed inverted", "x": "120", "w": "-60"},
        {**good, "label_text": "malformed nan", "y": ""},
        {**good, "label_text": "malformed outside", "x": "200", "w": "100"},
        {**good, "dicom_id": "0000dead", "path": "files/p10/p10999999/s50999999/0000dead.jpg", "label_text": "gone"},
    ]
    with open(path, "a", encoding="utf-8", newline="") as handle:
        csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n").writerows(extra)


def write_grounding_layouts(phantom_root: Path, data_root: Path, malformed: bool = False) -> Path:
    """All four real layouts under `data_root`, in the folders the tasks read by default (their loader names)."""
    phantom_root, data_root = Path(phantom_root), Path(data_root)
    write_imagenome_layout(phantom_root, data_root / "imagenome", malformed=malformed)
    write_vindr_cxr_layout(phantom_root, data_root / "vindr_cxr", malformed=malformed)
    write_padchest_gr_layout(phantom_root, data_root / "padchest_gr", malformed=malformed)
    write_ms_cxr_layout(phantom_root, data_root / "ms_cxr")
    if malformed:
        append_ms_cxr_malformed_rows(data_root / "ms_cxr")
    return data_root
