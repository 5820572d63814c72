"""The four real-data grounding loaders on synthetic files in each data set's real on-disk layout."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from evalkit.config import DatasetSpec
from evalkit.data import get_loader
from evalkit.data._grounding_common import radvlm_case, slug
from evalkit.data.grounding_layouts import (
    MALFORMED_IMAGENOME,
    MALFORMED_MS_CXR,
    MALFORMED_PADCHEST,
    MALFORMED_VINDR,
    VINDR_CLASSES,
    vindr_image_id,
    write_grounding_layouts,
    write_vindr_cxr_layout,
)
from evalkit.data.issues import IssueReport, collect_issues
from evalkit.data.phantom import mimic_ids, read_manifest
from evalkit.data.vindr_cxr import fuse_boxes
from evalkit.errors import EvalkitError


@pytest.fixture(scope="session")
def layouts(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with the four real layouts (with known malformed rows), made from the small phantom set."""
    return write_grounding_layouts(data_root / "phantom", tmp_path_factory.mktemp("layouts"), malformed=True)


def _load(loader: str, root: Path, split: str = "test", **options):
    with collect_issues(loader, split) as report:
        samples = get_loader(loader)(DatasetSpec(loader=loader, options=options), root, "t", split)
    return samples, report


def _by_problem(report: IssueReport) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}
    for issue in report.issues:
        entry = counts.setdefault(issue.problem, [0, 0])
        entry[issue.action == "dropped"] += 1
    return {k: tuple(v) for k, v in counts.items()}


def _test_records(data_root: Path) -> list[dict]:
    return [r for r in read_manifest(data_root / "phantom")["records"] if r["split"] == "test"]


def _close(a, b, tol=2e-3) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# --- Chest ImaGenome ----------------------------------------------------------------------------------------------


def test_imagenome_regions_boxes_and_malformed_rows(layouts, data_root):
    samples, report = _load("imagenome", layouts / "imagenome")
    assert _by_problem(report) == MALFORMED_IMAGENOME
    by_id = {s.sample_id: s for s in samples}
    for record in _test_records(data_root):
        dicom_id = mimic_ids(record["image_id"])[2]
        for region in record["regions"]:
            sample = by_id[f"{dicom_id}/{region['name'].replace(' ', '_')}"]
            assert sample.prompt_vars == {"region": region["name"]}
            assert _close(sample.reference_boxes[0], region["box"])
            assert Path(sample.image_paths[0]).is_file() and sample.meta["image_size"] == [256, 256]
    fixed = [s for s in samples if s.reference_labels[0].startswith("malformed")]
    assert sorted(s.reference_labels[0] for s in fixed) == ["malformed inverted", "malformed outside"]
    outside = next(s for s in fixed if s.reference_labels[0] == "malformed outside")
    assert outside.reference_boxes[0][2] == 1.0  # clipped to the image


def test_imagenome_one_region_per_image_is_seeded_and_order_free(layouts, tmp_path):
    one, _ = _load("imagenome", layouts / "imagenome", one_region_per_image=True, seed=3)
    again, _ = _load("imagenome", layouts / "imagenome", one_region_per_image=True, seed=3)
    other, _ = _load("imagenome", layouts / "imagenome", one_region_per_image=True, seed=4)
    images = {s.meta["dicom_id"] for s in one}
    assert len(one) == len(images) and [s.sample_id for s in one] == [s.sample_id for s in again]
    assert [s.sample_id for s in one] != [s.sample_id for s in other]
    # Shuffling the split file changes nothing: the draw depends on (seed, dicom_id) only.
    copy = tmp_path / "imagenome"
    shutil.copytree(layouts / "imagenome" / "silver_dataset", copy / "silver_dataset")
    (copy / "files").symlink_to(layouts / "imagenome" / "files")
    split = copy / "silver_dataset" / "splits" / "test.csv"
    lines = split.read_text().splitlines()
    split.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    shuffled, _ = _load("imagenome", copy, one_region_per_image=True, seed=3)
    assert sorted(s.sample_id for s in shuffled) == sorted(s.sample_id for s in one)
    limited, _ = _load("imagenome", layouts / "imagenome", one_region_per_image=True, max_images=5)
    assert len(limited) == 5


