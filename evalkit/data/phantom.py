"""The phantom data set: synthetic chest radiographs with planted findings, so the harness runs without data.

`generate_phantom` draws the images (see `phantom_draw`) and writes `phantom.json`, the manifest every loader
target reads. Everything is deterministic in (seed, image index): the same call gives the same bytes.
The writers re-export the set in the MIMIC-CXR-JPG and MS-CXR on-disk layouts so that the real loaders can be
tested on synthetic files.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import textwrap
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import option
from evalkit.data.phantom_draw import FINDING_LABELS, REGION_NAMES, render
from evalkit.data.phantom_report import CHEXPERT_CLASSES, HUMAN_LABELS, impression, phrase_for, write_report
from evalkit.errors import EvalkitError
from evalkit.sample import Sample, cluster_units

__all__ = [
    "CHEXPERT_CLASSES",
    "FINDING_LABELS",
    "PHANTOM_VERSION",
    "REGION_NAMES",
    "ensure_phantom",
    "generate_phantom",
    "load_phantom",
    "mimic_ids",
    "read_manifest",
    "write_mimic_cxr_layout",
    "write_ms_cxr_layout",
]

PHANTOM_VERSION = "1"  # bump whenever drawing or text changes: cached sets are then regenerated
MANIFEST = "phantom.json"
SPLITS = ("train", "validate", "test")
_SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}
TARGETS = ("report", "abnormality", "anatomy", "phrase")


def _params(n_train: int, n_validate: int, n_test: int, seed: int, size: int) -> dict[str, Any]:
    return {
        "version": PHANTOM_VERSION,
        "seed": seed,
        "counts": {"train": n_train, "validate": n_validate, "test": n_test},
        "size": size,
    }


def _is_current(root: Path, params: dict[str, Any]) -> bool:
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if any(manifest.get(key) != value for key, value in params.items()):
        return False
    return all((root / "images" / f"{r['image_id']}.png").is_file() for r in manifest.get("records", []))


def _record(index: int, split: str, seed: int, size: int) -> tuple[dict[str, Any], Image.Image]:
    rng = np.random.default_rng([seed, index])
    drawn = render(rng, size)
    findings = [
        {"label": f.label, "box": f.box, "side": f.side, "zone": f.zone, "phrase": phrase_for(rng, f)}
        for f in drawn.findings
    ]
    report, chexpert = write_report(rng, drawn.findings)
    record = {
        "image_id": f"ph-{index:05d}",
        "split": split,
        "image_size": [size, size],
        "findings": findings,
        "regions": [{"name": name, "box": box} for name, box in drawn.regions],
        "report": report,
        "chexpert": chexpert,
    }
    return record, Image.fromarray(drawn.image, "L")


def generate_phantom(
    root: Path, n_train: int = 300, n_validate: int = 50, n_test: int = 100, seed: int = 0, size: int = 256
) -> Path:
    """Write `root/images/*.png` and `root/phantom.json`; a no-op when an identical set is already there.

    The manifest is removed first and written last (tmp file + rename), so an interrupted run leaves no
    manifest and the next call starts again instead of trusting half a set.

    Args:
        root: Folder to write into (created if needed).
        n_train, n_validate, n_test: Images per split; indices are assigned to splits in that order.
        seed: Seed of the whole set; image i draws from `default_rng([seed, i])`.
        size: Width and height in pixels.

    Returns:
        `root`.
    """
    root = Path(root)
    params = _params(n_train, n_validate, n_test, seed, size)
    if _is_current(root, params):
        return root
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).unlink(missing_ok=True)
    splits = ["train"] * n_train + ["validate"] * n_validate + ["test"] * n_test
    records = []
    for index, split in enumerate(splits):
        record, image = _record(index, split, seed, size)
        image.save(images / f"{record['image_id']}.png", optimize=False, compress_level=3)
        records.append(record)
    keep = {f"{r['image_id']}.png" for r in records}
    for stale in images.glob("ph-*.png"):
        if stale.name not in keep:
            stale.unlink()
    tmp = root / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps({**params, "records": records}, indent=1), encoding="utf-8")
    os.replace(tmp, root / MANIFEST)
    return root


def ensure_phantom(root: Path, **kw: Any) -> Path:
    """Make sure a complete phantom set with these parameters (see `generate_phantom`) exists at `root`.

    `generate_phantom` already checks the manifest and images and returns at once when they match, so this is
    the same call under the name that says what callers (`evalkit demo`, the runner) want.
    """
    return generate_phantom(Path(root), **kw)


def read_manifest(root: Path) -> dict[str, Any]:
    """The parsed `phantom.json`, or an EvalkitError that says how to create it."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise EvalkitError(
            f"phantom data set missing at {path}; create it with `evalkit demo` "
            f"or `evalkit data phantom --out {Path(root)}`"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EvalkitError(f"{path}: not valid JSON ({exc}); delete it and regenerate the phantom set") from exc


