"""`evalkit doctor` and the tested stack in constraints.txt (issue 19, L3)."""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.cli.doctor import CONSTRAINTS, TRL_VLLM_RANGE, read_constraints, version_checks, vllm_check


def test_constraints_name_the_stack_checked_together() -> None:
    pins = read_constraints()
    for name in ("vllm", "torch", "transformers", "trl", "accelerate", "deepspeed", "peft"):
        assert re.fullmatch(r"\d+\.\d+\.\d+", pins[name]), name
    assert "0.22-0.31" in CONSTRAINTS.read_text(encoding="utf-8")  # TRL's vLLM range is stated


def test_trl_vllm_range_is_trls_own() -> None:
    spec = importlib.util.find_spec("trl")
    if spec is None or spec.origin is None:
        pytest.skip("trl not installed")
    source = (Path(spec.origin).parent / "import_utils.py").read_text(encoding="utf-8")
    found = re.search(r'Version\("([\d.]+)"\) <= _vllm_base_version <= Version\("([\d.]+)"\)', source)
    assert found is not None and found.groups() == TRL_VLLM_RANGE


def test_vllm_outside_trls_range_is_flagged_with_its_fix() -> None:
    assert vllm_check(None, "1.16.0").status == "unavailable"
    outside = vllm_check("0.32.0", "1.16.0")
    assert outside.status == "differs" and "0.22.0-0.31.0" in outside.detail and "grpo.use_vllm: false" in outside.fix
    assert vllm_check("0.31.0", "1.16.0").status == "ok"
    assert vllm_check("0.33.0", None).status == "ok"  # no TRL: evaluation only


def test_versions_against_a_constraints_file(tmp_path: Path) -> None:
    file = tmp_path / "c.txt"
    torch_version = metadata.version("torch").split("+")[0]
    file.write_text(f"# comment\ntorch=={torch_version}\npydantic==0.0.1  # old\nno-such-package==1.0\n")
    rows = {r.name: r for r in version_checks(read_constraints(file))}
    assert rows["torch"].status == "ok"
    assert rows["pydantic"].status == "differs" and "pydantic==0.0.1" in rows["pydantic"].fix
    assert rows["no-such-package"].status == "missing"


@pytest.mark.slow  # imports torch and every metric (about 8 s here)
def test_doctor_json_reports_paths_with_fixes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path))
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
    assert rows["torch"]["detail"].startswith(metadata.version("torch"))
    import torch

    if not torch.cuda.is_available():
        assert rows["path: CUDA"]["status"] == "unavailable" and rows["path: CUDA"]["fix"]
    green = rows["weights: green"]
    assert green["status"] == "unavailable" and "EVALKIT_METRIC_WEIGHTS" in green["fix"]
    assert {"path: vLLM", "path: flash attention", "weights: radgraph_f1_partial"} <= set(rows)
