"""The layout's rules, checked on the source: SQL only in evalkit/results/, no import cycles, the harness never
imports the training kit. (`lint-imports` in .ci/run checks the import contracts of pyproject.toml as well.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("evalkit",)
SQL = re.compile(r"SELECT |INSERT INTO|INSERT OR |DELETE FROM|UPDATE \w+ SET|CREATE TABLE")


def sql_lines(text: str) -> list[int]:
    """Line numbers of `text` that hold an SQL statement keyword."""
    return [number for number, line in enumerate(text.splitlines(), 1) if SQL.search(line)]


def test_sql_pattern_finds_statements() -> None:
    code = 'rows = con.execute("SELECT * FROM runs")\ncon.execute("UPDATE run_metrics SET value = ?")\nx = 1\n'
    assert sql_lines(code) == [1, 2]
    assert sql_lines('con.execute("DELETE FROM scores")\n"CREATE TABLE t"\n"INSERT INTO t"') == [1, 2, 3]
    assert sql_lines("# selected items, an update of the table, created\n") == []


def test_no_sql_outside_results_package() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "evalkit").rglob("*.py"))
        if (ROOT / "evalkit" / "results") not in path.parents
        for number in sql_lines(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"SQL outside evalkit/results/ (move it into a function of evalkit/results/): {found}"


def _modules() -> dict[str, tuple[Path, bool]]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> project modules it imports (module level and inside functions; `if TYPE_CHECKING:` blocks left
    out, as they never run). `from package import name` counts `package.name` when that is a module."""
    modules = _modules()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [known(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base) for a in node.names]
            graph[name].update(t for t in targets if t and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (each holds at least one import cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 100 and "evalkit.run.runner" in graph["evalkit.run.evaluate"]  # the walk sees the project
    assert cycles(graph) == []


def test_harness_never_imports_training() -> None:
    # `evalkit train` (evalkit/cli/train.py) is the training kit's command line: the one allowed caller.
    graph = import_graph()
    reaching = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not name.startswith(("evalkit.training", "evalkit.cli"))
        for target in targets
        if target.startswith("evalkit.training")
    )
    assert reaching == []


def test_old_module_paths_are_the_moved_modules() -> None:
    import importlib
    import warnings

    import evalkit.model_adapters.registry
    import evalkit.run.runner

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old_runner = importlib.import_module("evalkit.runner")
        old_registry = importlib.import_module("model_adapters.registry")
    assert old_runner is evalkit.run.runner and old_registry is evalkit.model_adapters.registry  # never a copy
    assert {str(w.message).split(" moved")[0] for w in caught} >= {"evalkit.runner", "model_adapters"}


def test_a_users_own_training_package_is_never_imported(tmp_path) -> None:
    """The wheel's packages live under `evalkit`: a folder holding the user's own `training/` (or `model_adapters/`)
    runs `python -m evalkit.cli train ...` with evalkit's training kit, and the user's import still gets theirs."""
    import os
    import subprocess
    import sys

    for name in ("training", "model_adapters"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise SystemExit('the user {name} package was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-m", "evalkit.cli", "train", "sft", "--config", "x.yaml"]
    result = subprocess.run(cli, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "x.yaml" in result.stderr and "file not found" in result.stderr, result.stderr
    assert "user" not in result.stdout + result.stderr
    mine = subprocess.run(
        [sys.executable, "-c", "import evalkit, training"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert "the user training package was imported" in mine.stderr  # the alias never shadows a user's package


def test_every_installed_package_is_inside_evalkit() -> None:
    import tomllib

    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert packages and all(p == "evalkit" or p.startswith("evalkit.") for p in packages), packages


def test_no_test_module_imports_another() -> None:
    """What tests share lives in tests/helpers/; a test module importing another couples their fixtures."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if re.match(r"(tests\.)?(test_|conftest)", n)]
    assert not found, found


def test_one_store_import_name_inside_the_package() -> None:
    """`from evalkit.store import Store` is the public name for users; evalkit's own modules import
    evalkit.results.store, so there is one name to grep for."""
    found = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "evalkit").rglob("*.py"))
        if path.name != "store.py" or path.parent.name != "evalkit"
        if re.search(r"^\s*(from evalkit\.store import|import evalkit\.store\b)", path.read_text(), re.M)
    ]
    assert not found, found
