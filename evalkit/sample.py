"""The unit of evaluation: one image (or several) + prompt variables + references."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Box = list[float]  # [x1, y1, x2, y2] in 0-1 image coordinates

# Resampling units from the coarsest to the finest; a sample's default cluster is the coarsest one it has.
UNITS = ("patient", "study", "image")


def cluster_units(image: Any = None, study: Any = None, patient: Any = None) -> dict[str, str]:
    """The `units` of a sample from whatever ids its data set has (None or '' for those it has not).

    Keys are prefixed by the unit so that a study id can never collide with an image id of the same value.
    """
    given = {"patient": patient, "study": study, "image": image}
    return {unit: f"{unit}:{value}" for unit, value in given.items() if value is not None and str(value) != ""}


def default_cluster(units: dict[str, str]) -> str:
    """The coarsest unit of `units` (patient, else study, else image); '' when it holds none of them."""
    return next((units[u] for u in UNITS if units.get(u)), "")


@dataclass
class Sample:
    """One evaluation item, with boxes already normalised to 0-1 by its loader.

    Attributes:
        sample_id: Stable id derived from the data set's own ids (never a row number).
        task: Name of the task the sample belongs to.
        image_paths: Images shown to the model, in order.
        prompt_vars: Values substituted into the task's prompt template (e.g. ``label``, ``phrase``).
        reference_text: Reference report (report generation) or phrase (grounding), if any.
        reference_boxes: Reference boxes in 0-1 coordinates.
        reference_labels: One label per reference box.
        meta: Anything else worth keeping (split, view, image size, CheXpert labels...).
        cluster: Key of the unit the data set drew, which statistics resample: the patient where the data set
            has one, else the study, else the image (phantom tasks: the image). Samples sharing it are not
            independent (several images of one study, several regions or classes of one image). Empty: the
            sample is its own unit. Loaders pass `units=cluster_units(...)` and get the default from it.
        units: Every grouping the loader knows, by name (`image`, `study`, `patient`), so that
            `--cluster image|study|patient` can resample another unit than the default `cluster`.
    """

    sample_id: str
    task: str
    image_paths: list[str]
    prompt_vars: dict[str, Any] = field(default_factory=dict)
    reference_text: str | None = None
    reference_boxes: list[Box] = field(default_factory=list)
    reference_labels: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    cluster: str = ""
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.cluster and self.units:
            self.cluster = default_cluster(self.units)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """(width, height) of the original image when the loader recorded it."""
        size = self.meta.get("image_size")
        return (int(size[0]), int(size[1])) if size else None


@dataclass
class Parsed:
    """What the parser made of a model's raw text."""

    answer: str
    thinking: str | None = None
    boxes: list[Box] = field(default_factory=list)
    parse_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "thinking": self.thinking,
            "boxes": self.boxes,
            "parse_error": self.parse_error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Parsed:
        return cls(
            answer=data.get("answer", ""),
            thinking=data.get("thinking"),
            # Stored JSON holds a non-finite coordinate (a 309+-digit number in the answer) as null: NaN again, a
            # box that overlaps nothing (evalkit/metrics/grounding.py), never a crash of the run.
            boxes=[[math.nan if v is None else float(v) for v in b] for b in data.get("boxes", [])],
            parse_error=data.get("parse_error"),
        )
