"""Derived tasks `T@NAME`: task T's spec with an image transform attached."""

from __future__ import annotations

from evalkit.config import TRANSFORM_NAMES, TaskSpec, TransformSpec
from evalkit.errors import EvalkitError, did_you_mean

SEPARATOR = "@"


def split_task_name(name: str) -> tuple[str, str | None]:
    """('T', 'NAME') for 'T@NAME', ('T', None) for a plain task name."""
    base, sep, transform = name.rpartition(SEPARATOR)
    return (base, transform) if sep and base else (name, None)


def variant_specs(task: TaskSpec) -> list[TransformSpec]:
    """The transforms a task declares (`transforms:` in its YAML), else every known one with seed 0."""
    return list(task.transforms) or [TransformSpec(name=name) for name in TRANSFORM_NAMES]  # type: ignore[arg-type]


def derive_task(task: TaskSpec, transform: str | TransformSpec) -> TaskSpec:
    """The derived task `T@NAME`: same data, prompt, metrics, access and version; images transformed.

    A transform the task declares in its YAML keeps the seed given there. Derived tasks belong to no group
    (a group's leaderboard stays the originals'), and a credentialed task's variants stay credentialed.
    """
    if task.transform is not None:
        raise EvalkitError(f"task '{task.name}' is already a derived task; transform its base task instead")
    if isinstance(transform, str):
        if transform not in TRANSFORM_NAMES:
            raise EvalkitError(
                f"unknown image transform '{transform}'{did_you_mean(transform, TRANSFORM_NAMES)}; "
                f"known: {', '.join(TRANSFORM_NAMES)}"
            )
        declared = {t.name: t for t in task.transforms}
        transform = declared.get(transform, TransformSpec(name=transform))  # type: ignore[arg-type]
    description = f"{task.description} [image transform: {transform.name}, seed {transform.seed}]".strip()
    return task.model_copy(
        update={
            "name": f"{task.name}{SEPARATOR}{transform.name}",
            "transform": transform,
            "transforms": [],
            "groups": [],
            "description": description,
        },
        deep=True,
    )
