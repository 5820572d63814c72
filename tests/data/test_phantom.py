"""Phantom data set: determinism, boxes that match the pixels, text that matches the findings, loaders."""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from evalkit.config import DatasetSpec
from evalkit.data import get_loader
from evalkit.data.phantom import (
    CHEXPERT_CLASSES,
    FINDING_LABELS,
    REGION_NAMES,
    ensure_phantom,
    generate_phantom,
    load_phantom,
    mimic_ids,
    write_mimic_cxr_layout,
    write_ms_cxr_layout,
)
from evalkit.data.phantom_report import NORMAL_REPORTS, POSITIVE_CLASSES
from evalkit.errors import EvalkitError

SMALL = {"n_train": 24, "n_validate": 6, "n_test": 10}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_phantom(tmp_path_factory.mktemp("phantom"), **SMALL)


@pytest.fixture(scope="module")
def records(phantom: Path) -> list[dict[str, Any]]:
    return json.loads((phantom / "phantom.json").read_text())["records"]


def _pixels(phantom: Path, record: dict[str, Any]) -> np.ndarray:
    return np.asarray(Image.open(phantom / "images" / f"{record['image_id']}.png"), dtype=np.float64)


def _px(box: list[float], size: int) -> list[int]:
    return [round(c * size) for c in box]


def _load(root: Path, target: str, split: str = "test", **options: Any) -> list:
    spec = DatasetSpec(loader="phantom", options={"target": target, **options})
    return load_phantom(spec, root, "t", split)


def test_generation_is_deterministic(phantom: Path, tmp_path: Path) -> None:
    again = generate_phantom(tmp_path / "again", **SMALL)
    assert (again / "phantom.json").read_bytes() == (phantom / "phantom.json").read_bytes()
    for path in sorted((phantom / "images").glob("*.png")):
        assert (again / "images" / path.name).read_bytes() == path.read_bytes(), path.name


def test_second_call_rewrites_nothing_and_a_crash_is_regenerated(tmp_path: Path) -> None:
    root = generate_phantom(tmp_path, n_train=3, n_validate=1, n_test=1)
    manifest, image = root / "phantom.json", root / "images" / "ph-00000.png"
    stamps = (manifest.stat().st_mtime_ns, image.stat().st_mtime_ns)
    time.sleep(0.01)
    generate_phantom(tmp_path, n_train=3, n_validate=1, n_test=1)
    ensure_phantom(tmp_path, n_train=3, n_validate=1, n_test=1)
    assert (manifest.stat().st_mtime_ns, image.stat().st_mtime_ns) == stamps

    image.unlink()  # an interrupted run: the manifest no longer describes what is on disk
    ensure_phantom(tmp_path, n_train=3, n_validate=1, n_test=1)
    assert image.is_file()

    generate_phantom(tmp_path, n_train=2, n_validate=1, n_test=1, seed=5)  # other parameters: regenerated
    data = json.loads(manifest.read_text())
    assert data["seed"] == 5 and len(data["records"]) == 4
    assert sorted(p.name for p in (root / "images").iterdir()) == [f"ph-0000{i}.png" for i in range(4)]
    assert not (root / "phantom.json.tmp").exists()


def test_manifest_shape_and_boxes(phantom: Path, records: list[dict[str, Any]]) -> None:
    data = json.loads((phantom / "phantom.json").read_text())
    assert data["counts"] == {"train": 24, "validate": 6, "test": 10} and data["size"] == 256
    assert [r["split"] for r in records] == ["train"] * 24 + ["validate"] * 6 + ["test"] * 10
    boxes = [f["box"] for r in records for f in r["findings"]] + [g["box"] for r in records for g in r["regions"]]
    for x1, y1, x2, y2 in boxes:
        assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
        assert all(round(c, 4) == c for c in (x1, y1, x2, y2))
    assert 0.2 < sum(not r["findings"] for r in records) / len(records) < 0.45
    assert {f["label"] for r in records for f in r["findings"]} == set(FINDING_LABELS)
    for record in records:
        assert [g["name"] for g in record["regions"]] == list(REGION_NAMES)
        regions = {g["name"]: g["box"] for g in record["regions"]}
        # Radiological convention: the patient's right lung is on the image left; the heart leans image-right.
        right, left = regions["right lung"], regions["left lung"]
        assert (right[0] + right[2]) / 2 < 0.5 < (left[0] + left[2]) / 2 and right[0] < left[0]
        heart, trachea = regions["cardiac silhouette"], regions["trachea"]
        assert (heart[0] + heart[2]) / 2 > (trachea[0] + trachea[2]) / 2
        assert regions["trachea"][3] < heart[1]
        for side in ("right", "left"):
            upper, mid, lower = (regions[f"{side} {z} lung zone"] for z in ("upper", "mid", "lower"))
            assert upper[1] < mid[1] < lower[1]
            lung, angle = regions[f"{side} lung"], regions[f"{side} costophrenic angle"]
            assert angle[3] > lung[3] - 0.02
        for finding in record["findings"]:
            if finding["label"] in ("nodule", "mass", "consolidation", "pleural_effusion", "pneumothorax"):
                assert finding["side"] in ("right", "left")
                lung = regions[f"{finding['side']} lung"]
                x1, y1, x2, y2 = finding["box"]
                assert lung[0] <= x1 and x2 <= lung[2] and lung[1] <= y1 and y2 <= lung[3]
            if finding["label"] in ("nodule", "mass", "consolidation"):
                assert finding["zone"] in ("upper", "mid", "lower")


