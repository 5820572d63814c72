"""VinDr-CXR inter-reader agreement: each radiologist scored against the fusion of the other readers' boxes.

Protocol (the `vindr-reader-agreement` task; docs/public-data.md): for each image, class and reader r of that
image (a reader of an image is one with any row on it, "No finding" rows included), the reference is the weighted
box fusion of the *other* readers' boxes of that class, exactly as the VinDr loader fuses all readers
(`vindr_cxr.fuse_boxes`: ensemble-boxes WBF, iou_thr 0.1, skip_box_thr 0.0, every score 1.0, 3 decimals), and
the prediction is reader r's own boxes of that class in file order, kept in `meta["reader_boxes"]` for the
`radiologist` card to write in the task's answer format. A triple where both are empty is left out; every other
triple counts, so a reader's miss (reference boxes, no prediction) and false alarm (the reverse) both score.

Layout: as `vindr_cxr` (annotations/annotations_{split}.csv or .csv.gz; the VinBigData release that
torchxrayvision ships has the same columns plus class_id). Boxes are normalised by the original image size from
`image_resolutions_{split}.json`, else the converted image's header, else (no images at all, the usual case for
this task) per image by the largest x_max and y_max any reader drew on it. IoU is invariant under a per-axis
scaling of both boxes, and WBF's clustering (IoU) and its averaged coordinates commute with it, so every grounding
metric is the same under that stand-in size as under the true one (up to the 3-decimal rounding of fused boxes).
"""

from __future__ import annotations

import json
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
from evalkit.data.issues import clean_box, normalise, report_row, to_number
from evalkit.data.vindr_cxr import NO_FINDING, annotations_path, find_image, fuse_boxes, images_dir
from evalkit.errors import EvalkitError
from evalkit.sample import Box, Sample, cluster_units

_OPTIONS = ("images_dir", "wbf_iou_thr", "round_digits")
_CORNERS = ("x_min", "y_min", "x_max", "y_max")


def _reader(row: dict[str, str]) -> str:
    return (row.get("rad_id") or row.get("rad_ID") or "").strip()


def _max_extents(rows: list[dict[str, str]]) -> dict[str, tuple[float, float]]:
    """image_id -> (largest x_max, largest y_max) over every reader's numeric boxes."""
    extents: dict[str, tuple[float, float]] = {}
    for row in rows:
        x2, y2 = to_number(row["x_max"]), to_number(row["y_max"])
        if x2 == x2 and y2 == y2 and x2 > 0 and y2 > 0:  # NaN-safe: empty "No finding" cells are skipped
            old = extents.get(row["image_id"].strip(), (0.0, 0.0))
            extents[row["image_id"].strip()] = (max(old[0], x2), max(old[1], y2))
    return extents


def _sizes(root: Path, split: str, image_ids: set[str], given_dir: str | None) -> tuple[dict, dict, str]:
    """(image_id -> original (w, h), image_id -> image path, where sizes came from) from the JSON and images."""
    resolutions: dict[str, list[int]] = {}
    json_path = first_existing(root, [f"image_resolutions_{split}.json", f"annotations/image_resolutions_{split}.json"])
    if json_path is not None:
        try:
            resolutions = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EvalkitError(f"{json_path}: not valid JSON: {exc}") from exc
    try:
        folder: Path | None = images_dir(root, split, given_dir)
    except EvalkitError:
        if given_dir:
            raise
        folder = None  # no converted images: this task needs none
    sizes, paths = {}, {}
    for image_id in image_ids:
        path = find_image(folder, image_id) if folder is not None else None
        if path is not None:
            paths[image_id] = path
        if image_id in resolutions:
            rows_px, cols_px = resolutions[image_id]  # RadVLM stores [Rows, Columns]
            sizes[image_id] = (int(cols_px), int(rows_px))
        elif path is not None and (shown := image_size(path)) is not None:
            sizes[image_id] = shown
    source = "image_resolutions" if resolutions else "images" if paths else "max_extent"
    return sizes, paths, source


@register_loader("vindr_readers")
def load_vindr_readers(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """One sample per (image, class, reader) triple of a VinDr-CXR split, in (image, class, reader) order.

    Options (`spec.options`):
        images_dir: folder of converted images (optional; only models that look at images need them).
        wbf_iou_thr: WBF IoU threshold of the reference fusion (default 0.1, as the VinDr loader).
        round_digits: decimals of the fused reference boxes (default 3, as the VinDr loader).
    """
    root = Path(root)
    options = spec.options
    iou_thr = float(option(options, "wbf_iou_thr", 0.1, _OPTIONS, "vindr_readers"))
    digits = options.get("round_digits", 3)
    csv_path = annotations_path(root, split, "vindr_readers")
    rows = read_csv_rows(csv_path)
    require_columns(rows, csv_path, ["image_id", "class_name", *_CORNERS])
    if rows and not _reader(rows[0]):
        raise EvalkitError(f"{csv_path}: no reader column (rad_id / rad_ID): reader agreement needs one")
    source = str(csv_path.relative_to(root))
    image_ids = {r["image_id"].strip() for r in rows}
    sizes, paths, size_source = _sizes(root, split, image_ids, options.get("images_dir"))
    extents = _max_extents(rows)

    readers: dict[str, set[str]] = defaultdict(set)
    drawn: dict[tuple[str, str], list[tuple[str, Box]]] = defaultdict(list)  # (image, class) -> file order
    for line, row in enumerate(rows, start=2):
        image_id, class_name, reader = row["image_id"].strip(), row["class_name"].strip(), _reader(row)
        if not reader:
            report_row(source, f"line {line}", "missing_reader", "dropped", f"image_id {image_id}")
            continue
        readers[image_id].add(reader)
        if class_name == NO_FINDING:
            continue
        width, height = sizes.get(image_id) or extents.get(image_id, (0.0, 0.0))
        if not width or not height:  # only possible when no reader drew a numeric box on the image
            report_row(source, f"line {line}", "nan", "dropped", f"box {[row[c] for c in _CORNERS]}")
            continue
        box = clean_box([row[c] for c in _CORNERS], width, height, source, f"line {line}")
        if box is not None:
            drawn[(image_id, class_name)].append((reader, normalise(box, width, height)))

    samples = []
    for image_id, class_name in sorted(drawn):
        size = sizes.get(image_id)
        path = paths.get(image_id)
        for reader in sorted(readers[image_id]):
            own = [b for r, b in drawn[(image_id, class_name)] if r == reader]
            others = [b for r, b in drawn[(image_id, class_name)] if r != reader]
            if not own and not others:
                continue
            fused = fuse_boxes(others, iou_thr, digits)
            meta = {
                "split": split,
                "image_id": image_id,
                "class_name": class_name,
                "reader": reader,
                "reader_boxes": own,
                "other_readers": sorted(readers[image_id] - {reader}),
                "n_other_boxes": len(others),
                "size_source": "max_extent" if size is None else size_source,
            }
            if size is not None:
                meta["image_size"] = list(size)
            samples.append(
                Sample(
                    sample_id=f"{image_id}/{slug(class_name)}/{reader}",
                    task=task,
                    image_paths=[str(path.resolve())] if path is not None else [],
                    prompt_vars={"label": radvlm_case(class_name)},
                    reference_boxes=fused,
                    reference_labels=[class_name] * len(fused),
                    meta=meta,
                    units=cluster_units(image=image_id),  # an image's classes and readers are not independent
                )
            )
    return samples
