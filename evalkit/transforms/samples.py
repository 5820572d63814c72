"""A task's samples under an image transform: new images (virtual paths), references moved with them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from evalkit.config import TransformSpec
from evalkit.errors import EvalkitError
from evalkit.sample import Box, Sample
from evalkit.transforms.laterality import mirror_text
from evalkit.transforms.pixels import PIXEL_TRANSFORMS, virtual_path


def mirror_box(box: Box) -> Box:
    """[x1, y1, x2, y2] in 0-1 mirrored left-right: x -> 1 - x, so x1 and x2 trade places."""
    x1, y1, x2, y2 = box
    return [1.0 - x2, y1, 1.0 - x1, y2]


def _mirror_value(value: Any) -> Any:
    if isinstance(value, str):
        return mirror_text(value)
    if isinstance(value, list):
        return [_mirror_value(v) for v in value]
    return value


def _patient(sample: Sample) -> str:
    """The unit two images must not share to count as different patients (else study, else the image)."""
    return sample.units.get("patient") or sample.cluster or f"image:{tuple(sample.image_paths)}"


def derangement(items: Sequence[str], groups: Sequence[str], seed: int) -> dict[str, str]:
    """item -> another item of a different group, a bijection fixed by `seed`.

    Items are shuffled, laid out group after group, and each is mapped `m` places on (cyclically), `m` the size
    of the largest group: with `m <= n/2` no item can land in its own group, in either direction of the cycle.
    """
    n = len(items)
    if n < 2:
        raise EvalkitError(f"shuffle needs images of at least two patients, got {n} image(s)")
    rng = np.random.default_rng(seed)
    order = [items[i] for i in rng.permutation(n)]
    group_of = dict(zip(items, groups, strict=True))
    by_group: dict[str, list[str]] = {}
    for item in order:
        by_group.setdefault(group_of[item], []).append(item)
    largest = max(len(members) for members in by_group.values())
    if 2 * largest > n:
        raise EvalkitError(
            f"shuffle: {largest} of {n} images belong to one patient; no assignment gives every image another "
            "patient's image"
        )
    laid_out = [item for members in by_group.values() for item in members]
    return {item: laid_out[(i + largest) % n] for i, item in enumerate(laid_out)}


def apply_transform(spec: TransformSpec, samples: Sequence[Sample]) -> list[Sample]:
    """The samples of `T@spec.name`: same ids, task name and references as given, images transformed.

    `hflip` also mirrors reference boxes and swaps laterality words in the reference text, labels and prompt
    variables (the phrase to ground moves with the image). `shuffle` shows each sample the image of another
    patient's sample and records that sample's id in `meta["shuffled_from"]`.
    """
    out = []
    if spec.name == "shuffle":
        by_image: dict[str, Sample] = {}
        for s in samples:
            by_image.setdefault("\n".join(s.image_paths), s)
        images = list(by_image)
        donors = derangement(images, [_patient(by_image[i]) for i in images], spec.seed)
        for s in samples:
            donor = by_image[donors["\n".join(s.image_paths)]]
            meta = {**s.meta, "transform": spec.name, "shuffled_from": donor.sample_id}
            if donor.image_size:
                meta["image_size"] = list(donor.image_size)
            out.append(dataclasses.replace(s, image_paths=list(donor.image_paths), meta=meta))
        return out
    if spec.name not in PIXEL_TRANSFORMS:
        raise EvalkitError(f"unknown image transform '{spec.name}'")
    for s in samples:
        changed: dict[str, Any] = {
            "image_paths": [virtual_path(spec.name, spec.seed, p) for p in s.image_paths],
            "meta": {**s.meta, "transform": spec.name},
        }
        if spec.name == "hflip":
            changed.update(
                reference_boxes=[mirror_box(b) for b in s.reference_boxes],
                reference_text=None if s.reference_text is None else mirror_text(s.reference_text),
                reference_labels=[mirror_text(label) for label in s.reference_labels],
                prompt_vars={k: _mirror_value(v) for k, v in s.prompt_vars.items()},
            )
            for key in ("side", "finding_labels"):
                if key in s.meta:
                    changed["meta"][key] = _mirror_value(s.meta[key])
        out.append(dataclasses.replace(s, **changed))
    return out