def test_imagenome_image_sizes_without_metadata_and_images_root(layouts, tmp_path):
    copy = tmp_path / "imagenome"
    shutil.copytree(layouts / "imagenome" / "silver_dataset", copy / "silver_dataset")
    with pytest.raises(EvalkitError, match="images_root"):
        _load("imagenome", copy)
    # images_root given (absolute); no metadata file there, so sizes come from the JPG headers.
    mimic = tmp_path / "mimic"
    (mimic).mkdir()
    (mimic / "files").symlink_to(layouts / "imagenome" / "files")
    from_headers, _ = _load("imagenome", copy, images_root=str(mimic))
    from_metadata, _ = _load("imagenome", layouts / "imagenome")
    assert [s.reference_boxes for s in from_headers] == [s.reference_boxes for s in from_metadata]
    with pytest.raises(EvalkitError, match="unknown dataset option"):
        _load("imagenome", copy, images_root=str(mimic), one_region=True)


# --- VinDr-CXR ----------------------------------------------------------------------------------------------------


def test_vindr_one_sample_per_image_and_class_with_fused_boxes(layouts, data_root):
    samples, report = _load("vindr_cxr", layouts / "vindr_cxr")
    assert _by_problem(report) == MALFORMED_VINDR
    expected = Counter()
    for record in _test_records(data_root):
        for label in {f["label"] for f in record["findings"]}:
            expected[(vindr_image_id(record["image_id"]), label)] += 1
    classes = {s.sample_id for s in samples}
    assert not any("No_finding" in c for c in classes)
    assert all(s.meta["readers"] for s in samples) and samples == sorted(samples, key=lambda s: s.sample_id)
    by_id = {s.sample_id: s for s in samples}
    singles = [r for r in _test_records(data_root) if len(r["findings"]) == 1]
    record = next(r for r in singles if r["findings"][0]["label"] != "support_device")
    finding = record["findings"][0]
    sample = by_id[f"{vindr_image_id(record['image_id'])}/{slug(VINDR_CLASSES[finding['label']])}"]
    assert len(sample.reference_boxes) == 1 and _close(sample.reference_boxes[0], finding["box"], 0.02)
    assert sample.prompt_vars["label"] == radvlm_case(sample.meta["class_name"])
    assert sample.meta["n_reader_boxes"] == 3


def test_vindr_fusion_matches_radvlm_rule():
    close = [[0.10, 0.10, 0.30, 0.30], [0.12, 0.10, 0.32, 0.30]]
    far = [[0.60, 0.60, 0.80, 0.80]]
    fused = fuse_boxes(close + far)
    assert len(fused) == 2
    assert [0.11, 0.1, 0.31, 0.3] in fused and [0.6, 0.6, 0.8, 0.8] in fused
    # iou_thr 0.1: boxes overlapping by IoU 0.15 still fuse; at RadVLM's threshold the class is one box.
    assert len(fuse_boxes([[0.0, 0.0, 0.4, 0.4], [0.3, 0.0, 0.7, 0.4]], iou_thr=0.1)) == 1
    assert len(fuse_boxes([[0.0, 0.0, 0.4, 0.4], [0.3, 0.0, 0.7, 0.4]], iou_thr=0.5)) == 2


def test_vindr_resized_images_use_the_resolutions_file(data_root, tmp_path):
    write_vindr_cxr_layout(data_root / "phantom", tmp_path / "resized", resize=128)
    write_vindr_cxr_layout(data_root / "phantom", tmp_path / "original")
    resized, report = _load("vindr_cxr", tmp_path / "resized")
    original, _ = _load("vindr_cxr", tmp_path / "original")
    assert not report.issues and len(resized) == len(original)
    by_id = {s.sample_id: s for s in original}
    for sample in resized:
        assert sample.reference_boxes == by_id[sample.sample_id].reference_boxes
        assert sample.meta["image_size"] == [128, 128] and sample.meta["original_size"] == [256, 256]


