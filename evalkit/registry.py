"""Where tasks, task groups and model cards are found, by name or path.

The bundled tasks and cards (`tasks/*.yaml`, `evalkit/model_adapters/cards/*.yaml`, found in a source checkout or inside
the installed wheel: evalkit.resources) come last; folders on EVALKIT_TASKS_PATH / EVALKIT_CARDS_PATH
(os.pathsep-separated) come first and win on a name clash. A model can also be given as a path: a card YAML file,
or a checkpoint folder (a folder written by `evalkit train` carries its own `evalkit_card.yaml`), or the name of a
checkpoint the CPU training recipe shipped (`demo-qwen3vl-sft`, as the demo's leaderboard shows it).

A file on a search path that does not parse is reported on stderr once and skipped, so one broken file breaks
only the commands that ask for it by name (they get its error).
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from evalkit.config import ModelCard, TaskSpec, load_spec, load_yaml, parse_spec
from evalkit.errors import EvalkitError, did_you_mean
from evalkit.resources import PROJECT_ROOT, bundled
from evalkit.transforms.tasks import derive_task, split_task_name

__all__ = ["CARD_IN_CHECKPOINT", "PROJECT_ROOT", "all_cards", "all_tasks", "resolve_model", "resolve_tasks"]

CARD_IN_CHECKPOINT = "evalkit_card.yaml"
_REPORTED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _REPORTED:
        _REPORTED.add(key)
        print(f"warning: {message}", file=sys.stderr)


def _dirs(default: Path, env: str) -> list[Path]:
    extra = [Path(p) for p in os.environ.get(env, "").split(os.pathsep) if p]
    for folder in extra:
        # A typo in the search path would otherwise silently hide every task or card the user meant to add.
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is a file, not a folder"
            _warn_once(f"{env}:{folder}", f"{env} entry {folder} {what}; it is skipped")
    return [*extra, default]


def task_dirs() -> list[Path]:
    return _dirs(bundled("tasks"), "EVALKIT_TASKS_PATH")


def card_dirs() -> list[Path]:
    return _dirs(bundled("cards"), "EVALKIT_CARDS_PATH")


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


def _scan(dirs: list[Path], model: type) -> tuple[dict[str, tuple[Path, object]], dict[str, EvalkitError]]:
    """(name -> (file, spec), file stem -> error of each file that did not parse)."""
    found: dict[str, tuple[Path, object]] = {}
    broken: dict[str, EvalkitError] = {}
    for folder in dirs:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
            try:
                spec = load_task(path) if model is TaskSpec else load_spec(model, path)
                if path.stem != spec.name:
                    raise EvalkitError(
                        f"{path}: field 'name' is '{spec.name}' but the file is named '{path.stem}.yaml'"
                    )
            except EvalkitError as exc:
                broken.setdefault(path.stem, exc)
                first = str(exc).splitlines()[0]
                _warn_once(str(path), f"skipped {path} (fix or remove it): {first}")
                continue
            if spec.name in found and folder == dirs[-1] and found[spec.name][0].resolve() != path.resolve():
                # A file on the search path replacing a bundled one is allowed, but never silently.
                _warn_once(
                    f"shadow:{found[spec.name][0]}",
                    f"{found[spec.name][0]} replaces the bundled '{spec.name}' ({path}); rename it to keep both",
                )
            found.setdefault(spec.name, (path, spec))
    return found, broken


@lru_cache(maxsize=4)
def _tasks_cached(key: str) -> tuple[dict[str, tuple[Path, TaskSpec]], dict[str, EvalkitError]]:
    return _scan(task_dirs(), TaskSpec)  # type: ignore[return-value]


def _tasks() -> tuple[dict[str, tuple[Path, TaskSpec]], dict[str, EvalkitError]]:
    return _tasks_cached(os.environ.get("EVALKIT_TASKS_PATH", "") + "|" + str(task_dirs()[-1]))


def all_tasks() -> dict[str, TaskSpec]:
    return {name: spec for name, (_, spec) in _tasks()[0].items()}


def task_path(name: str) -> Path:
    return _tasks()[0][name][0]


def task_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, spec in all_tasks().items():
        for group in spec.groups:
            groups.setdefault(group, []).append(name)
    return groups


def resolve_tasks(name_or_group: str, dataset: str | None = None) -> list[TaskSpec]:
    """A task name, a task group, or a path to a task YAML file; `NAME@TRANSFORM` gives its derived tasks.

    A group expands to its member tasks of the chosen data set (`dataset` = loader name). Without `dataset`, a
    group that holds real data sets and phantom tasks expands to the real ones: `--dataset phantom` selects the
    phantom ones.
    """
    path = Path(name_or_group)
    base, transform = split_task_name(name_or_group)
    if transform is not None and not path.exists():  # `T@NAME`: task (or group) T, images transformed
        return [derive_task(task, transform) for task in resolve_tasks(base, dataset)]
    tasks = all_tasks()
    single = None
    if path.suffix in (".yaml", ".yml") and path.exists():
        single = load_task(path)
    elif name_or_group in tasks:
        single = tasks[name_or_group]
    if single is not None:
        if dataset is not None and dataset != single.dataset.loader:
            raise EvalkitError(
                f"--dataset {dataset}: task '{single.name}' runs on '{single.dataset.loader}'; --dataset picks "
                "among a task group's tasks (give a group, or drop --dataset)"
            )
        return [single]
    if name_or_group in _tasks()[1]:
        raise _tasks()[1][name_or_group]
    members = [tasks[n] for n in task_groups().get(name_or_group, [])]
    if not members:
        hint = did_you_mean(name_or_group, [*tasks, *task_groups()])
        known = ", ".join(sorted(tasks)) + "; groups: " + ", ".join(sorted(task_groups()))
        raise EvalkitError(f"unknown task or task group '{name_or_group}'{hint}; known tasks: {known}")
    if dataset is not None:
        members = [t for t in members if t.dataset.loader == dataset]
        if not members:
            raise EvalkitError(f"task group '{name_or_group}' has no task on data set '{dataset}'")
    elif any(t.dataset.loader != "phantom" for t in members):
        members = [t for t in members if t.dataset.loader != "phantom"]
    return members


def all_cards() -> dict[str, ModelCard]:
    return {name: spec for name, (_, spec) in _scan(card_dirs(), ModelCard)[0].items()}  # type: ignore[misc]


def shipped_checkpoints() -> dict[str, Path]:
    """Card name -> folder of each checkpoint the CPU training recipe shipped (evalkit/model_adapters/checkpoints/)."""
    found = {}
    root = bundled("checkpoints")
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        card_file = folder / CARD_IN_CHECKPOINT
        if card_file.is_file():
            data = load_yaml(card_file)
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                found[data["name"]] = folder
    return found


# `options.build` in a card names a model built on this machine from code (random weights, real architecture).
LOCAL_BUILDS: tuple[str, ...] = ("tiny-qwen3vl",)


def with_local_build(card: ModelCard) -> ModelCard:
    """The card pointing at its locally built checkpoint, built into the user cache on first use.

    The checkpoint lives in one place per user (not under the current folder), so `--model tiny-qwen3vl` works
    from any folder and every run of it shares one fingerprint.
    """
    build = card.options.get("build")
    if build is None:
        return card
    if build not in LOCAL_BUILDS:
        raise EvalkitError(f"card '{card.name}': options.build '{build}' is not one of {', '.join(LOCAL_BUILDS)}")
    from evalkit.resources import cache_dir

    folder = cache_dir() / "models" / card.name
    if not (folder / "model.safetensors").is_file():
        from evalkit.testing.tiny_qwen3vl import build_tiny_qwen3vl

        print(f"building the random-weight {card.name} model into {folder} (once)", file=sys.stderr)
        # Built beside and renamed into place, so an interrupted build never leaves a half model to load.
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_tiny_qwen3vl(partial, seed=int(card.options.get("seed", 0)))
        shutil.rmtree(folder, ignore_errors=True)
        partial.replace(folder)
    return card.model_copy(update={"checkpoint": str(folder)})


def resolve_model(name_or_path: str) -> ModelCard:
    """A card name, a shipped checkpoint's name, a card YAML path, or a checkpoint folder (transformers adapter,
    Qwen3-VL conventions). A card whose model is built locally (`options.build`) is built on first use."""
    cards, broken = _scan(card_dirs(), ModelCard)
    if name_or_path in cards:
        return with_local_build(cards[name_or_path][1])  # type: ignore[arg-type]
    if name_or_path in broken:
        raise broken[name_or_path]
    shipped = shipped_checkpoints()
    if name_or_path in shipped:
        from evalkit.resources import cache_dir
        from evalkit.testing.tiny_qwen3vl import materialize_base

        return resolve_model(str(materialize_base(shipped[name_or_path], cache_dir() / "models")))
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
    hint = did_you_mean(name_or_path, [*cards, *shipped])
    raise EvalkitError(
        f"unknown model '{name_or_path}'{hint}: not a card name, a card YAML file or a checkpoint folder; "
        f"known cards: {', '.join(sorted(cards))}; shipped checkpoints: {', '.join(sorted(shipped))}"
    )