def test_findings_are_visible_in_the_pixels(phantom: Path, records: list[dict[str, Any]]) -> None:
    contrasts: dict[str, list[float]] = collections.defaultdict(list)
    for record in records:
        img = _pixels(phantom, record)
        size = img.shape[0]
        regions = {g["name"]: g["box"] for g in record["regions"]}
        for finding in record["findings"]:
            if finding["side"] is None or finding["label"] in ("support_device", "pneumothorax"):
                continue
            # Reference: the same lung's box minus the bright things in it (a pneumothorax, darker, may stay).
            keep = np.zeros(img.shape, dtype=bool)
            x1, y1, x2, y2 = _px(regions[f"{finding['side']} lung"], size)
            keep[y1:y2, x1:x2] = True
            bright = [f["box"] for f in record["findings"] if f["label"] != "pneumothorax"]
            for other in [*bright, regions["cardiac silhouette"], regions["mediastinum"]]:
                x1, y1, x2, y2 = _px(other, size)
                keep[y1:y2, x1:x2] = False
            x1, y1, x2, y2 = _px(finding["box"], size)
            contrasts[finding["label"]].append(img[y1:y2, x1:x2].mean() - np.median(img[keep]))
    for label in ("nodule", "mass", "consolidation", "pleural_effusion"):
        assert contrasts[label] and min(contrasts[label]) > 10, (label, contrasts[label])


def test_pneumothorax_is_darker_than_the_other_lung(phantom: Path, records: list[dict[str, Any]]) -> None:
    # The box spans the whole apicolateral rim, so compare the darkest pixels, where the crescent lies.
    cases = [(r, f) for r in records for f in r["findings"] if f["label"] == "pneumothorax"]
    assert cases
    for record, finding in cases:
        img = _pixels(phantom, record)
        other = {"right": "left", "left": "right"}[finding["side"]]
        x1, y1, x2, y2 = _px(finding["box"], img.shape[0])
        ox1, oy1, ox2, oy2 = _px(next(g["box"] for g in record["regions"] if g["name"] == f"{other} lung"), 256)
        darkest = np.percentile(img[y1:y2, x1:x2], 5)
        assert darkest < np.percentile(img[oy1:oy2, ox1:ox2], 5) - 10, record["image_id"]


def test_nodule_is_brighter_than_the_lung_around_it(phantom: Path, records: list[dict[str, Any]]) -> None:
    nodules = [(r, f) for r in records for f in r["findings"] if f["label"] == "nodule"]
    assert nodules
    for record, finding in nodules:
        img = _pixels(phantom, record)
        x1, y1, x2, y2 = _px(finding["box"], img.shape[0])
        pad = max(x2 - x1, y2 - y1) // 2
        ring = img[y1 - pad : y2 + pad, x1 - pad : x2 + pad]
        inside = img[y1:y2, x1:x2]
        ring_mean = (ring.sum() - inside.sum()) / (ring.size - inside.size)
        assert inside.mean() > ring_mean + 15, record["image_id"]


def test_cardiothoracic_ratio_separates_cardiomegaly(records: list[dict[str, Any]]) -> None:
    ratios: dict[bool, list[float]] = {True: [], False: []}
    for record in records:
        regions = {g["name"]: g["box"] for g in record["regions"]}
        heart, right, left = regions["cardiac silhouette"], regions["right lung"], regions["left lung"]
        ratio = (heart[2] - heart[0]) / (max(right[2], left[2]) - min(right[0], left[0]))
        ratios[any(f["label"] == "cardiomegaly" for f in record["findings"])].append(ratio)
    assert ratios[True] and ratios[False]
    assert min(ratios[True]) > 0.5 > max(ratios[False])


