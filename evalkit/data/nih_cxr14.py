"""NIH ChestX-ray14 expert boxes (BBox_List_2017): one grounding sample per (image, finding).

Layout read (the data set folder, `--data-root`/nih_cxr14 by default; `evalkit data public-annotations` writes the
two tables from torchxrayvision's copy):
    BBox_List_2017.csv(.gz)          Image Index, Finding Label, Bbox [x,y,w,h] (pixels of the 1024 x 1024 PNGs;
                                     the header's bracket splits into the columns `Bbox [x`, `y`, `w`, `h]`, and
                                     three empty columns follow: both as released)
    Data_Entry_2017_v2020.csv(.gz)   optional: Image Index -> Patient ID, View Position (the cluster is the patient)
    images: the NIH download's PNGs in `images/` or `images_001/images/` ... `images_012/images/`, or option
            `images_dir`.

The 984 boxes cover 880 images and 8 findings; no (image, finding) pair has two boxes in the release, but the
loader keeps every box of a pair if a later release adds some. Boxes are normalised by 1024 (the size the boxes
were drawn on), whatever size the user's copy of the image has. Without images the samples still load (for
`evalkit score` on predictions made elsewhere); `evalkit run` then stops with a message naming the folder.
The release has no train split of boxes: `train` is empty, so fitted baselines say so.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import (
    first_existing,
    image_size,
    option,
    radvlm_case,
    read_csv_rows,
    require_columns,
    slug,
)
from evalkit.data.issues import clean_box, normalise, report_row
from evalkit.errors import EvalkitError
from evalkit.sample import Box, Sample, cluster_units

BOX_SPACE = 1024  # the released PNGs are 1024 x 1024 and the boxes are in their pixels
BOX_FILES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
ENTRY_FILES = (
    "Data_Entry_2017_v2020.csv",
    "Data_Entry_2017_v2020.csv.gz",
    "Data_Entry_2017.csv",
    "Data_Entry_2017.csv.gz",
)
BOX_COLUMNS = ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]")
_OPTIONS = ("images_dir",)
_SPLITS = ("test", "all", "train")


def _image_index(root: Path, given: str | None) -> tuple[dict[str, Path], Path]:
    """file name -> path of every PNG in the image folders, and the folder named in messages."""
    if given:
        folder = Path(given) if Path(given).is_absolute() else root / given
        if not folder.is_dir():
            raise EvalkitError(f"nih_cxr14: dataset option images_dir={given!r}: {folder} is not a folder")
        return {p.name: p for p in folder.glob("*.png")}, folder
    found: dict[str, Path] = {}
    for folder in [root / "images", *sorted(root.glob("images_*/images"))]:
        if folder.is_dir():
            found.update({p.name: p for p in folder.glob("*.png")})
    return found, root / "images"


def _entries(root: Path) -> dict[str, dict[str, str]]:
    path = first_existing(root, ENTRY_FILES)
    if path is None:
        return {}
    rows = read_csv_rows(path)
    require_columns(rows, path, ["Image Index", "Patient ID"])
    return {r["Image Index"].strip(): r for r in rows}


@register_loader("nih_cxr14")
def load_nih_cxr14(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of NIH ChestX-ray14's box set (split `test` or `all`: the same 880 images).

    Options (`spec.options`):
        images_dir: folder of the PNG images (absolute or relative to the data set folder).
    """
    root = Path(root)
    given = option(spec.options, "images_dir", None, _OPTIONS, "nih_cxr14")
    if split not in _SPLITS:
        raise EvalkitError(f"nih_cxr14: unknown split '{split}'; the box set is one evaluation set: use test")
    if split == "train":
        return []
    path = first_existing(root, BOX_FILES)
    if path is None:
        raise EvalkitError(
            f"nih_cxr14: {root / BOX_FILES[0]} (or .csv.gz) not found; `evalkit data public-annotations --out "
            f"{root.parent}` writes it from torchxrayvision's copy"
        )
    rows = read_csv_rows(path)
    require_columns(rows, path, BOX_COLUMNS)
    entries = _entries(root)
    images, folder = _image_index(root, given)
    source = path.name

    groups: dict[tuple[str, str], list[Box]] = defaultdict(list)
    for line, row in enumerate(rows, start=2):
        name, finding = row["Image Index"].strip(), row["Finding Label"].strip()
        if not name or not finding:
            report_row(source, f"line {line}", "missing_id", "dropped", f"image {name!r}, finding {finding!r}")
            continue
        x, y, w, h = (row[c] for c in BOX_COLUMNS[2:])
        try:
            corners = [float(x), float(y), float(x) + float(w), float(y) + float(h)]
        except ValueError:
            corners = [x, y, w, h]  # clean_box reports the non-numeric value and drops the box
        box = clean_box(corners, BOX_SPACE, BOX_SPACE, source, f"line {line}")
        if box is not None:
            groups[(name, finding)].append(normalise(box, BOX_SPACE, BOX_SPACE))

    samples = []
    for name, finding in sorted(groups):
        boxes = groups[(name, finding)]
        image = images.get(name)
        size = image_size(image) if image is not None else None
        entry = entries.get(name, {})
        patient = str(entry.get("Patient ID", "")).strip()
        samples.append(
            Sample(
                sample_id=f"{name.rsplit('.', 1)[0]}/{slug(finding)}",
                task=task,
                image_paths=[str((image or folder / name).resolve())],
                prompt_vars={"label": radvlm_case(finding)},
                reference_boxes=boxes,
                reference_labels=[finding] * len(boxes),
                meta={
                    "split": split,
                    "image_size": list(size or (BOX_SPACE, BOX_SPACE)),
                    "image_id": name,
                    "finding": finding,
                    "patient_id": patient or None,
                    "view": (entry.get("View Position") or "").strip() or None,
                },
                units=cluster_units(image=name, patient=patient or None),  # patient when Data_Entry is present
            )
        )
    return samples
