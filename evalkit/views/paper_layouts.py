"""Paper-table layouts (`evalkit leaderboard --style NAME`) as data: `published/layouts/<name>.yaml`.

A layout says which stored metric fills which printed column, at what scale and precision, so a paper's table is
re-laid from the stored numbers without code. Report tasks give one table each; grounding tasks share one table
with one column per task.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field

from evalkit.config import Strict, load_spec
from evalkit.errors import EvalkitError
from evalkit.resources import bundled


class Column(Strict):
    label: str
    metric: str
    scale: float = 1.0
    decimals: int = Field(default=4, ge=0, le=10)


class ReportLayout(Strict):
    title: str = Field(description="`{task}` is replaced by the task's name")
    columns: list[Column]


class GroundingLayout(Strict):
    title: str
    metric: str
    scale: float = 1.0
    decimals: int = Field(default=4, ge=0, le=10)
    tasks: dict[str, str] = Field(default_factory=dict, description="task -> column label, in printed order")


class PaperLayout(Strict):
    name: str
    description: str = ""
    report: ReportLayout | None = None
    grounding: GroundingLayout | None = None


def _folder():
    return bundled("published") / "layouts"


def paper_styles() -> tuple[str, ...]:
    """The layouts shipped (file names without `.yaml`)."""
    folder = _folder()
    return tuple(sorted(p.stem for p in folder.glob("*.yaml"))) if folder.is_dir() else ()


@cache
def paper_layout(style: str) -> PaperLayout:
    """The layout of `style`; EvalkitError naming the known ones otherwise."""
    if style not in paper_styles():
        raise EvalkitError(f"--style must be one of {', '.join(paper_styles())}, not '{style}'")
    path = _folder() / f"{style}.yaml"
    layout = load_spec(PaperLayout, path)
    if layout.name != style:
        raise EvalkitError(f"{path}: name '{layout.name}' must match the file name '{style}'")
    return layout
