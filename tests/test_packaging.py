"""The wheel carries everything a user needs outside the source tree: code packages, tasks, cards, shipped
checkpoints, site templates and training configs, found through evalkit.resources."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from evalkit import resources
from evalkit.resources import PROJECT_ROOT, bundled


def _setuptools() -> dict:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_code_package_is_listed_for_the_wheel():
    """Packages are listed by hand (the data folders are mapped in): a new package must be added there."""
    listed = set(_setuptools()["packages"])
    for top in ("evalkit",):
        for init in (PROJECT_ROOT / top).rglob("__init__.py"):
            name = ".".join(init.parent.relative_to(PROJECT_ROOT).parts)
            assert name in listed, f"add '{name}' to [tool.setuptools] packages in pyproject.toml"


def test_mapped_data_folders_exist_and_hold_their_files():
    mapping = _setuptools()["package-dir"]
    for package, folder in mapping.items():
        patterns = _setuptools()["package-data"][package]
        assert any(any((PROJECT_ROOT / folder).glob(p)) for p in patterns), (package, folder)


def test_installed_copy_wins_over_the_source_tree(tmp_path, monkeypatch):
    """In a wheel, the tasks live in evalkit/_bundled/tasks: that is where the registry then reads them."""
    installed = tmp_path / "site-packages" / "evalkit"
    (installed / "_bundled" / "tasks").mkdir(parents=True)
    (installed / "_bundled" / "tasks" / "only-here.yaml").write_text("x")
    monkeypatch.setattr(resources, "files", lambda package: installed if package == "evalkit" else Path("/nowhere"))
    assert bundled("tasks") == installed / "_bundled" / "tasks"
    assert (
        bundled("training_configs") == PROJECT_ROOT / "evalkit" / "training" / "configs"
    )  # no installed copy: the checkout


@pytest.mark.slow
def test_the_wheel_carries_the_bundled_folders(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(PROJECT_ROOT), "-w",
         str(tmp_path)],
        check=True, capture_output=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("evalkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "evalkit/_bundled/tasks/phantom-report.yaml",
        "evalkit/_bundled/site/templates/base.html",
        "evalkit/_bundled/site/static/site.css",
        "evalkit/_bundled/published/radvlm-grpo.csv",
        "evalkit/_bundled/published/rexrank.csv",
        "evalkit/_bundled/published/layouts/radvlm-grpo.yaml",
        "evalkit/model_adapters/cards/tiny-qwen3vl.yaml",
        "evalkit/model_adapters/checkpoints/demo-qwen3vl-sft/model.safetensors",
        "evalkit/training/configs/cpu-demo-sft.yaml",
        "evalkit/training/configs/accelerate/zero3.yaml",
        "evalkit/testing/tiny_qwen3vl.py",
        "evalkit/run/evaluate.py",
    ):
        assert expected in names, expected
    assert not any(n.startswith(("tests/", "site/", "tasks/", "published/")) for n in names)
    # Nothing a user's own `training/` or `model_adapters/` could collide with: one top-level package.
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"evalkit"}


def test_bundled_training_recipes_load_by_name_from_any_folder(tmp_path, monkeypatch):
    from evalkit.training.config import load_train_config

    monkeypatch.chdir(tmp_path)
    for name in ("cpu-demo-sft", "evalkit/training/configs/cpu-demo-sft.yaml", "training/configs/cpu-demo-sft.yaml"):
        assert load_train_config(Path(name), recipe="sft").recipe == "sft"
