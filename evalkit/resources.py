"""Where the bundled data folders are: the source tree's top-level folders, or their copies inside the wheel.

The design card keeps tasks, cards, site templates and training configs as top-level folders of the repository
(data, not code). `pyproject.toml` maps `tasks/` and `site/` into the wheel as `evalkit/_bundled/...`; cards and
training configs are package data of `evalkit.model_adapters` and `training`. Every reader goes through `bundled(...)`,
so a source checkout, an editable install and a wheel installed anywhere find the same files.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# name -> (package holding it when installed, folder inside that package, folder in the source tree)
_BUNDLED: dict[str, tuple[str, str, str]] = {
    "tasks": ("evalkit", "_bundled/tasks", "tasks"),
    "site": ("evalkit", "_bundled/site", "site"),
    "published": ("evalkit", "_bundled/published", "published"),  # the ledger of published results
    "cards": ("evalkit.model_adapters", "cards", "evalkit/model_adapters/cards"),
    "checkpoints": ("evalkit.model_adapters", "checkpoints", "evalkit/model_adapters/checkpoints"),
    "training_configs": ("evalkit.training", "configs", "evalkit/training/configs"),
}


def bundled(name: str) -> Path:
    """The folder of one kind of bundled data (`tasks`, `site`, `published`, `cards`, `checkpoints`,
    `training_configs`).

    The installed copy wins when it exists (a wheel); otherwise this is a source checkout and the top-level
    folder is used. Both are plain folders on disk: wheels are installed unzipped.
    """
    package, inner, source = _BUNDLED[name]
    installed = Path(str(files(package).joinpath(inner)))
    return installed if installed.is_dir() else PROJECT_ROOT / source


def cache_dir() -> Path:
    """Per-user folder for things evalkit builds once (the tiny demo models): $EVALKIT_CACHE_DIR, else
    $XDG_CACHE_HOME/evalkit, else ~/.cache/evalkit. Never the current folder, so commands work from anywhere."""
    if os.environ.get("EVALKIT_CACHE_DIR"):
        return Path(os.environ["EVALKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evalkit"
