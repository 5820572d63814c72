"""Loaders, tasks and the radiologist reference on real annotation files that no one here wrote.

The files ship with torchxrayvision==1.5.7 (`pip install --no-deps`; never imported: its `__init__` imports
torchvision). They are read at test time and copied only into pytest's temporary folders; no row of them is
committed (VinDr-CXR and PadChest are credentialed data). Expected counts are computed here from the raw files
with the standard library (csv, tarfile, regular expressions) or pandas, not with the loaders' code; the totals
the release notes give (67,914 VinDr rows, 984 NIH boxes, 3,955 IU reports) are asserted as well.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import logging
import re
import sys
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.config import DatasetSpec
from evalkit.data import get_loader
from evalkit.data.issues import collect_issues

if importlib.util.find_spec("torchxrayvision") is None:
    pytest.skip(
        "torchxrayvision==1.5.7 is not installed (its data files are the test inputs): "
        "pip install --no-deps torchxrayvision==1.5.7",
        allow_module_level=True,
    )

from evalkit.data.public_annotations import FILES, public_file, write_public_annotations

cli = CliRunner()


def invoke(*args):
    return cli.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def public_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(write_public_annotations(tmp_path_factory.mktemp("public"))[0]).parents[1]


def load(loader: str, root: Path, split: str, **options):
    with collect_issues() as report:
        samples = get_loader(loader)(DatasetSpec(loader=loader, options=options), root, "t", split)
    return samples, report


def vindr_rows() -> list[dict[str, str]]:
    with gzip.open(public_file("vinbigdata-train.csv.gz"), "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def write_vindr_subset(root: Path, rows: list[dict[str, str]]) -> Path:
    """A VinDr-CXR layout holding only `rows` (in pytest's temporary folder, never in the repository)."""
    path = root / "vindr_cxr" / "annotations" / "annotations_train.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root / "vindr_cxr"


def first_images(rows: list[dict[str, str]], n: int) -> list[dict[str, str]]:
    """Every row of the first `n` images (file order) that have boxes."""
    chosen: list[str] = []
    for row in rows:
        if row["class_name"] != "No finding" and row["image_id"] not in chosen:
            chosen.append(row["image_id"])
            if len(chosen) == n:
                break
    keep = set(chosen)
    return [r for r in rows if r["image_id"] in keep]


# --- the files and their layout ------------------------------------------------------------------------------------


def test_files_laid_out_without_importing_the_package(public_root):
    for item in FILES:
        assert (public_root / item.target).is_file(), item.target
    assert "torchxrayvision" not in sys.modules and "torchvision" not in sys.modules


def test_cli_lays_out_files_and_names_the_install_when_absent(tmp_path, monkeypatch):
    result = invoke("data", "public-annotations", "--out", tmp_path / "d", "--link")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "nih_cxr14" / "BBox_List_2017.csv.gz").is_symlink()
    assert "credentialed" in result.output
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    result = invoke("data", "public-annotations", "--out", tmp_path / "e")
    assert result.exit_code == 2
    assert "pip install --no-deps torchxrayvision==1.5.7" in result.output


def test_public_tasks_are_listed():
    result = invoke("tasks", "--json")
    tasks = {t["name"]: t for t in json.loads(result.output)}
    assert tasks["nih-cxr14-bbox-grounding"]["access"] == "public"
    assert tasks["iu-xray-report"]["access"] == "public"
    assert tasks["vindr-reader-agreement"]["access"] == "credentialed"  # VinDr rows stay credentialed


# --- NIH ChestX-ray14 ----------------------------------------------------------------------------------------------


def nih_raw() -> list[list[str]]:
    with gzip.open(public_file("BBox_List_2017.csv.gz"), "rt", newline="") as handle:
        return list(csv.reader(handle))


