"""IU X-ray (Indiana University chest X-ray collection, Open-i) report generation: one sample per report.

Layout read (the data set folder, `--data-root`/iu_xray by default; `evalkit data public-annotations` writes the
tables from torchxrayvision's copy):
    NLMCXR_reports.tgz, or its extracted `ecgen-radiology/*.xml`   one XML per report: FINDINGS and IMPRESSION
                                     (`AbstractText Label=...`), the report's images (`parentImage id=...`)
    nlmcxr_dicom_metadata.csv(.gz)   optional: imageid -> DICOM `View Position` (PA, AP, LL, LATERAL, ... or empty)
    nlmcxr_tsne_pa.csv(.gz)          optional: imageid -> `tsne-view` (PA or L), torchxrayvision's view from the
                                     pixels, for 3,851 images
    images: the Open-i PNGs in `NLMCXR_png/` (the download's folder), `images/`, or option `images_dir`.

Convention (the field's for IU X-ray): the reference is the FINDINGS section, else the IMPRESSION; a report with
neither is left out. The image is the report's first frontal image, in the XML's order; an image is frontal when
torchxrayvision's pixel-derived view says PA, else (no t-SNE view) when its DICOM View Position is PA or AP: the
DICOM tag is empty for a third of the images and says PA for some laterals, which the pixel view corrects. A
report without a frontal image is left out. The collection has no official split: a report goes to train,
validate or test by a hash of its id (7:1:2, R2Gen's proportions), so the split never changes; `all` is every
report. The cluster is the report (one study; the release has no patient id). Without images the samples still
load for `evalkit score`; `evalkit run` stops with a message naming the folder.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import first_existing, image_size, option, read_csv_rows
from evalkit.data.issues import report_row
from evalkit.errors import EvalkitError
from evalkit.sample import Sample, cluster_units

log = logging.getLogger(__name__)

REPORTS_ARCHIVE = "NLMCXR_reports.tgz"
REPORTS_DIR = "ecgen-radiology"
DICOM_TABLES = ("nlmcxr_dicom_metadata.csv", "nlmcxr_dicom_metadata.csv.gz")
TSNE_TABLES = ("nlmcxr_tsne_pa.csv", "nlmcxr_tsne_pa.csv.gz")
FRONTAL_DICOM = ("PA", "AP")
IMAGE_DIRS = ("NLMCXR_png", "images")
SPLITS = ("train", "validate", "test", "all")
_SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate"}
_OPTIONS = ("images_dir", "split_file", "reference")
REFERENCES = ("findings_else_impression", "findings_impression")
REXRANK_SPLIT_URL = "https://github.com/rajpurkarlab/ReXrank/blob/07cdd3b/data/iu_xray/ReXRank_IUXray_test.json"


def split_of(report_id: str) -> str:
    """train / validate / test from a hash of the report id (7:1:2): stable across releases and machines."""
    bucket = int(hashlib.sha256(f"iu_xray/{report_id}".encode()).hexdigest()[:8], 16) % 10
    return "train" if bucket < 7 else "validate" if bucket == 7 else "test"


def _clean(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _report_files(root: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, XML bytes) of every report, from the extracted folder or the archive, in file-name order."""
    folder = root / REPORTS_DIR
    if folder.is_dir() and any(folder.glob("*.xml")):
        for path in sorted(folder.glob("*.xml"), key=lambda p: p.name):
            yield path.name, path.read_bytes()
        return
    archive = root / REPORTS_ARCHIVE
    if not archive.is_file():
        raise EvalkitError(
            f"iu_xray: neither {folder}/*.xml nor {archive} found; `evalkit data public-annotations --out "
            f"{root.parent}` writes the archive from torchxrayvision's copy"
        )
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = sorted(
                (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")), key=lambda m: m.name
            )
            for member in members:
                handle = tar.extractfile(member)
                if handle is not None:
                    yield Path(member.name).name, handle.read()
    except (OSError, tarfile.TarError) as exc:
        raise EvalkitError(f"{archive}: cannot read the report archive: {exc}") from exc


def _views(root: Path) -> dict[str, str]:
    """imageid -> view: the t-SNE (pixel) view where there is one, else the DICOM View Position."""
    views: dict[str, str] = {}
    dicom = first_existing(root, DICOM_TABLES)
    if dicom is not None:
        for row in read_csv_rows(dicom):
            views[row.get("imageid", "").strip()] = (row.get("View Position") or "").strip().upper()
    tsne = first_existing(root, TSNE_TABLES)
    if tsne is not None:
        for row in read_csv_rows(tsne):
            views[row.get("imageid", "").strip()] = "PA" if (row.get("tsne-view") or "").strip() == "PA" else "L"
    return views


def _split_ids(root: Path, given: str) -> list[str]:
    """Report ids of a split file: ReXrank's JSON (keys `CXR<id>_IM-<image>`) or a text file, one id a line
    (`#` comments); a file from ReXrank's repository is read where the user put it, never downloaded."""
    import json

    path = Path(given) if Path(given).is_absolute() else root / given
    if not path.is_file():
        raise EvalkitError(
            f"iu_xray: split file {path} not found (dataset option split_file); for ReXrank's test split download "
            f"ReXRank_IUXray_test.json from {REXRANK_SPLIT_URL} into {root}"
        )
    text = path.read_text(encoding="utf-8", errors="replace")  # a binary file is named below, not a traceback
    if path.suffix == ".json":
        try:
            keys = list(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise EvalkitError(f"{path}: not a JSON object keyed by study ({exc})") from exc
        ids = [str(k).split("_", 1)[0] for k in keys]
    else:
        ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        ids = [i for i in ids if i]
    bad = [i for i in ids if not re.fullmatch(r"CXR\d+", i)]
    if bad or not ids:
        raise EvalkitError(f"{path}: expected IU X-ray report ids such as CXR3030, found {bad[:3] or 'none'}")
    return list(dict.fromkeys(ids))


def _reference(findings: str, impression: str, convention: str) -> str:
    if convention == "findings_else_impression":
        return findings or impression
    # ReXrank's reference: both sections, labelled, findings first ("Findings: ... Impression: ...").
    return " ".join(part for part in (findings and f"Findings: {findings}", impression and f"Impression: {impression}")
                    if part)  # fmt: skip


def _images_dir(root: Path, given: str | None) -> Path:
    if given:
        folder = Path(given) if Path(given).is_absolute() else root / given
        if not folder.is_dir():
            raise EvalkitError(f"iu_xray: dataset option images_dir={given!r}: {folder} is not a folder")
        return folder
    return next((root / name for name in IMAGE_DIRS if (root / name).is_dir()), root / IMAGE_DIRS[0])


@register_loader("iu_xray")
def load_iu_xray(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of one split (train / validate / test / all) of the IU X-ray reports.

    Options (`spec.options`):
        images_dir: folder of the Open-i PNGs (absolute or relative to the data set folder).
        split_file: the reports to take instead of the hashed split (ReXrank's `ReXRank_IUXray_test.json`, or a
            text file of report ids); every listed report is kept, its image the first frontal one, else (no view
            known to be frontal) its first image, as ReXrank's key image.
        reference: `findings_else_impression` (default, the field's convention) or `findings_impression`
            (ReXrank's: "Findings: ... Impression: ...").
    """
    root = Path(root)
    folder = _images_dir(root, option(spec.options, "images_dir", None, _OPTIONS, "iu_xray"))
    convention = option(spec.options, "reference", REFERENCES[0], _OPTIONS, "iu_xray")
    if convention not in REFERENCES:
        raise EvalkitError(f"iu_xray: dataset option reference={convention!r}; use one of {', '.join(REFERENCES)}")
    given = option(spec.options, "split_file", None, _OPTIONS, "iu_xray")
    listed = _split_ids(root, given) if given else None
    selected = set(listed or ())
    split = _SPLIT_ALIASES.get(split, split)
    if split not in SPLITS:
        raise EvalkitError(f"iu_xray: unknown split '{split}'; use one of {', '.join(SPLITS)}")
    if listed is not None and split != _SPLIT_ALIASES.get(spec.split, spec.split):
        # The split file is the task's own split. Another one (the train split a retrieval or few-shot adapter
        # asks for) is the hashed split without the listed reports, so no test report leaks into it.
        listed = None
    excluded = selected if listed is None else set()
    views = _views(root)
    left_out: dict[str, list[str]] = {"no_text": [], "no_frontal_image": []}
    if not views:
        raise EvalkitError(
            f"iu_xray: no view table in {root} ({DICOM_TABLES[1]} or {TSNE_TABLES[1]}), so frontal images cannot be "
            "told from laterals; `evalkit data public-annotations` writes both"
        )
    samples = []
    for name, data in _report_files(root):
        try:
            tree = ElementTree.fromstring(data)
        except ElementTree.ParseError as exc:
            report_row(name, "file", "xml_error", "dropped", str(exc))
            continue
        uid = (tree.find("uId").attrib.get("id", "") if tree.find("uId") is not None else "").strip()
        uid = uid or f"CXR{name.rsplit('.', 1)[0]}"
        if listed is not None:
            if uid not in selected:
                continue
        elif uid in excluded or (split != "all" and split_of(uid) != split):
            continue
        sections = {(node.attrib.get("Label") or "").upper(): _clean(node.text) for node in tree.iter("AbstractText")}
        findings, impression = sections.get("FINDINGS", ""), sections.get("IMPRESSION", "")
        text = _reference(findings, impression, convention)
        if not text:
            left_out["no_text"].append(uid)  # the convention, not a malformed file: logged, not a data issue
            continue
        image_ids = [node.attrib.get("id", "").strip() for node in tree.iter("parentImage")]
        frontal = next((i for i in image_ids if views.get(i) in FRONTAL_DICOM), None)
        if frontal is None and listed is not None and image_ids:
            frontal = image_ids[0]  # a listed report is kept: its first image, ReXrank's key image
        if frontal is None:
            left_out["no_frontal_image"].append(uid)
            continue
        path = folder / f"{frontal}.png"
        size = image_size(path) if path.is_file() else None
        meta = {
            "split": split_of(uid),
            "report_id": uid,
            "study_id": uid,
            "image_id": frontal,
            "view": views.get(frontal, ""),
            "section": "findings" if findings else "impression",
            "impression": impression or None,
        }
        if listed is not None:
            meta["split_file"] = Path(given).name
        if size is not None:
            meta["image_size"] = list(size)
        units = cluster_units(image=frontal, study=uid)  # the release has no patient id
        samples.append(
            Sample(
                sample_id=uid, task=task, image_paths=[str(path.resolve())], reference_text=text, meta=meta, units=units
            )
        )
    if listed is not None:
        found = {s.sample_id for s in samples}
        for uid in listed:
            if uid not in found and uid not in left_out["no_text"] and uid not in left_out["no_frontal_image"]:
                report_row(str(given), uid, "not_in_reports", "dropped", "no such report in the IU X-ray XML")
        order = {uid: i for i, uid in enumerate(listed)}
        samples.sort(key=lambda s: order[s.sample_id])
    for reason, ids in left_out.items():
        if ids:
            log.info("iu_xray %s: %d reports left out (%s), e.g. %s", split, len(ids), reason, ids[:3])
    return samples
