"""Old import paths, kept for one release (0.2 drops them): modules that moved into the wings in 0.1.x.

`import evalkit.runner` or `from training.sft import ...` written before the move still works, with a
DeprecationWarning naming the new path, and the very module object of the new path (never a second copy). A
user's own package called `training` or `model_adapters` always wins over the alias (the collision the move into
the `evalkit` namespace removed). The top-level names resolve only once `evalkit` has been imported; write
`evalkit.training` and `evalkit.model_adapters`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

# old module (or package: its submodules follow) -> new module
MOVED: dict[str, str] = {
    "training": "evalkit.training",
    "model_adapters": "evalkit.model_adapters",
    "evalkit.commands": "evalkit.cli",
    "evalkit.evaluation": "evalkit.run.evaluate",
    "evalkit.runner": "evalkit.run.runner",
    "evalkit.prompts": "evalkit.run.prompts",
    "evalkit.progress": "evalkit.run.progress",
    "evalkit.shards": "evalkit.run.shards",
    "evalkit.reports": "evalkit.run.pairs",
    "evalkit.pair_compare": "evalkit.run.pair_compare",
    "evalkit.parsing": "evalkit.answers",
    "evalkit.answer_text": "evalkit.answers",
    "evalkit.merge": "evalkit.results.merge",
    "evalkit.stored_cis": "evalkit.results.intervals",
    "evalkit.export": "evalkit.views.export",
    "evalkit.leaderboard": "evalkit.views.leaderboard",
    "evalkit.site": "evalkit.views.site",
    "evalkit.site_data": "evalkit.views.site_data",
    "evalkit.site_pairwise": "evalkit.views.site_pairwise",
    "evalkit.site_svg": "evalkit.views.site_svg",
    "evalkit.site_health": "evalkit.views.site_health",
    "evalkit.site_swap": "evalkit.views.site_swap",
    "evalkit.gate": "evalkit.views.gate",
    "evalkit.goodhart": "evalkit.views.goodhart",
    "evalkit.health": "evalkit.views.health",
    "evalkit.health_outputs": "evalkit.views.health_outputs",
    "evalkit.reliance": "evalkit.views.reliance",
    "evalkit.published_compare": "evalkit.views.published_compare",
    "evalkit.published_explain": "evalkit.views.published_explain",
    "evalkit.tables": "evalkit.cli._tables",
    "evalkit.demo": "evalkit.cli._demo",
}


def new_name(old: str) -> str | None:
    """Where an old module path lives now (None: it did not move)."""
    head, dot, rest = old, "", ""
    while head:
        if head in MOVED:
            return MOVED[head] + dot + rest
        head, _, last = head.rpartition(".")
        rest = last + dot + rest if rest else last
        dot = "."
    return None


def _own_package(name: str) -> bool:
    """A module or regular package of that name on sys.path (a bare folder, a namespace package such as
    tests/training/, is nobody's package and does not hide the alias)."""
    spec = importlib.machinery.PathFinder.find_spec(name)
    return spec is not None and spec.origin is not None


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = new_name(fullname)
        if new is None:
            return None
        parent = fullname.rpartition(".")[0]
        if fullname not in MOVED:  # a submodule: only below the aliased package, not below a user's own
            if getattr(sys.modules.get(parent), "__name__", parent) != new_name(parent):
                return None
        elif not parent and _own_package(fullname):
            return None  # a top-level package of that name on sys.path: it is the user's
        if importlib.util.find_spec(new) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        new = new_name(module.__name__)
        assert new is not None
        warnings.warn(f"{module.__name__} moved to {new}; the old path goes in evalkit 0.2", DeprecationWarning, 2)
        # The import system returns sys.modules[name] after exec_module: the real module, its __spec__ untouched.
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    # First in line, or the path finder would load a second copy of `model_adapters.x` from the aliased package's
    # folder; `find_spec` above leaves every name that is not an old path (or is a user's package) to the others.
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Alias())
