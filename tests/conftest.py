"""Shared fixtures: a small phantom set made once per session, offline settings for transformers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def evalkit_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Locally built models (tiny-qwen3vl, the shipped base's weights) go to a per-session cache, not ~/.cache."""
    folder = tmp_path_factory.mktemp("evalkit-cache")
    os.environ["EVALKIT_CACHE_DIR"] = str(folder)
    return folder


SMALL = {"n_train": 40, "n_validate": 6, "n_test": 16}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding a small phantom set at `<root>/phantom` (the tasks' default folder)."""
    from evalkit.data.phantom import generate_phantom

    root = tmp_path_factory.mktemp("data")
    generate_phantom(root / "phantom", **SMALL)
    return root


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    return tmp_path / "results.duckdb"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests start Chromium: they belong to the full suite (`.ci/run`), not the fast lane."""
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)
