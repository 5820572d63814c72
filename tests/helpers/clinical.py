"""Tiny random clinical models (real architectures), built once per test session and shared by the test modules.

Also the reference numbers recorded by tests/fixtures/make_clinical_reference.py with the reference packages.
"""

from __future__ import annotations

import json
import tempfile
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "clinical_reference.json"


@lru_cache(maxsize=1)
def reference() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def root() -> Path:
    return Path(tempfile.mkdtemp(prefix="evalkit-tiny-clinical-"))


@lru_cache(maxsize=1)
def all_options() -> dict[str, dict[str, Any]]:
    """Options pointing every clinical metric at the tiny models (evalkit.testing.tiny_clinical.write_all)."""
    from evalkit.testing import tiny_clinical

    return tiny_clinical.write_all(root() / "all")


@cache
def radgraph_folder(model_type: str) -> Path:
    from evalkit.testing import tiny_clinical

    folder, _ = tiny_clinical.write_tiny_radgraph(root() / f"radgraph-{model_type}", model_type)
    return folder


@lru_cache(maxsize=1)
def chexbert_files() -> tuple[Path, Path]:
    from evalkit.testing import tiny_clinical

    return tiny_clinical.write_tiny_chexbert(root() / "chexbert")
