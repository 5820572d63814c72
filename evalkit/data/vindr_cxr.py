"""VinDr-CXR (PhysioNet 1.0.0) abnormality grounding: one sample per (image, class), readers' boxes fused by WBF.

Layout read (the data set folder, `--data-root`/vindr_cxr by default):
    annotations/annotations_{train,test}.csv   image_id, rad_id (train) / rad_ID (test), class_name,
                                               x_min, y_min, x_max, y_max (pixels of the original DICOM)
                                               (the CSVs may also sit directly in the folder, or be .csv.gz)
    images: JPG/PNG converted from the DICOMs, in the first of `{split}_jpg/`, `{split}_png/`, `{split}/` that
            holds them (RadVLM's converter writes `{split}_jpg/`); evalkit does not read DICOM.
    image_resolutions_{split}.json (optional)  {image_id: [rows, columns]} as RadVLM's converter writes it;
                                               needed when the converted images were resized.
Original image sizes come from that JSON when present, else from the image header.

As in RadVLM (`VinDr_CXR_Single_Label_Dataset` + `apply_wbf`): "No finding" rows are dropped; each class's boxes
of all readers are normalised by the original width/height and fused with ensemble-boxes' `weighted_boxes_fusion`
(every score 1.0, one label, `iou_thr` 0.1, `skip_box_thr` 0.0), in the package's output order, rounded to 3
decimals.
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

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
    slug,
)
from evalkit.data.issues import clean_box, normalise, report_row
from evalkit.errors import EvalkitError
from evalkit.sample import Box, Sample, cluster_units

NO_FINDING = "No finding"
_OPTIONS = ("images_dir", "wbf_iou_thr", "round_digits")
_EXTENSIONS = (".jpg", ".png", ".jpeg")


def fuse_boxes(boxes: list[Box], iou_thr: float = 0.1, digits: int | None = 3) -> list[Box]:
    """RadVLM's `apply_wbf` on boxes already in 0-1 coordinates: ensemble-boxes WBF, scores 1.0, one label."""
    if not boxes:
        return []
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError as exc:
        raise EvalkitError("vindr_cxr: reader-box fusion needs ensemble-boxes: pip install ensemble-boxes") from exc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the boxes are already valid; WBF's clip/swap warnings cannot fire
        fused, _, _ = weighted_boxes_fusion(
            [boxes], [[1.0] * len(boxes)], [[1] * len(boxes)], iou_thr=iou_thr, skip_box_thr=0.0
        )
    # Round the numpy values, as apply_wbf does: numpy's round (scale, round half to even, unscale) breaks ties
    # differently from Python's exact decimal round (0.8625 -> 0.862, not 0.863).
    return [[float(round(v, digits)) if digits is not None else float(v) for v in box] for box in fused]


def images_dir(root: Path, split: str, given: Any) -> Path:
    """Folder of a split's converted images: option `images_dir`, else the first of {split}_jpg/_png/ that has some."""
    if given:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.is_dir():
            raise EvalkitError(f"vindr_cxr: dataset option images_dir={given!r}: {path} is not a folder")
        return path
    for name in (f"{split}_jpg", f"{split}_png", split):
        folder = root / name
        if folder.is_dir() and any(p.suffix.lower() in _EXTENSIONS for p in folder.iterdir()):
            return folder
    dicom = root / split
    hint = (
        f"{dicom} holds DICOM files, which evalkit does not read: convert them to JPG/PNG (RadVLM's "
        f"dicom2jpg_vindrcxr.py writes {split}_jpg/ and image_resolutions_{split}.json)"
        if dicom.is_dir()
        else f"expected {root / (split + '_jpg')} (or {split}_png/, {split}/) with <image_id>.jpg/.png files"
    )
    raise EvalkitError(f"vindr_cxr: no converted images for split '{split}': {hint}")


def find_image(folder: Path, image_id: str) -> Path | None:
    for ext in _EXTENSIONS:
        path = folder / f"{image_id}{ext}"
        if path.is_file():
            return path
    return None