def test_nih_counts_boxes_and_patients(public_root):
    raw = nih_raw()
    # The release's header: the bracket of "Bbox [x,y,w,h]" splits into four columns, three empty ones follow.
    assert raw[0] == ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "", "", ""]
    body = raw[1:]
    assert len(body) == 984
    samples, report = load("nih_cxr14", public_root / "nih_cxr14", "test")
    assert not report.issues
    pairs = Counter((r[0], r[1]) for r in body)
    assert len(samples) == len(pairs) == 984 and len({s.meta["image_id"] for s in samples}) == 880
    assert Counter(s.meta["finding"] for s in samples) == Counter(r[1] for r in body)
    by_id = {s.sample_id: s for s in samples}
    for name, finding, x, y, w, h, *_ in body[:50]:
        sample = by_id[f"{name[:-4]}/{finding}"]
        expected = np.array([float(x), float(y), float(x) + float(w), float(y) + float(h)]) / 1024
        np.testing.assert_allclose(sample.reference_boxes[0], expected, rtol=0, atol=1e-12)
        assert sample.prompt_vars["label"] == finding.lower()
    # The cluster is the patient: the Data_Entry table's Patient ID, which is also the file name's prefix.
    assert all(int(s.meta["patient_id"]) == int(s.meta["image_id"].split("_")[0]) for s in samples)
    assert all(s.cluster == f"patient:{s.meta['patient_id']}" for s in samples)
    assert load("nih_cxr14", public_root / "nih_cxr14", "train")[0] == []


