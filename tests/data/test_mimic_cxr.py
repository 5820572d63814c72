"""The MIMIC-CXR report loader on synthetic files in the real MIMIC-CXR-JPG layout (no MIMIC text is committed)."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest

from evalkit.config import DatasetSpec
from evalkit.data.mimic_cxr import load_mimic_cxr
from evalkit.data.mimic_sections import section_text, sectioned
from evalkit.data.phantom import mimic_ids, read_manifest, write_mimic_cxr_layout
from evalkit.errors import EvalkitError


@pytest.fixture(scope="module")
def mimic_root(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mimic_cxr_layout(data_root / "phantom", tmp_path_factory.mktemp("data") / "mimic-cxr-jpg")


def _load(root: Path, split: str = "test", **options):
    return load_mimic_cxr(DatasetSpec(loader="mimic_cxr", options=options), root, "t", split)


def _test_records(data_root: Path) -> list[dict]:
    return [r for r in read_manifest(data_root / "phantom")["records"] if r["split"] == "test"]


REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___ with cough

 COMPARISON:  None.

 FINDINGS:

 The lungs are clear.
 No effusion.

 IMPRESSION:

 No acute process.
"""


def test_sections_follow_the_official_rules():
    _sections, names, _ = section_text(REPORT)
    assert names == ["preamble", "examination", "indication", "comparison", "findings", "impression"]
    row = sectioned(REPORT)
    assert row["findings"] == "The lungs are clear.\n No effusion."
    assert row["impression"] == "No acute process."
    assert row["last_paragraph"] is None and row["comparison"] == "None."
    # Without findings or impression, the last paragraph of the last section becomes `last_paragraph`.
    bare = "\n INDICATION:  cough\n \n The lungs are clear.\n"
    assert sectioned(bare)["last_paragraph"] == "The lungs are clear."
    # Header typos and view headers are normalised as in the official parser.
    assert section_text("x\n IMPRESSON: a\n PA AND LATERAL VIEWS: b")[1] == ["preamble", "impression", "findings"]
    assert sectioned("no headers at all")["findings"] is None


def test_radvlm_convention(mimic_root: Path, data_root: Path):
    samples = _load(mimic_root)
    records = _test_records(data_root)
    assert len(samples) == len(records)  # one frontal image per phantom study; laterals are dropped
    assert {s.meta["view"] for s in samples} == {"PA", "AP"}
    by_id = {s.meta["study_id"]: s for s in samples}
    for record in records:
        subject_id, study_id, dicom_id = mimic_ids(record["image_id"])
        sample = by_id[study_id]
        assert sample.sample_id == dicom_id
        assert sample.image_paths[0].endswith(f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}/{dicom_id}.jpg")
        assert Path(sample.image_paths[0]).is_file()
        assert "\n" not in sample.reference_text
        k = study_id - 50_000_000
        # The phantom layout leaves FINDINGS out of every 7th report: the impression is used instead.
        assert sample.meta["reference_section"] == ("impression" if k % 7 == 5 else "findings")
        if sample.meta["reference_section"] == "findings":
            assert " ".join(sample.reference_text.split()) == " ".join(record["report"].split())
        assert sample.meta["chexpert"] is not None


def test_per_study_convention(mimic_root: Path):
    samples = _load(mimic_root, convention="per_study")
    assert all(s.sample_id == f"s{s.meta['study_id']}" for s in samples)
    assert len({s.meta["study_id"] for s in samples}) == len(samples)
    findings_only = _load(mimic_root, convention="per_study", findings_only=True)
    assert {s.meta["reference_section"] for s in findings_only} == {"findings"}
    assert len(findings_only) < len(samples)


def test_sectioned_csv_gives_the_same_samples(mimic_root: Path, tmp_path: Path):
    rows = []
    for report in sorted((mimic_root / "files").rglob("s*.txt")):
        rows.append([report.stem, *(sectioned(report.read_text())[k] for k in ("impression", "findings"))])
    with open(tmp_path / "mimic_cxr_sectioned.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study", "impression", "findings", "last_paragraph", "comparison"])
        writer.writerows([[*row, None, None] for row in rows])
    from_csv = _load(mimic_root, sectioned_csv=str(tmp_path / "mimic_cxr_sectioned.csv"))
    from_files = _load(mimic_root)
    assert [(s.sample_id, s.reference_text) for s in from_csv] == [(s.sample_id, s.reference_text) for s in from_files]


def test_filtered_reports(mimic_root: Path, tmp_path: Path):
    with pytest.raises(EvalkitError, match="RadVLM"):
        _load(mimic_root, filtered_reports_dir=str(tmp_path / "missing"))
    keep = _load(mimic_root)[:3]
    folder = tmp_path / "filtered"
    folder.mkdir()
    for sample in keep:
        (folder / f"{sample.meta['study_id']}.txt").write_text("Filtered text.\nSecond line.")
    filtered = _load(mimic_root, filtered_reports_dir=str(folder))
    assert [s.sample_id for s in filtered] == [s.sample_id for s in keep]
    assert {s.reference_text for s in filtered} == {"Filtered text.\nSecond line."}
    assert {s.meta["reference_section"] for s in filtered} == {"filtered"}


def test_missing_report_is_left_out_with_a_message(mimic_root: Path, tmp_path: Path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(mimic_root, root)
    victim = sorted((root / "files").rglob("s*.txt"))[-1]
    victim.unlink()
    with caplog.at_level(logging.WARNING):
        samples = _load(root, split="test")
    assert victim.stem not in {f"s{s.meta['study_id']}" for s in samples}
    assert "report file missing" in caplog.text and victim.stem in caplog.text


def test_bad_options_and_layout(mimic_root: Path, tmp_path: Path):
    with pytest.raises(EvalkitError, match="unknown dataset option"):
        _load(mimic_root, conventoin="radvlm")
    with pytest.raises(EvalkitError, match="unknown convention"):
        _load(mimic_root, convention="maira")
    with pytest.raises(EvalkitError, match=r"split\.csv\.gz not found"):
        _load(tmp_path)


def test_mimic_task_runs_without_metric_weights(mimic_root: Path, tmp_path: Path, monkeypatch):
    """A whole run on synthetic MIMIC-layout files: lexical metrics filled, model-backed ones unavailable."""
    import evalkit.metrics._weights as weights
    import evalkit.metrics.chexbert as chexbert
    import evalkit.metrics.radgraph as radgraph
    from evalkit.registry import resolve_tasks
    from evalkit.run.evaluate import evaluate
    from evalkit.store import Store

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path / "no-weights"))
    for module in (weights, chexbert, radgraph):
        for name in ("hf_cached_file", "hf_cached_snapshot"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda *a: None)
    monkeypatch.setattr(chexbert, "user_cache_dir", lambda app: tmp_path / "none")
    monkeypatch.setattr(radgraph, "user_cache_dir", lambda app: tmp_path / "none")
    task = resolve_tasks("mimic-cxr-report")[0]
    with Store(tmp_path / "r.duckdb") as store:
        (summary,) = evaluate("normal-template", task, db=store, data_root=mimic_root.parent)
        rows = {r["metric"]: r for r in store.query("SELECT * FROM run_metrics WHERE run_id = ?", [summary.run_id])}
    assert summary.errors == 0
    for name in ("rouge_l", "bleu_1", "bleu_4"):
        assert rows[name]["status"] == "ok" and rows[name]["value"] is not None
    for name in ("bertscore", "chexbert_micro_f1_5", "radgraph_f1_partial", "radcliq_v1", "green"):
        assert rows[name]["status"] == "unavailable" and rows[name]["reason"]