def annotations_path(root: Path, split: str, loader: str) -> Path:
    """annotations/annotations_{split}.csv (or .csv.gz, as `evalkit data public-annotations` writes it)."""
    names = [f"{folder}annotations_{split}.csv{ext}" for folder in ("annotations/", "") for ext in ("", ".gz")]
    path = first_existing(root, names)
    if path is None:
        raise EvalkitError(
            f"{loader}: {root / names[0]} not found (nor .csv.gz); for the train split, `evalkit data "
            f"public-annotations --out {root.parent}` writes it from torchxrayvision's copy of the VinBigData release"
        )
    return path


@register_loader("vindr_cxr")
def load_vindr_cxr(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of VinDr-CXR's train or test split.

    Options (`spec.options`):
        images_dir: folder of the converted images (absolute or relative to the data set folder).
        wbf_iou_thr: WBF IoU threshold (default 0.1, RadVLM's).
        round_digits: decimals of the fused boxes (default 3, RadVLM's; null keeps full precision).
    """
    root = Path(root)
    options = spec.options
    iou_thr = float(option(options, "wbf_iou_thr", 0.1, _OPTIONS, "vindr_cxr"))
    digits = options.get("round_digits", 3)
    if split not in ("train", "test"):
        raise EvalkitError(f"vindr_cxr: unknown split '{split}'; VinDr-CXR has train and test")
    csv_path = annotations_path(root, split, "vindr_cxr")
    rows = read_csv_rows(csv_path)
    require_columns(rows, csv_path, ["image_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
    source = str(csv_path.relative_to(root))
    folder = images_dir(root, split, options.get("images_dir"))
    resolutions_path = first_existing(
        root, [f"image_resolutions_{split}.json", f"annotations/image_resolutions_{split}.json"]
    )
    resolutions: dict[str, list[int]] = {}
    if resolutions_path is not None:
        try:
            resolutions = json.loads(resolutions_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvalkitError(f"{resolutions_path}: not valid JSON: {exc}") from exc

    # image_id -> (file, original (width, height) the boxes are in, (width, height) of the file the model sees)
    images: dict[str, tuple[Path, tuple[int, int], tuple[int, int]] | None] = {}
    groups: dict[tuple[str, str], list[Box]] = defaultdict(list)
    readers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line, row in enumerate(rows, start=2):
        image_id, class_name = row["image_id"].strip(), row["class_name"].strip()
        if class_name == NO_FINDING:
            continue
        if image_id not in images:
            path = find_image(folder, image_id)
            shown = image_size(path) if path is not None else None
            if path is None or shown is None:
                images[image_id] = None
            elif image_id in resolutions:
                rows_px, cols_px = resolutions[image_id]  # RadVLM stores [Rows, Columns]
                images[image_id] = (path, (int(cols_px), int(rows_px)), shown)
            else:
                images[image_id] = (path, shown, shown)
        found = images[image_id]
        if found is None:
            report_row(source, f"line {line}", "missing_image", "dropped", f"image_id {image_id} in {folder}")
            continue
        width, height = found[1]
        corners = [row["x_min"], row["y_min"], row["x_max"], row["y_max"]]
        box = clean_box(corners, width, height, source, f"line {line}")
        if box is None:
            continue
        groups[(image_id, class_name)].append(normalise(box, width, height))
        readers[(image_id, class_name)].add(row.get("rad_id") or row.get("rad_ID") or "")

    if rows and not any(v is not None for v in images.values()) and images:
        raise no_images_error("vindr_cxr", folder, "check `images_dir`")
    samples = []
    for image_id, class_name in sorted(groups):  # pandas groupby order, as RadVLM
        path, original, shown = images[image_id]  # type: ignore[misc]
        raw = groups[(image_id, class_name)]
        fused = fuse_boxes(raw, iou_thr, digits)
        samples.append(
            Sample(
                sample_id=f"{image_id}/{slug(class_name)}",
                # VinDr-CXR publishes no patient or study ids: the image is the unit.
                units=cluster_units(image=image_id),
                task=task,
                image_paths=[str(path.resolve())],
                prompt_vars={"label": radvlm_case(class_name)},
                reference_boxes=fused,
                reference_labels=[class_name] * len(fused),
                meta={
                    "split": split,
                    "image_size": list(shown),  # what `pixels` answers refer to
                    "original_size": list(original),
                    "image_id": image_id,
                    "class_name": class_name,
                    "n_reader_boxes": len(raw),
                    "readers": sorted(r for r in readers[(image_id, class_name)] if r),
                },
            )
        )
    return samples
