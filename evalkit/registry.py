"""Where tasks, task groups and model cards are found, by name or path.

Tasks live in `tasks/*.yaml` and cards in `model_adapters/cards/*.yaml` of the project; extra folders can be
added with EVALKIT_TASKS_PATH / EVALKIT_CARDS_PATH (os.pathsep-separated). A model can also be given as a path:
a card YAML file, or a checkpoint folder (a folder written by `evalkit train` carries its own `evalkit_card.yaml`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from evalkit.config import ModelCard, TaskSpec, load_spec, load_yaml, parse_spec
from evalkit.errors import EvalkitError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CARD_IN_CHECKPOINT = "evalkit_card.yaml"


def _dirs(default: Path, env: str) -> list[Path]:
    extra = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]
    return [*extra, default]


def task_dirs() -> list[Path]:
    return _dirs(PROJECT_ROOT / "tasks", "EVALKIT_TASKS_PATH")


def card_dirs() -> list[Path]:
    return _dirs(PROJECT_ROOT / "model_adapters" / "cards", "EVALKIT_CARDS_PATH")


def check_metric_options(spec: TaskSpec, path: Path) -> TaskSpec:
    """Each metric of a task exists and its options are that metric's typed options; errors name the file."""
    from evalkit.metrics import metric_class

    for metric in spec.metrics:
        try:
            metric_class(metric.name).check_options(metric.options)
        except EvalkitError as exc:
            raise EvalkitError(f"{path}: {exc}") from None
    return spec


def load_task(path: Path) -> TaskSpec:
    return check_metric_options(load_spec(TaskSpec, path), path)


def _scan(dirs: list[Path], model: type) -> dict[str, tuple[Path, object]]:
    found: dict[str, tuple[Path, object]] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            spec = load_task(path) if model is TaskSpec else load_spec(model, path)
            if path.stem != spec.name:
                raise EvalkitError(f"{path}: field 'name' is '{spec.name}' but the file is named '{path.stem}.yaml'")
            found.setdefault(spec.name, (path, spec))
    return found


@lru_cache(maxsize=1)
def _tasks_cached(key: str) -> dict[str, tuple[Path, TaskSpec]]:
    return _scan(task_dirs(), TaskSpec)  # type: ignore[return-value]


def all_tasks() -> dict[str, TaskSpec]:
    key = os.environ.get("EVALKIT_TASKS_PATH", "")
    return {name: spec for name, (_, spec) in _tasks_cached(key).items()}


def task_path(name: str) -> Path:
    return _tasks_cached(os.environ.get("EVALKIT_TASKS_PATH", ""))[name][0]


def task_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, spec in all_tasks().items():
        for group in spec.groups:
            groups.setdefault(group, []).append(name)
    return groups


def resolve_tasks(name_or_group: str, dataset: str | None = None) -> list[TaskSpec]:
    """A task name, a task group, or a path to a task YAML file.

    A group expands to its member tasks of the chosen data set (`dataset` = loader name). Without `dataset`, a
    group that holds real data sets and phantom tasks expands to the real ones: `--dataset phantom` selects the
    phantom ones.
    """
    path = Path(name_or_group)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return [load_task(path)]
    tasks = all_tasks()
    if name_or_group in tasks:
        return [tasks[name_or_group]]
    members = [tasks[n] for n in task_groups().get(name_or_group, [])]
    if not members:
        known = ", ".join(sorted(tasks)) + "; groups: " + ", ".join(sorted(task_groups()))
        raise EvalkitError(f"unknown task or task group '{name_or_group}'; known tasks: {known}")
    if dataset is not None:
        members = [t for t in members if t.dataset.loader == dataset]
        if not members:
            raise EvalkitError(f"task group '{name_or_group}' has no task on data set '{dataset}'")
    elif any(t.dataset.loader != "phantom" for t in members):
        members = [t for t in members if t.dataset.loader != "phantom"]
    return members


def all_cards() -> dict[str, ModelCard]:
    return {name: spec for name, (_, spec) in _scan(card_dirs(), ModelCard).items()}  # type: ignore[misc]


def resolve_model(name_or_path: str) -> ModelCard:
    """A card name, a card YAML path, or a checkpoint folder (transformers adapter, Qwen3-VL conventions)."""
    cards = all_cards()
    if name_or_path in cards:
        return cards[name_or_path]
    path = Path(name_or_path)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return load_spec(ModelCard, path)
    if path.is_dir():
        card_file = path / CARD_IN_CHECKPOINT
        if card_file.exists():
            data = load_yaml(card_file)
            if isinstance(data, dict):
                data = {**data, "checkpoint": str(path.resolve())}
            return parse_spec(ModelCard, data, card_file)
        if (path / "config.json").exists():
            return ModelCard(
                name=path.resolve().name,
                adapter="transformers",
                checkpoint=str(path.resolve()),
                family="qwen3-vl",
                box_format="qwen1000",
                description=f"checkpoint folder {path}",
            )
        raise EvalkitError(f"{path}: a folder, but neither a checkpoint (config.json) nor an evalkit checkpoint")
    raise EvalkitError(
        f"unknown model '{name_or_path}': not a card name, a card YAML file or a checkpoint folder; "
        f"known cards: {', '.join(sorted(cards))}"
    )
