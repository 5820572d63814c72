"""scripts/gpu_train_check.py's reporting rules (issue 19, certain #4): a stage that did not run says `skipped`,
and work files never go under $OUT (at most 8 result files come back from the GPU check machine)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from evalkit.resources import PROJECT_ROOT


@pytest.fixture()
def check(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("gpu_train_check", PROJECT_ROOT / "scripts" / "gpu_train_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "prepare_data", lambda work, smoke: work)  # no radiographs needed here
    return module


def test_a_stage_that_could_not_run_is_skipped_not_ok(check, tmp_path: Path) -> None:
    assert check.run_stages(["grpo_vllm"], tmp_path, True) == 0
    result = json.loads((tmp_path / "stage-grpo_vllm.json").read_text(encoding="utf-8"))
    assert result["status"] == "skipped" and result["skipped"]


def test_work_folder_under_out_is_refused(check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", ["gpu_train_check.py", "--cpu-smoke", "--work", str(tmp_path / "work")])
    with pytest.raises(SystemExit) as exit_info:
        check.main()
    assert exit_info.value.code == 2
    assert not list(tmp_path.iterdir())


def test_required_stages_and_file_budget(check) -> None:
    assert "grpo_vllm" not in check.REQUIRED and {"adapter", "sft", "grpo"} <= set(check.REQUIRED)
    assert len(check.GROUPS) + 1 <= 8  # one log per process group plus the JSON summary
    assert check.BUDGET_S + 40 <= 480  # within 8 minutes, wrapper and start included
