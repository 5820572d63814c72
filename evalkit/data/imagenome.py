"""Chest ImaGenome (PhysioNet 1.0.0) anatomical-region grounding over MIMIC-CXR-JPG images.

Layout read (the data set folder, `--data-root`/imagenome by default):
    silver_dataset/splits/{train,valid,test}.csv          dicom_id, subject_id, study_id[, ViewPosition, ...]
    silver_dataset/scene_graph/<dicom_id>_SceneGraph.json  objects[{bbox_name, original_x1, original_y1,
                                                            original_x2, original_y2}, ...]
Images: MIMIC-CXR-JPG `files/p../p<subject>/s<study>/<dicom_id>.jpg` under `images_root` (see
`mimic_images_root`). Boxes are in original-image pixels (`original_*`) and are divided by the image's width and
height, as RadVLM does: from MIMIC-CXR-JPG's metadata file (Columns, Rows) when present, else the JPG header
(MIMIC-CXR-JPG keeps the original resolution).

One sample per (image, region). RadVLM evaluates one region per image (`pick_one_region`): option
`one_region_per_image` draws it with `random.Random(f"{seed}:{dicom_id}")`, so the draw depends only on the seed
and the image, never on file order. RadVLM's own draw is an unseeded `random.choice`, so its exact subset cannot be
reproduced; `max_images` (RadVLM reports 2,000 test samples) keeps a seeded subset of images.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evalkit.config import DatasetSpec
from evalkit.data import register_loader
from evalkit.data._grounding_common import (
    image_size,
    mimic_image_path,
    mimic_images_root,
    mimic_sizes,
    no_images_error,
    option,
    radvlm_case,
    read_csv_rows,
    require_columns,
    slug,
)
from evalkit.data.issues import clean_box, normalise, report_row
from evalkit.errors import EvalkitError
from evalkit.sample import Sample, cluster_units

_SPLIT_FILES = {"train": "train", "test": "test", "valid": "valid", "val": "valid", "validate": "valid"}
_OPTIONS = ("images_root", "one_region_per_image", "seed", "max_images", "regions")


@register_loader("imagenome")
def load_imagenome(spec: DatasetSpec, root: Path, task: str, split: str) -> list[Sample]:
    """Samples of one split of Chest ImaGenome's silver data set.

    Options (`spec.options`):
        images_root: MIMIC-CXR-JPG folder (holding `files/`), absolute or relative to the data set folder.
        one_region_per_image: keep one region per image, drawn with `seed` (RadVLM's evaluation). Default false.
        seed: seed of the region draw and of the `max_images` subset (default 0).
        max_images: keep at most this many images, a seeded subset of the split (default: all).
        regions: only these `bbox_name`s (default: all).
    """
    root = Path(root)
    options = spec.options
    one_region = bool(option(options, "one_region_per_image", False, _OPTIONS, "imagenome"))
    seed = int(options.get("seed", 0))
    max_images = options.get("max_images")
    wanted = set(options["regions"]) if options.get("regions") else None
    if split not in _SPLIT_FILES:
        raise EvalkitError(f"imagenome: unknown split '{split}'; use train, valid or test")
    split_file = root / "silver_dataset" / "splits" / f"{_SPLIT_FILES[split]}.csv"
    graphs = root / "silver_dataset" / "scene_graph"
    if not split_file.is_file():
        raise EvalkitError(f"imagenome: {split_file} not found; is {root} the Chest ImaGenome folder (1.0.0)?")
    rows = read_csv_rows(split_file)
    require_columns(rows, split_file, ["dicom_id", "subject_id", "study_id"])
    images_root = mimic_images_root(options, root, "imagenome")
    sizes = mimic_sizes(images_root)
    source = f"silver_dataset/splits/{split_file.name}"

    present = []
    for line, row in enumerate(rows, start=2):
        graph = graphs / f"{row['dicom_id']}_SceneGraph.json"
        if graph.is_file():
            present.append((line, row, graph))
        else:  # RadVLM drops these too (its missing_ids.json)
            report_row(source, f"line {line}", "missing_scene_graph", "dropped", f"dicom_id {row['dicom_id']}")
    if max_images is not None and len(present) > int(max_images):
        keep = set(random.Random(seed).sample(sorted(r["dicom_id"] for _, r, _ in present), int(max_images)))
        present = [p for p in present if p[1]["dicom_id"] in keep]

    samples: list[Sample] = []
    any_image = False
    for line, row, graph in present:
        dicom_id = row["dicom_id"]
        relative = mimic_image_path(row["subject_id"], row["study_id"], dicom_id)
        path = images_root / relative
        exists = path.is_file()
        any_image = any_image or exists
        size = sizes.get(dicom_id) or (image_size(path) if exists else None)
        if not exists or size is None:
            report_row(source, f"line {line}", "missing_image", "dropped", str(path))
            continue
        width, height = size
        try:
            scene = json.loads(graph.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report_row(f"silver_dataset/scene_graph/{graph.name}", "file", "unreadable", "dropped", str(exc))
            continue
        regions: list[tuple[str, list[float]]] = []
        for index, obj in enumerate(scene.get("objects", [])):
            name = obj.get("bbox_name")
            if not name or (wanted is not None and name not in wanted):
                continue
            where, graph_source = f"object {index} '{name}'", f"silver_dataset/scene_graph/{graph.name}"
            if any(name == known for known, _ in regions):
                report_row(graph_source, where, "duplicate_region", "dropped", "the image's first box is kept")
                continue
            corners = [obj.get(k) for k in ("original_x1", "original_y1", "original_x2", "original_y2")]
            box = clean_box(corners, width, height, graph_source, where)
            if box is not None:
                regions.append((name, normalise(box, width, height)))
        if one_region and regions:
            regions = [random.Random(f"{seed}:{dicom_id}").choice(regions)]
        meta = {
            "split": split,
            "image_size": [width, height],
            "dicom_id": dicom_id,
            "subject_id": row["subject_id"],
            "study_id": row["study_id"],
            "view": row.get("ViewPosition") or scene.get("viewpoint"),
        }
        for name, box in regions:
            samples.append(
                Sample(
                    sample_id=f"{dicom_id}/{slug(name)}",
                    task=task,
                    image_paths=[str(path.resolve())],
                    prompt_vars={"region": radvlm_case(name)},
                    reference_boxes=[box],
                    reference_labels=[name],
                    meta=meta,
                    units=cluster_units(image=dicom_id, study=row["study_id"], patient=row["subject_id"]),
                )
            )
    if present and not any_image:
        raise no_images_error("imagenome", images_root / "files", "set `images_root` to your MIMIC-CXR-JPG folder")
    return samples