@register_loader("phantom")
def load_phantom(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of one split of the phantom set. Reads only; it never generates (see `ensure_phantom`).

    Options (`spec.options`):
        target: `report` (one sample per image, reference = report), `abnormality` (per image and finding
            label, boxes of that label), `anatomy` (per image and region), or `phrase` (per finding, prompted
            with its grounding phrase). Default `report`.
        one_region_per_image: anatomy only; keep one region per image, drawn with `seed` (RadVLM's subset).
        seed: seed of that draw (default 0).
    """
    root = Path(root)
    manifest = read_manifest(root)
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise EvalkitError(f"phantom: unknown split '{split}'; use one of {', '.join(SPLITS)}")
    target = option(spec.options, "target", "report", ("target", "one_region_per_image", "seed"), "phantom")
    if target not in TARGETS:
        raise EvalkitError(f"phantom: unknown dataset option target='{target}'; use one of {', '.join(TARGETS)}")
    seed = spec.options.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EvalkitError(f"phantom: dataset option seed must be a whole number, not {seed!r}")
    samples: list[Sample] = []
    images = (root / "images").resolve()  # once: the generated pngs are plain files, not links
    for record in manifest["records"]:
        if record["split"] != split:
            continue
        image_id = record["image_id"]
        common = {
            "task": task,
            # Every phantom sample of one image shares that image's drawing: the image is the unit.
            "units": cluster_units(image=image_id),
            "image_paths": [str(images / f"{image_id}.png")],
        }
        meta = {"split": split, "image_size": record["image_size"]}
        if target == "report":
            labels = [f["label"] for f in record["findings"]]
            samples.append(
                Sample(
                    sample_id=image_id,
                    reference_text=record["report"],
                    meta={**meta, "chexpert": record["chexpert"], "finding_labels": labels},
                    **common,
                )
            )
        elif target == "abnormality":
            for label in dict.fromkeys(f["label"] for f in record["findings"]):
                boxes = [f["box"] for f in record["findings"] if f["label"] == label]
                human = HUMAN_LABELS[label]
                samples.append(
                    Sample(
                        sample_id=f"{image_id}/{label}",
                        prompt_vars={"label": human},
                        reference_boxes=boxes,
                        reference_labels=[human] * len(boxes),
                        meta=meta,
                        **common,
                    )
                )
        elif target == "anatomy":
            regions = record["regions"]
            if spec.options.get("one_region_per_image", False):
                index = int(image_id.split("-")[1])
                rng = np.random.default_rng([int(spec.options.get("seed", 0)), index])
                regions = [regions[int(rng.integers(len(regions)))]]
            for region in regions:
                samples.append(
                    Sample(
                        sample_id=f"{image_id}/{region['name'].replace(' ', '_')}",
                        prompt_vars={"region": region["name"]},
                        reference_boxes=[region["box"]],
                        reference_labels=[region["name"]],
                        meta=meta,
                        **common,
                    )
                )
        else:
            seen: dict[str, int] = {}
            for finding in record["findings"]:
                k = seen[finding["label"]] = seen.get(finding["label"], -1) + 1
                samples.append(
                    Sample(
                        sample_id=f"{image_id}/{finding['label']}-{k}",
                        prompt_vars={"phrase": finding["phrase"]},
                        reference_text=finding["phrase"],
                        reference_boxes=[finding["box"]],
                        reference_labels=[finding["label"]],
                        meta={**meta, "side": finding["side"], "zone": finding["zone"]},
                        **common,
                    )
                )
    return samples


# --- Real on-disk layouts ---

_CHEXPERT_CSV_ORDER = tuple(sorted(CHEXPERT_CLASSES))  # the MIMIC-CXR csv lists the classes alphabetically
_MS_CXR_CATEGORY = {
    "nodule": "Lung Lesion",
    "mass": "Lung Lesion",
    "consolidation": "Consolidation",
    "pleural_effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "cardiomegaly": "Cardiomegaly",
    "support_device": "Support Devices",
}


def _dicom_id(key: str) -> str:
    digest = hashlib.sha1(f"evalkit-phantom/{key}".encode()).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))  # 44 chars, like MIMIC's dicom ids


def mimic_ids(image_id: str) -> tuple[int, int, str]:
    """(subject_id, study_id, dicom_id) of a phantom image in MIMIC-style layouts; both writers use it."""
    k = int(image_id.split("-")[1])
    return 10_000_000 + k, 50_000_000 + k, _dicom_id(image_id)


def _study_dir(subject_id: int, study_id: int) -> str:
    return f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}"


def _write_jpg(source: Path, target: Path, mirror: bool = False) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        (ImageOps.mirror(image) if mirror else image).convert("L").save(target, quality=95)


def _write_csv_gz(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue().encode("utf-8"))


def _csv_value(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _mimic_report(record: dict[str, Any], k: int, view: str) -> str:
    exam = "CHEST (PA AND LAT)" if view == "PA" else "CHEST (PORTABLE AP)"
    indications = (
        "___ with cough",
        "___F with shortness of breath",
        "___M with chest pain, eval for pneumonia",
    )
    labels = {f["label"] for f in record["findings"]}
    indication = "___ with new lines and tubes, assess position" if "support_device" in labels else indications[k % 3]
    lines = ["                                 FINAL REPORT", f" EXAMINATION:  {exam}", " "]
    lines += [f" INDICATION:  {indication}", " ", " COMPARISON:  None.", " "]
    if k % 7 != 5:  # a few reports have no FINDINGS section, as in the real data
        lines += [" FINDINGS: ", " "] + [f" {line}" for line in textwrap.wrap(record["report"], 76)] + [" "]
    lines += [" IMPRESSION: ", " "] + [f" {line}" for line in textwrap.wrap(impression(record["findings"])[0], 76)]
    return "\n".join(lines) + "\n"


_SPLIT_HEADER = ["dicom_id", "study_id", "subject_id", "split"]
_META_HEADER = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,"
    "StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,"
    "PatientOrientationCodeSequence_CodeMeaning"
).split(",")
_MS_CXR_HEADER = (
    "dicom_id,study_id,subject_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
).split(",")
_VIEW_MEANING = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}


def write_mimic_cxr_layout(phantom_root: Path, out: Path) -> Path:
    """Re-export the phantom set as MIMIC-CXR-JPG 2.0.0 (+ report .txt files), for testing the MIMIC loaders.

    Every study has one frontal image (PA, or AP for every fourth); every third PA study also gets a mirrored
    LATERAL image so that view filters have something to drop. As in MIMIC-CXR, the CheXpert labels are those
    of the impression (see `phantom_report.impression`), so they include -1.0 (uncertain) for Pneumonia.
    """
    phantom_root, out = Path(phantom_root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    split_rows, meta_rows, label_rows = [], [], []
    for record in read_manifest(phantom_root)["records"]:
        image_id = record["image_id"]
        subject_id, study_id, dicom_id = mimic_ids(image_id)
        k = study_id - 50_000_000
        width, height = record["image_size"]
        study = _study_dir(subject_id, study_id)
        view = "AP" if k % 4 == 3 else "PA"
        views = [(dicom_id, view)]
        if view == "PA" and k % 3 == 0:
            views.append((_dicom_id(f"{image_id}/lateral"), "LATERAL"))
        day = (date(2150, 1, 1) + timedelta(days=3 * k)).strftime("%Y%m%d")
        clock = f"{k % 24:02d}{7 * k % 60:02d}{13 * k % 60:02d}.{37 * k % 1000:03d}"
        exam = "CHEST (PA AND LAT)" if view == "PA" else "CHEST (PORTABLE AP)"
        for image_dicom, image_view in views:
            source = phantom_root / "images" / f"{image_id}.png"
            _write_jpg(source, out / study / f"{image_dicom}.jpg", mirror=image_view == "LATERAL")
            split_rows.append([image_dicom, study_id, subject_id, record["split"]])
            orientation = "Recumbent" if image_view == "AP" else "Erect"
            codes = [exam, _VIEW_MEANING[image_view], orientation]
            meta_rows.append([image_dicom, subject_id, study_id, exam, image_view, height, width, day, clock, *codes])
        (out / f"{study}.txt").write_text(_mimic_report(record, k, view), encoding="utf-8")
        chexpert = impression(record["findings"])[1]
        label_rows.append([subject_id, study_id] + [_csv_value(chexpert.get(c)) for c in _CHEXPERT_CSV_ORDER])
    _write_csv_gz(out / "mimic-cxr-2.0.0-split.csv.gz", _SPLIT_HEADER, split_rows)
    _write_csv_gz(out / "mimic-cxr-2.0.0-metadata.csv.gz", _META_HEADER, meta_rows)
    label_header = ["subject_id", "study_id", *_CHEXPERT_CSV_ORDER]
    _write_csv_gz(out / "mimic-cxr-2.0.0-chexpert.csv.gz", label_header, label_rows)
    return out


def write_ms_cxr_layout(phantom_root: Path, out: Path) -> Path:
    """Re-export the findings as MS-CXR v1.1.0 (a row per phrase/box, pixel xywh) plus MIMIC-CXR-JPG images.

    Categories use the CheXpert names of each label (nodule and mass become "Lung Lesion"); splits are
    train/val/test as in MS-CXR. Only images with findings are written, as in MS-CXR.
    """
    phantom_root, out = Path(phantom_root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in read_manifest(phantom_root)["records"]:
        if not record["findings"]:
            continue
        subject_id, study_id, dicom_id = mimic_ids(record["image_id"])
        path = f"{_study_dir(subject_id, study_id)}/{dicom_id}.jpg"
        _write_jpg(phantom_root / "images" / f"{record['image_id']}.png", out / path)
        width, height = record["image_size"]
        split = "val" if record["split"] == "validate" else record["split"]
        for finding in record["findings"]:
            x1, y1, x2, y2 = finding["box"]
            x, y = round(x1 * width), round(y1 * height)
            w, h = round(x2 * width) - x, round(y2 * height) - y
            ids = [
                dicom_id,
                study_id,
                subject_id,
                _MS_CXR_CATEGORY[finding["label"]],
                finding["phrase"],
                path,
            ]
            rows.append([*ids, x, y, w, h, width, height, split])
    with open(out / "MS_CXR_Local_Alignment_v1.1.0.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(_MS_CXR_HEADER)
        writer.writerows(rows)
    return out