def test_vindr_dicom_only_and_bad_split_are_clear_errors(tmp_path, layouts):
    root = tmp_path / "vindr_cxr"
    shutil.copytree(layouts / "vindr_cxr" / "annotations", root / "annotations")
    (root / "test").mkdir()
    (root / "test" / "abc.dicom").write_bytes(b"DICM")
    with pytest.raises(EvalkitError, match="DICOM"):
        _load("vindr_cxr", root)
    with pytest.raises(EvalkitError, match="train and test"):
        _load("vindr_cxr", layouts / "vindr_cxr", split="validate")


# --- MS-CXR -------------------------------------------------------------------------------------------------------


def test_ms_cxr_groups_boxes_of_a_phrase(layouts, tmp_path):
    samples, report = _load("ms_cxr", layouts / "ms_cxr")
    assert _by_problem(report) == MALFORMED_MS_CXR
    assert all(s.reference_text and s.prompt_vars["phrase"] == radvlm_case(s.reference_text) for s in samples)
    # A second box for the same (image, phrase) joins the same sample.
    root = tmp_path / "ms_cxr"
    root.mkdir()
    (root / "files").symlink_to(layouts / "ms_cxr" / "files")
    source = layouts / "ms_cxr" / "MS_CXR_Local_Alignment_v1.1.0.csv"
    rows = list(csv.DictReader(source.open()))
    first = next(r for r in rows if r["split"] == "test")
    rows.append({**first, "x": "5", "y": "5", "w": "20", "h": "20"})
    with open(root / source.name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    grouped, _ = _load("ms_cxr", root)
    sample = next(
        s for s in grouped if s.meta["dicom_id"] == first["dicom_id"] and s.reference_text == first["label_text"]
    )
    assert len(sample.reference_boxes) == 2 and sample.reference_boxes[1] == [5 / 256, 5 / 256, 25 / 256, 25 / 256]
    assert len(grouped) == len([s for s in samples if not s.reference_text.startswith("malformed")]) + 2
    val, _ = _load("ms_cxr", layouts / "ms_cxr", split="validate")
    assert val and all(s.meta["split"] == "validate" for s in val)


def test_radvlm_case_rule():
    assert radvlm_case("Left pleural effusion") == "left pleural effusion"
    assert radvlm_case("ILD") == "ILD" and radvlm_case("right lung") == "right lung"


# --- PadChest-GR --------------------------------------------------------------------------------------------------


def test_padchest_one_sample_per_sentence_with_boxes(layouts, data_root, tmp_path):
    samples, report = _load("padchest_gr", layouts / "padchest_gr")
    assert _by_problem(report) == MALFORMED_PADCHEST
    expected = sum(len(r["findings"]) for r in _test_records(data_root)) + 1  # + the "Malformed boxes." sentence
    assert len(samples) == expected
    assert not any(s.reference_text == "No pneumothorax." for s in samples)
    malformed = next(s for s in samples if s.reference_text == "Malformed boxes.")
    assert malformed.reference_boxes == [[0.4, 0.2, 0.6, 0.5], [0.8, 0.1, 1.0, 0.3]]
    # master_table.csv.zip as distributed, images in another folder given by option.
    root = tmp_path / "padchest_gr"
    root.mkdir()
    shutil.copy(layouts / "padchest_gr" / "grounded_reports_20240819.json", root)
    with zipfile.ZipFile(root / "master_table.csv.zip", "w") as archive:
        archive.write(layouts / "padchest_gr" / "master_table.csv", "master_table.csv")
    (root / "png").symlink_to(layouts / "padchest_gr" / "images_grounding")
    zipped, _ = _load("padchest_gr", root, images_dir="png")
    assert [s.sample_id for s in zipped] == [s.sample_id for s in samples]
    train, _ = _load("padchest_gr", layouts / "padchest_gr", split="train")
    assert train and not {s.sample_id for s in train} & {s.sample_id for s in samples}
    entries = json.loads((root / "grounded_reports_20240819.json").read_text())
    assert all(e["ImageID"].endswith(".png") for e in entries)