_MENTION = {
    "nodule": r"nodul",
    "mass": r"\bmass\b",
    "consolidation": r"consolidation",
    "pleural_effusion": r"pleural effusion",
    "pneumothorax": r"pneumothorax",
    "cardiomegaly": r"enlarged|cardiomegaly",
    "support_device": r"tube|catheter|line",
}


def test_reports_mention_findings_and_negate_absent_ones(records: list[dict[str, Any]]) -> None:
    for record in records:
        report, labels = record["report"], {f["label"] for f in record["findings"]}
        for label in labels:
            assert re.search(_MENTION[label], report, re.I), (label, report)
        for label in ("pneumothorax", "pleural effusion"):
            negated = re.search(rf"\bno\b[^.]*{label.split()[-1]}", report, re.I)
            assert bool(negated) == (label.replace(" ", "_") not in labels), report
        if "cardiomegaly" not in labels:
            assert re.search(r"normal", report) and not re.search(r"enlarged|cardiomegaly", report), report
        for finding in record["findings"]:
            if finding["side"] and finding["label"] != "support_device":
                assert finding["side"] in finding["phrase"] or "lingula" in finding["phrase"]
        if not labels:
            assert report in [text for text, _ in NORMAL_REPORTS]


def test_chexpert_labels_follow_the_findings(records: list[dict[str, Any]]) -> None:
    for record in records:
        chexpert, labels = record["chexpert"], {f["label"] for f in record["findings"]}
        assert list(chexpert) == list(CHEXPERT_CLASSES)
        assert set(chexpert.values()) <= {1.0, 0.0, None}
        positives = {cls for label in labels for cls in POSITIVE_CLASSES[label]}
        assert {c for c, v in chexpert.items() if v == 1.0} - {"No Finding"} == positives
        assert (chexpert["No Finding"] == 1.0) == (labels <= {"support_device"})
        if "pneumothorax" not in labels:
            assert chexpert["Pneumothorax"] == 0.0
        if "pleural_effusion" not in labels:
            assert chexpert["Pleural Effusion"] == 0.0


def test_loader_targets(phantom: Path, records: list[dict[str, Any]]) -> None:
    test_records = [r for r in records if r["split"] == "test"]
    assert get_loader("phantom") is load_phantom

    reports = _load(phantom, "report")
    assert [s.sample_id for s in reports] == [r["image_id"] for r in test_records]
    first = reports[0]
    assert first.task == "t" and first.reference_text == test_records[0]["report"] and first.prompt_vars == {}
    assert Path(first.image_paths[0]).is_absolute() and Path(first.image_paths[0]).is_file()
    assert first.image_size == (256, 256) and first.meta["split"] == "test"
    assert first.meta["chexpert"] == test_records[0]["chexpert"]

    abnormal = _load(phantom, "abnormality")
    expected = [
        f"{r['image_id']}/{lab}" for r in test_records for lab in dict.fromkeys(f["label"] for f in r["findings"])
    ]
    assert [s.sample_id for s in abnormal] == expected
    for sample in abnormal:
        assert sample.reference_text is None and sample.reference_boxes
        assert sample.reference_labels == [sample.prompt_vars["label"]] * len(sample.reference_boxes)
    assert any(s.prompt_vars["label"] == "pleural effusion" for s in _load(phantom, "abnormality", "train"))

    anatomy = _load(phantom, "anatomy")
    assert len(anatomy) == len(REGION_NAMES) * len(test_records)
    assert anatomy[0].sample_id == f"{test_records[0]['image_id']}/right_lung"
    assert anatomy[0].prompt_vars == {"region": "right lung"}
    one = _load(phantom, "anatomy", one_region_per_image=True, seed=3)
    assert len(one) == len(test_records) and len({s.sample_id.split("/")[0] for s in one}) == len(one)
    assert [s.sample_id for s in one] == [
        s.sample_id for s in _load(phantom, "anatomy", one_region_per_image=True, seed=3)
    ]

    phrases = _load(phantom, "phrase", "train")
    train_findings = [f for r in records if r["split"] == "train" for f in r["findings"]]
    assert len(phrases) == len(train_findings) == len({s.sample_id for s in phrases})
    assert all(s.prompt_vars["phrase"] == s.reference_text and len(s.reference_boxes) == 1 for s in phrases)
    assert all(re.fullmatch(r"ph-\d{5}/[a-z_]+-\d", s.sample_id) for s in phrases)
    assert len(_load(phantom, "report", "val")) == 6


