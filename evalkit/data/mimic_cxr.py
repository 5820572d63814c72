"""MIMIC-CXR report generation samples from the user's own PhysioNet download (MIMIC-CXR-JPG 2.0.0 + reports).

Expected under the data set folder (`--data-root`/mimic-cxr by default), as PhysioNet ships them:

    files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg      MIMIC-CXR-JPG images
    files/pXX/pXXXXXXXX/sXXXXXXXX.txt                 MIMIC-CXR reports (or `reports_dir` / `sectioned_csv`)
    mimic-cxr-2.0.0-split.csv.gz, -metadata.csv.gz, -chexpert.csv.gz

Conventions (`dataset.options.convention`), each a documented, named test set:

- `radvlm` (RadVLM / RadVLM-GRPO): one sample per *frontal image* (ViewPosition PA or AP) of the official split,
  studies that have CheXpert labels and a sectioned report; reference = findings, else impression, else last
  paragraph, newlines removed (RadVLM's `MIMIC_Dataset_MM`). With `filtered_reports_dir` (RadVLM's
  LLM-filtered reports, one `<study_id>.txt` per study, which only RadVLM's authors distribute) only studies with
  a filtered report are kept and its text is the reference: 3,314 test samples.
- `per_study`: one sample per *study* with a frontal image; the image is the first PA, else AP, by acquisition
  date and time, then dicom_id; reference = findings, else impression, else last paragraph (`findings_only:
  true` drops studies without findings), whitespace collapsed. Sample id `s<study_id>`.

Sections come from `sectioned_csv` (`mimic_cxr_sectioned.csv` made by the official `create_section_files.py`)
when given, else from the report files through `evalkit.data.mimic_sections` (the same rules). A study whose
report is missing or has no usable section is left out, and the loader says how many and which.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data.mimic_sections import HAND_SECTIONED, sectioned
from evalkit.errors import EvalkitError
from evalkit.sample import Sample, cluster_units

log = logging.getLogger(__name__)

CONVENTIONS = ("radvlm", "per_study")
SPLITS = ("train", "validate", "test")
_SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}
FRONTAL = ("PA", "AP")
CSV_FILES = {
    "split": "mimic-cxr-2.0.0-split.csv",
    "metadata": "mimic-cxr-2.0.0-metadata.csv",
    "chexpert": "mimic-cxr-2.0.0-chexpert.csv",
}
OPTIONS = {
    "convention",
    "views",
    "sectioned_csv",
    "reports_dir",
    "filtered_reports_dir",
    "findings_only",
    "require_chexpert",
}


def _read_csv(root: Path, kind: str):
    import pandas as pd

    for name in (CSV_FILES[kind] + ".gz", CSV_FILES[kind]):
        path = root / name
        if path.is_file():
            try:
                return pd.read_csv(path)
            except Exception as exc:
                raise EvalkitError(f"{path}: cannot read: {exc}") from exc
    raise EvalkitError(
        f"mimic_cxr: {root / (CSV_FILES[kind] + '.gz')} not found; it comes with MIMIC-CXR-JPG 2.0.0 "
        "(https://physionet.org/content/mimic-cxr-jpg/2.0.0/)"
    )


def _resolve(root: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def _study_dir(subject_id: int, study_id: int) -> str:
    return f"files/p{str(subject_id)[:2]}/p{subject_id}/s{study_id}"


class _Sections:
    """Sections of each study, from the official sectioned CSV or parsed from the report files on demand."""

    def __init__(self, root: Path, options: dict[str, Any]) -> None:
        self.csv = _resolve(root, options.get("sectioned_csv"))
        self.reports = _resolve(root, options.get("reports_dir")) or root
        self.table: dict[int, dict[str, str | None]] | None = None
        self.problems: dict[str, list[str]] = {}
        if self.csv is not None:
            if not self.csv.is_file():
                raise EvalkitError(f"mimic_cxr: sectioned_csv {self.csv} does not exist")
            import pandas as pd

            frame = pd.read_csv(self.csv, dtype=str, keep_default_na=False)
            if "study" not in frame.columns:
                raise EvalkitError(f"{self.csv}: expected the columns of mimic_cxr_sectioned.csv (study, findings...)")
            self.table = {
                int(str(row["study"]).lstrip("s")): {
                    k: (row.get(k) or None) for k in ("findings", "impression", "last_paragraph")
                }
                for row in frame.to_dict("records")
            }

    def get(self, subject_id: int, study_id: int) -> dict[str, str | None] | None:
        if self.table is not None:
            found = self.table.get(study_id)
            if found is None:
                self.problems.setdefault("not in sectioned_csv", []).append(f"s{study_id}")
            return found
        path = self.reports / f"{_study_dir(subject_id, study_id)}.txt"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            self.problems.setdefault("report file missing", []).append(str(path))
            return None
        if f"s{study_id}" in HAND_SECTIONED:
            self.problems.setdefault("hand-sectioned by the official script (not in its CSV)", []).append(str(path))
            return None
        return sectioned(text)


def _reference(sections: dict[str, str | None], findings_only: bool) -> tuple[str | None, str | None]:
    order = ("findings",) if findings_only else ("findings", "impression", "last_paragraph")
    for kind in order:
        text = sections.get(kind)
        if text:  # RadVLM: pd.notna(...) and != 0 -- an empty section counts as missing
            return text, kind
    return None, None


def _chexpert_labels(row: dict[str, Any], columns: list[str]) -> dict[str, float | None]:
    out = {}
    for column in columns:
        value = row.get(column)
        out[column] = None if value is None or value != value else float(value)
    return out


@register_loader("mimic_cxr")
def load_mimic_cxr(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Report-generation samples of one split of MIMIC-CXR-JPG under `root` (see the module docstring)."""
    root = Path(root)
    options = dict(spec.options)
    unknown = set(options) - OPTIONS
    if unknown:
        raise EvalkitError(f"mimic_cxr: unknown dataset option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    convention = options.get("convention", "radvlm")
    if convention not in CONVENTIONS:
        raise EvalkitError(f"mimic_cxr: unknown convention '{convention}'; use one of {', '.join(CONVENTIONS)}")
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise EvalkitError(f"mimic_cxr: unknown split '{split}'; use one of {', '.join(SPLITS)}")
    views = tuple(options.get("views", FRONTAL))
    filtered = _resolve(root, options.get("filtered_reports_dir"))
    if filtered is not None and not filtered.is_dir():
        raise EvalkitError(
            f"mimic_cxr: filtered_reports_dir {filtered} does not exist. The RadVLM test set (3,314 samples) needs "
            "RadVLM's LLM-filtered reports, one <study_id>.txt per study, from the RadVLM authors; without them, "
            "use the task mimic-cxr-report (unfiltered findings)."
        )

    split_table = _read_csv(root, "split")
    metadata = _read_csv(root, "metadata")
    chexpert = _read_csv(root, "chexpert")
    label_columns = [c for c in chexpert.columns if c not in ("subject_id", "study_id")]
    labels = {(int(r["subject_id"]), int(r["study_id"])): r for r in chexpert.to_dict("records")}
    split_of = {r["dicom_id"]: r["split"] for r in split_table.to_dict("records")}
    images = [
        r
        for r in metadata.to_dict("records")
        if split_of.get(r["dicom_id"]) == split and r.get("ViewPosition") in views
    ]
    require_labels = bool(options.get("require_chexpert", convention == "radvlm"))
    findings_only = bool(options.get("findings_only", False))
    filtered_ids = {p.stem for p in filtered.glob("*.txt")} if filtered is not None else None
    sections = _Sections(root, options)
    skipped: dict[str, list[str]] = {}

    def reference_for(subject_id: int, study_id: int) -> tuple[str | None, str | None]:
        if filtered_ids is not None and str(study_id) not in filtered_ids:
            return None, None
        found = sections.get(subject_id, study_id)  # RadVLM joins the sectioned reports in either case
        if found is None:
            return None, None
        if filtered_ids is not None:
            return (filtered / f"{study_id}.txt").read_text(encoding="utf-8", errors="replace"), "filtered"
        return _reference(found, findings_only)

    if convention == "per_study":
        rank = {v: i for i, v in enumerate(("PA", "AP", *views))}
        by_study: dict[tuple[int, int], dict[str, Any]] = {}
        for r in images:
            key = (int(r["subject_id"]), int(r["study_id"]))
            order = (rank.get(r["ViewPosition"], 99), str(r.get("StudyDate")), str(r.get("StudyTime")), r["dicom_id"])
            if key not in by_study or order < by_study[key]["_order"]:
                by_study[key] = {**r, "_order": order}
        images = sorted(by_study.values(), key=lambda r: (int(r["subject_id"]), int(r["study_id"])))

    samples: list[Sample] = []
    texts: dict[tuple[int, int], tuple[str | None, str | None]] = {}
    for r in images:
        subject_id, study_id, dicom_id = int(r["subject_id"]), int(r["study_id"]), str(r["dicom_id"])
        key = (subject_id, study_id)
        if require_labels and key not in labels:
            skipped.setdefault("no CheXpert labels", []).append(f"s{study_id}")
            continue
        if key not in texts:
            texts[key] = reference_for(subject_id, study_id)
        text, source = texts[key]
        if not text:
            if filtered_ids is None:
                skipped.setdefault("no findings / impression / last paragraph", []).append(f"s{study_id}")
            continue
        if convention == "radvlm" and source != "filtered":
            text = text.replace("\n", "")
        elif convention == "per_study":
            text = " ".join(text.split())
        image = root / _study_dir(subject_id, study_id) / f"{dicom_id}.jpg"
        meta: dict[str, Any] = {
            "split": split,
            "subject_id": subject_id,
            "study_id": study_id,
            "dicom_id": dicom_id,
            "view": r.get("ViewPosition"),
            "reference_section": source,
            "chexpert": _chexpert_labels(labels[key], label_columns) if key in labels else None,
        }
        if r.get("Rows") == r.get("Rows") and r.get("Columns") == r.get("Columns") and r.get("Rows") is not None:
            meta["image_size"] = [int(r["Columns"]), int(r["Rows"])]
        sample_id = dicom_id if convention == "radvlm" else f"s{study_id}"
        units = cluster_units(image=dicom_id, study=study_id, patient=subject_id)
        samples.append(
            Sample(
                sample_id=sample_id, task=task, image_paths=[str(image)], reference_text=text, meta=meta, units=units
            )
        )
    for reason, items in {**sections.problems, **skipped}.items():
        unique = sorted(set(items))
        log.warning("mimic_cxr %s: %d studies left out (%s), e.g. %s", split, len(unique), reason, unique[:3])
    if not samples:
        raise EvalkitError(
            f"mimic_cxr: no {split} samples under {root} (convention {convention}, views {list(views)}); "
            "check the folder layout described in evalkit/data/mimic_cxr.py"
        )
    return samples