def test_nih_malformed_rows_of_the_real_file(tmp_path):
    raw = nih_raw()
    header, rows = raw[0], [list(r) for r in raw[1:6]]
    rows[0][4] = ""  # width missing: dropped
    rows[1][4] = str(-float(rows[1][4]))  # negative width: an inverted box, swapped
    rows[2][2] = "1000"  # x beyond the 1024-pixel image: clipped
    rows[3][0] = ""  # no image index: dropped
    folder = tmp_path / "nih_cxr14"
    folder.mkdir()
    with open(folder / "BBox_List_2017.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    samples, report = load("nih_cxr14", folder, "test")
    problems = Counter(f"{i.problem}:{i.action.split(':')[0]}" for i in report.issues)
    assert problems == {"nan:dropped": 1, "inverted:fixed": 1, "outside_image:fixed": 1, "missing_id:dropped": 1}
    assert len(samples) == 3 and all(0 <= v <= 1 for s in samples for b in s.reference_boxes for v in b)


def test_nih_scores_without_images_and_run_says_what_is_missing(public_root, tmp_path):
    samples, _ = load("nih_cxr14", public_root / "nih_cxr14", "test")
    predictions = tmp_path / "p.jsonl"
    with open(predictions, "w") as handle:
        for s in samples:
            answer = ", ".join("[" + ", ".join(f"{v:.6f}" for v in b) + "]" for b in s.reference_boxes)
            handle.write(json.dumps({"sample_id": s.sample_id, "prediction": answer}) + "\n")
    db = tmp_path / "r.duckdb"
    result = invoke(
        "score", "--task", "nih-cxr14-bbox-grounding", "--predictions", predictions, "--model-name", "oracle",
        "--db", db, "--data-root", public_root,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stored 984 predictions" in result.output and "miou: 1.0000" in result.output
    result = invoke(
        "run", "--model", "whole-image", "--task", "nih-cxr14-bbox-grounding", "--db", db, "--data-root", public_root
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "none of the 984 samples' images exist" in message and "evalkit score" in message
    assert str(public_root / "nih_cxr14" / "images") in result.output.replace("\n", "")


# --- IU X-ray ------------------------------------------------------------------------------------------------------


def iu_raw() -> dict[str, str]:
    with tarfile.open(public_file("NLMCXR_reports.tgz")) as tar:
        return {
            Path(m.name).name: tar.extractfile(m).read().decode("utf-8")
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".xml")
        }


def section(xml: str, label: str) -> str:
    found = re.search(rf'<AbstractText Label="{label}">(.*?)</AbstractText>', xml, flags=re.S)
    return " ".join(found.group(1).split()) if found else ""


def test_iu_counts_sections_and_frontal_images(public_root, caplog):
    raw = iu_raw()
    assert len(raw) == 3955
    with caplog.at_level(logging.INFO, logger="evalkit.data.iu_xray"):
        samples, report = load("iu_xray", public_root / "iu_xray", "all")
    assert not report.issues
    left_out = {m.group(2): int(m.group(1)) for m in re.finditer(r"(\d+) reports left out \((\w+)\)", caplog.text)}
    no_text = sum(1 for xml in raw.values() if not section(xml, "FINDINGS") and not section(xml, "IMPRESSION"))
    assert left_out["no_text"] == no_text
    assert len(samples) + left_out["no_text"] + left_out["no_frontal_image"] == 3955
    with gzip.open(public_file("nlmcxr_tsne_pa.csv.gz"), "rt") as handle:
        tsne = {r["imageid"]: r["tsne-view"] for r in csv.DictReader(handle)}
    with gzip.open(public_file("nlmcxr_dicom_metadata.csv.gz"), "rt") as handle:
        dicom = {r["imageid"]: r["View Position"] for r in csv.DictReader(handle)}

    def frontal(image_id: str) -> bool:  # the pixel-derived view where there is one, else the DICOM tag
        return tsne[image_id] == "PA" if image_id in tsne else dicom.get(image_id) in ("PA", "AP")

    by_file = {f"{s.sample_id[3:]}.xml": s for s in samples}
    for name, sample in list(by_file.items())[:400]:
        xml = raw[name]
        findings, impression = section(xml, "FINDINGS"), section(xml, "IMPRESSION")
        assert sample.reference_text == (findings or impression)
        images = re.findall(r'<parentImage id="([^"]+)"', xml)
        assert sample.meta["image_id"] == next(i for i in images if frontal(i))
        assert sample.cluster == f"study:{sample.sample_id}"  # one report, one study; no patient id released
    splits = {split: {s.sample_id for s in load("iu_xray", public_root / "iu_xray", split)[0]} for split in
              ("train", "validate", "test")}  # fmt: skip
    assert sum(len(v) for v in splits.values()) == len(samples)
    assert set().union(*splits.values()) == {s.sample_id for s in samples}
    assert 0.15 < len(splits["test"]) / len(samples) < 0.25  # the 7:1:2 hash split


def test_iu_malformed_xml_is_reported(public_root, tmp_path):
    raw = iu_raw()
    folder = tmp_path / "iu_xray"
    (folder / "ecgen-radiology").mkdir(parents=True)
    for name in ("1.xml", "2.xml"):
        (folder / "ecgen-radiology" / name).write_text(raw[name])
    (folder / "ecgen-radiology" / "3.xml").write_text(raw["3.xml"][:500])  # truncated download
    for item in FILES:
        if item.target.startswith("iu_xray/") and item.target.endswith(".csv.gz"):
            (folder / Path(item.target).name).symlink_to(public_root / item.target)
    samples, report = load("iu_xray", folder, "all")
    assert [(i.source, i.problem, i.action) for i in report.issues] == [("3.xml", "xml_error", "dropped")]
    assert {s.sample_id for s in samples} <= {"CXR1", "CXR2"}


# --- VinDr-CXR -----------------------------------------------------------------------------------------------------


def test_vindr_release_counts_and_reader_triples(public_root):
    rows = vindr_rows()
    assert len(rows) == 67_914
    readers = defaultdict(set)
    for r in rows:
        readers[r["image_id"]].add(r["rad_id"])
    assert len(readers) == 15_000 and {len(v) for v in readers.values()} == {3}
    no_finding = [r for r in rows if r["class_name"] == "No finding"]
    assert len(no_finding) == 31_818 and all(not r["x_min"] and not r["y_max"] for r in no_finding)
    pairs = {(r["image_id"], r["class_name"]) for r in rows if r["class_name"] != "No finding"}
    samples, report = load("vindr_readers", public_root / "vindr_cxr", "train")
    # Empty "No finding" coordinates are not malformed boxes; the release has no other quirk to fix.
    assert not report.issues
    assert len(samples) == 3 * len(pairs) == 46_095  # every triple has boxes on one side at least
    misses = sum(1 for s in samples if not s.meta["reader_boxes"])
    false_alarms = sum(1 for s in samples if not s.reference_boxes)
    assert 0 < false_alarms < misses < len(samples)
    assert all(s.image_paths == [] and s.meta["size_source"] == "max_extent" for s in samples[:100])
    assert all(s.cluster == f"image:{s.meta['image_id']}" for s in samples)  # statistics resample images


def _wbf(boxes: list[list[float]], digits: int | None = 3) -> list[list[float]]:
    from ensemble_boxes import weighted_boxes_fusion

    if not boxes:
        return []
    fused, _, _ = weighted_boxes_fusion(
        [boxes], [[1.0] * len(boxes)], [[1] * len(boxes)], iou_thr=0.1, skip_box_thr=0.0
    )
    # rounded on the numpy values, as RadVLM's apply_wbf rounds them (0.8625 -> 0.862; issue 20 item 7)
    return [[float(round(v, digits)) if digits is not None else float(v) for v in b] for b in fused]


def test_reader_reference_is_wbf_of_the_other_readers_on_real_disagreement(public_root):
    rows = vindr_rows()
    extent: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    drawn: dict[tuple[str, str], list[tuple[str, list[float]]]] = defaultdict(list)
    for r in rows:
        if r["x_max"]:
            e = extent[r["image_id"]]
            e[0], e[1] = max(e[0], float(r["x_max"])), max(e[1], float(r["y_max"]))
    for r in rows:
        if r["class_name"] != "No finding":
            w, h = extent[r["image_id"]]
            box = [float(r["x_min"]) / w, float(r["y_min"]) / h, float(r["x_max"]) / w, float(r["y_max"]) / h]
            drawn[(r["image_id"], r["class_name"])].append((r["rad_id"], box))
    samples, _ = load("vindr_readers", public_root / "vindr_cxr", "train")
    checked = fused_many = 0
    for s in samples:
        key = (s.meta["image_id"], s.meta["class_name"])
        others = [b for rad, b in drawn[key] if rad != s.meta["reader"]]
        own = [b for rad, b in drawn[key] if rad == s.meta["reader"]]
        if len(others) < 2 or checked >= 3000:
            continue
        checked += 1
        fused_many += len(_wbf(others)) < len(others)
        assert s.reference_boxes == _wbf(others), s.sample_id
        np.testing.assert_allclose(np.asarray(s.meta["reader_boxes"]).reshape(-1, 4), np.asarray(own).reshape(-1, 4))
    assert checked == 3000 and fused_many > 500  # real disagreement: clusters of several boxes were fused


def test_vindr_grounding_loader_on_real_rows(public_root, tmp_path):
    """The abnormality-grounding loader (all readers fused) on real rows, images standing in at a small size."""
    from PIL import Image

    rows = first_images(vindr_rows(), 40)
    root = write_vindr_subset(tmp_path, rows)
    sizes = {}
    for r in rows:
        if r["x_max"]:
            old = sizes.get(r["image_id"], (0, 0))
            sizes[r["image_id"]] = (max(old[0], int(float(r["x_max"])) + 17), max(old[1], int(float(r["y_max"])) + 9))
    (root / "train_jpg").mkdir()
    for image_id in sizes:
        Image.new("L", (32, 32)).save(root / "train_jpg" / f"{image_id}.jpg")
    resolutions = {i: [h, w] for i, (w, h) in sizes.items()}  # [rows, columns], as RadVLM's converter writes
    (root / "image_resolutions_train.json").write_text(json.dumps(resolutions))
    samples, report = load("vindr_cxr", root, "train")
    assert not report.issues
    groups = defaultdict(list)
    for r in rows:
        if r["class_name"] != "No finding":
            w, h = sizes[r["image_id"]]
            groups[(r["image_id"], r["class_name"])].append(
                [float(r["x_min"]) / w, float(r["y_min"]) / h, float(r["x_max"]) / w, float(r["y_max"]) / h]
            )
    assert len(samples) == len(groups)
    for s in samples:
        assert s.reference_boxes == _wbf(groups[(s.meta["image_id"], s.meta["class_name"])])
    assert sum(s.meta["n_reader_boxes"] > len(s.reference_boxes) for s in samples) > 10


def test_vindr_malformed_rows_built_from_real_rows(tmp_path):
    rows = first_images(vindr_rows(), 3)
    boxed = [r for r in rows if r["x_min"]]
    bad = [
        {**boxed[0], "x_min": boxed[0]["x_max"], "x_max": boxed[0]["x_min"]},  # drawn right to left: swapped
        {**boxed[1], "y_min": ""},  # a box with an empty cell: dropped
        {**boxed[2], "rad_id": ""},  # no reader: dropped (agreement needs the reader)
    ]
    root = write_vindr_subset(tmp_path, rows + bad)
    samples, report = load("vindr_readers", root, "train")
    problems = Counter(f"{i.problem}:{i.action.split(':')[0]}" for i in report.issues)
    assert problems == {"inverted:fixed": 1, "nan:dropped": 1, "missing_reader:dropped": 1}
    clean, _ = load("vindr_readers", write_vindr_subset(tmp_path / "clean", rows), "train")
    assert len(samples) == len(clean)


def test_agreement_is_the_same_under_true_and_stand_in_sizes(tmp_path):
    """The protocol's claim: per-image scaling changes no grounding metric (unrounded boxes, exact up to floats)."""
    from evalkit.metrics.grounding import best_iou_per_reference, radvlm_ap50, soft_f1_iou

    rows = first_images(vindr_rows(), 150)
    root = write_vindr_subset(tmp_path, rows)
    stand_in, _ = load("vindr_readers", root, "train", round_digits=None)
    rng = np.random.default_rng(0)
    sizes = {s.meta["image_id"]: None for s in stand_in}
    extent = {}
    for r in rows:
        if r["x_max"]:
            old = extent.get(r["image_id"], (0.0, 0.0))
            extent[r["image_id"]] = (max(old[0], float(r["x_max"])), max(old[1], float(r["y_max"])))
    sizes = {
        i: [int(extent[i][1] * rng.uniform(1, 1.4)) + 1, int(extent[i][0] * rng.uniform(1, 1.4)) + 1] for i in sizes
    }
    (root / "image_resolutions_train.json").write_text(json.dumps(sizes))
    true_size, _ = load("vindr_readers", root, "train", round_digits=None)
    assert [s.sample_id for s in stand_in] == [s.sample_id for s in true_size]
    assert true_size[0].meta["size_source"] == "image_resolutions" and true_size[0].meta["image_size"]
    for a, b in zip(stand_in, true_size, strict=True):
        own_a, own_b = a.meta["reader_boxes"], b.meta["reader_boxes"]
        # ensemble-boxes accumulates fused coordinates in float32 (`np.zeros(8, dtype=np.float32)`): a box's
        # scaled and unscaled fusions differ by float32 rounding, ~1e-7 relative, ~1e-6 after IoU's divisions.
        tol = {"rel": 1e-5, "abs": 1e-6}
        assert best_iou_per_reference(own_a, a.reference_boxes) == pytest.approx(
            best_iou_per_reference(own_b, b.reference_boxes), **tol
        )
        assert radvlm_ap50(own_a, a.reference_boxes)[0] == pytest.approx(radvlm_ap50(own_b, b.reference_boxes)[0])
        assert soft_f1_iou(own_a, a.reference_boxes)[0] == pytest.approx(
            soft_f1_iou(own_b, b.reference_boxes)[0], **tol
        )


def test_radiologist_run_prints_the_agreement_table_as_a_reference(tmp_path):
    rows = first_images(vindr_rows(), 60)
    write_vindr_subset(tmp_path / "data", rows)
    db = tmp_path / "r.duckdb"
    result = invoke(
        "run",
        "--model",
        "radiologist",
        "--task",
        "vindr-reader-agreement",
        "--db",
        db,
        "--data-root",
        tmp_path / "data",
    )
    assert result.exit_code == 0, result.output
    samples, _ = load("vindr_readers", tmp_path / "data" / "vindr_cxr", "train")
    assert f"n={len(samples)}" in result.output and "reference: inter-reader agreement" in result.output
    table = result.output.split("┏", 1)[1]  # the rich table printed after the one-line summary
    for metric in ("radvlm_map50", "coco_ap", "coco_ap50", "miou", "acc50", "soft_f1_iou"):
        assert metric in table
    assert re.search(r"\d\.\d{4} \[\d\.\d{3}, \d\.\d{3}\]", table)  # value and 95% CI
    from evalkit.store import Store

    with Store(db, read_only=True) as store:
        parsed = {r["sample_id"]: json.loads(r["parsed"])["boxes"] for r in store.query("SELECT * FROM generations")}
    for s in samples:  # the answer is the reader's own boxes, in file order, at the answer's 3 decimals
        expected = np.round(np.asarray(s.meta["reader_boxes"]), 3).reshape(-1, 4)
        np.testing.assert_allclose(np.asarray(parsed[s.sample_id]).reshape(-1, 4), expected, atol=1e-12)
    # A model scored on the same task is ranked; the radiologist row is shown under it, unranked.
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(
        "".join(json.dumps({"sample_id": s.sample_id, "prediction": "[0, 0, 1, 1]"}) + "\n" for s in samples)
    )
    result = invoke("score", "--task", "vindr-reader-agreement", "--predictions", predictions, "--model-name", "whole",
                    "--db", db, "--data-root", tmp_path / "data")  # fmt: skip
    assert result.exit_code == 0, result.output
    board = json.loads(invoke("leaderboard", "--db", db, "--json").output)
    assert {r["model"]: r["reference"] for r in board} == {"radiologist": card_reference(), "whole": None}
    text = invoke("leaderboard", "--db", db).output
    assert text.index("│ whole") < text.index("│ radiologist") and "not ranked" in text
    site = tmp_path / "site"
    assert invoke("site", "build", "--db", db, "--out", site).exit_code == 0
    page = (site / "tasks" / "vindr-reader-agreement.html").read_text()
    rows_html = re.findall(r"<tr( class=\"reference\")?>\s*<td class=\"num\" data-sort=\"(\w+)\"[^>]*>(\w+)</td>", page)
    assert ("", "1", "1") in rows_html and (' class="reference"', "999999", "ref") in rows_html
    assert "inter-reader agreement on the VinDr-CXR training split" in page


def card_reference() -> str:
    from evalkit.registry import resolve_model

    return resolve_model("radiologist").reference


@pytest.mark.slow
def test_radiologist_on_the_whole_training_csv(public_root, tmp_path):
    from evalkit.registry import resolve_model, resolve_tasks
    from evalkit.run.evaluate import evaluate

    task, card = resolve_tasks("vindr-reader-agreement")[0], resolve_model("radiologist")
    (summary,) = evaluate(card, task, db=tmp_path / "r.duckdb", data_root=public_root, batch_size=2048)
    assert summary.n_samples == 46_095 and summary.errors == 0
    misses = summary.parse_failures  # a reader who drew nothing answers nothing: "no box found"
    assert misses == sum(
        1 for s in load("vindr_readers", public_root / "vindr_cxr", "train")[0] if not s.meta["reader_boxes"]
    )
    assert 0.2 < summary.metrics["radvlm_map50"] < 0.6 and 0 < summary.metrics["coco_ap"] < summary.metrics["coco_ap50"]


# --- PadChest: RadVLM's projection filter ------------------------------------------------------------------------


def test_padchest_projection_filter_matches_pandas_isin_on_the_160k_table(public_root, tmp_path):
    import pandas as pd

    from evalkit.data.grounding_layouts import write_padchest_gr_layout
    from evalkit.data.padchest_gr import read_projections
    from evalkit.data.phantom import generate_phantom

    table = public_root / "padchest_gr" / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz"
    frame = pd.read_csv(table, usecols=["ImageID", "Projection"], low_memory=False)
    radvlm = set(frame[frame["Projection"].isin(["AP", "PA"])]["ImageID"])  # RadVLM's PadChest_grounding rule
    projections = read_projections(table)
    assert len(projections) == len(frame) == 160_861  # the first, unnamed column is a saved pandas index
    assert {i for i, p in projections.items() if p in ("AP", "PA")} == radvlm
    assert {"AP_horizontal", "L", "COSTAL"} <= set(projections.values())

    # A PadChest-GR layout whose images carry real ImageIDs of several projections: only AP/PA survive.
    phantom = generate_phantom(tmp_path / "phantom", n_train=4, n_validate=2, n_test=12)
    root = write_padchest_gr_layout(phantom, tmp_path / "padchest_gr")
    reports = json.loads((root / "grounded_reports_20240819.json").read_text())
    by_projection = defaultdict(list)
    for image_id, projection in projections.items():
        by_projection[projection].append(image_id)
    kinds = ("PA", "AP", "AP_horizontal", "L")
    real = [by_projection[kinds[i % 4]][i // 4] for i in range(len(reports))]  # a mix of views in every split
    rename = {}
    for entry, new in zip(reports, real, strict=False):
        rename[entry["ImageID"]] = new
        (root / "images_grounding" / entry["ImageID"]).rename(root / "images_grounding" / new)
        entry["ImageID"] = new
    (root / "grounded_reports_20240819.json").write_text(json.dumps(reports))
    master = (root / "master_table.csv").read_text()
    for old, new in rename.items():
        master = master.replace(old, new)
    (root / "master_table.csv").write_text(master)
    unfiltered, _ = load("padchest_gr", root, "test", projections=None)
    (root / table.name).symlink_to(table)
    filtered, _ = load("padchest_gr", root, "test")
    kept = {s.meta["image_id"] for s in filtered}
    assert kept and kept == {s.meta["image_id"] for s in unfiltered} & radvlm
    assert {projections[i] for i in {s.meta["image_id"] for s in unfiltered} - kept} <= {"AP_horizontal", "L"}