def test_loader_errors(phantom: Path, tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="target"):
        _load(phantom, "segmentation")
    with pytest.raises(EvalkitError, match="evalkit demo"):
        _load(tmp_path, "report")


def _read_csv_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_mimic_cxr_layout(phantom: Path, records: list[dict[str, Any]], tmp_path: Path) -> None:
    out = write_mimic_cxr_layout(phantom, tmp_path / "mimic")
    splits = _read_csv_gz(out / "mimic-cxr-2.0.0-split.csv.gz")
    assert list(splits[0]) == ["dicom_id", "study_id", "subject_id", "split"]
    assert {row["split"] for row in splits} == {"train", "validate", "test"}
    meta = _read_csv_gz(out / "mimic-cxr-2.0.0-metadata.csv.gz")
    assert list(meta[0])[:7] == [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
    ]
    assert list(meta[0])[-1] == "PatientOrientationCodeSequence_CodeMeaning"
    assert {row["ViewPosition"] for row in meta} == {"PA", "AP", "LATERAL"}
    assert len(meta) == len(splits) > len(records)
    for row in meta:
        subject, study = row["subject_id"], row["study_id"]
        image = out / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{row['dicom_id']}.jpg"
        with Image.open(image) as img:
            assert img.format == "JPEG" and img.size == (int(row["Columns"]), int(row["Rows"]))
        assert len(row["dicom_id"]) == 44 and re.fullmatch(r"\d{8}", row["StudyDate"])
    subject, study, dicom = mimic_ids(records[0]["image_id"])
    assert {"dicom_id": dicom, "study_id": str(study), "subject_id": str(subject), "split": "train"} in splits

    labels = _read_csv_gz(out / "mimic-cxr-2.0.0-chexpert.csv.gz")
    assert list(labels[0]) == ["subject_id", "study_id", *sorted(CHEXPERT_CLASSES)] and len(labels) == len(records)
    values = {v for row in labels for k, v in row.items() if k not in ("subject_id", "study_id")}
    assert values == {"1.0", "0.0", "-1.0", ""}
    for row, record in zip(labels, records, strict=True):
        found = {f["label"] for f in record["findings"]}
        assert row["study_id"] == str(mimic_ids(record["image_id"])[1])
        assert (row["Pneumonia"] == "-1.0") == ("consolidation" in found)
        assert (row["No Finding"] == "1.0") == (found <= {"support_device"})
        assert (row["Pleural Effusion"] == "1.0") == ("pleural_effusion" in found)

    reports = sorted((out / "files").glob("p*/p*/s*.txt"))
    assert len(reports) == len(records)
    texts = [p.read_text() for p in reports]
    assert all("FINAL REPORT" in t and "IMPRESSION:" in t and "EXAMINATION:" in t for t in texts)
    assert 0 < sum("FINDINGS:" not in t for t in texts) < len(texts)


def test_ms_cxr_layout(phantom: Path, records: list[dict[str, Any]], tmp_path: Path) -> None:
    out = write_ms_cxr_layout(phantom, tmp_path / "ms_cxr")
    text = (out / "MS_CXR_Local_Alignment_v1.1.0.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    header = "dicom_id,study_id,subject_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split"
    assert text.splitlines()[0] == header
    findings = [(r, f) for r in records for f in r["findings"]]
    assert len(rows) == len(findings)
    assert {row["split"] for row in rows} <= {"train", "val", "test"}
    for row, (record, finding) in zip(rows, findings, strict=True):
        assert row["dicom_id"] == mimic_ids(record["image_id"])[2] and row["label_text"] == finding["phrase"]
        x, y, w, h = (int(row[k]) for k in "xywh")
        assert [round(c / 256, 4) for c in (x, y, x + w, y + h)] == finding["box"]
        with Image.open(out / row["path"]) as img:
            assert img.size == (int(row["image_width"]), int(row["image_height"]))


@pytest.mark.slow
def test_generation_time_for_450_images(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_phantom(tmp_path, n_train=300, n_validate=50, n_test=100)
    elapsed = time.perf_counter() - start
    print(f"phantom: 450 images at 256x256 in {elapsed:.2f} s")
    assert elapsed < 60
    assert len(list((tmp_path / "images").glob("*.png"))) == 450
