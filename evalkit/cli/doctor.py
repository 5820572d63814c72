"""`evalkit doctor`: what is installed against the tested stack (constraints.txt), and which GPU paths work here.

Each row says what was found and, where a path will not work, the fix. Nothing is loaded beyond imports and
file look-ups (no model weights), so it runs in seconds on any machine, a GPU node included.
"""

from __future__ import annotations

import importlib.metadata as metadata
import importlib.util
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from evalkit.resources import PROJECT_ROOT

CONSTRAINTS = PROJECT_ROOT / "constraints.txt"
# TRL's own check (trl/import_utils.py, TRL 1.16): GRPO's vLLM generation is supported for these vLLM versions.
TRL_VLLM_RANGE = ("0.22.0", "0.31.0")
# Model-backed metrics, one per weight set (the others share these weights).
WEIGHT_METRICS = ("radgraph_f1_partial", "radcliq_v1", "chexbert_micro_f1_14", "bertscore", "green")


@dataclass
class Check:
    """One doctor row: `status` is ok, differs, missing, unavailable or info."""

    name: str
    status: str
    detail: str
    fix: str = ""


def read_constraints(path: Path = CONSTRAINTS) -> dict[str, str]:
    """`name==version` lines of a pip constraints file (comments and blank lines skipped)."""
    pins: dict[str, str] = {}
    if not path.is_file():
        return pins
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in re.split(r"[.+]", version)[:3]:
        digits = re.match(r"\d+", piece)
        parts.append(int(digits.group(0)) if digits else 0)
    return tuple(parts)


def version_checks(pins: dict[str, str]) -> list[Check]:
    rows = []
    for name, pinned in pins.items():
        found = installed(name)
        fix = f"pip install -c constraints.txt '{name}=={pinned}'"
        if found is None:
            rows.append(Check(name, "missing", f"tested {pinned}; not installed", fix))
        elif found.split("+")[0] == pinned:
            rows.append(Check(name, "ok", f"{found} (tested {pinned})"))
        else:
            rows.append(Check(name, "differs", f"{found} installed, tested {pinned}", fix))
    return rows


def vllm_check(vllm: str | None, trl: str | None) -> Check:
    """Whether vLLM is there, and whether TRL's GRPO supports it."""
    if vllm is None:
        return Check(
            "path: vLLM",
            "unavailable",
            "vLLM not installed: the vllm adapter, `--dp` serving and grpo.use_vllm cannot run here",
            "pip install -c constraints.txt -e '.[vllm]' (on a CUDA machine)",
        )
    low, high = TRL_VLLM_RANGE
    if trl is not None and not (_release(low) <= _release(vllm) <= _release(high)):
        return Check(
            "path: vLLM",
            "differs",
            f"vLLM {vllm} is outside TRL {trl}'s supported {low}-{high}: evaluation works, GRPO's vLLM "
            "generation is untested",
            "grpo.use_vllm: false (transformers generation), or a TRL release that supports this vLLM",
        )
    return Check("path: vLLM", "ok", f"vLLM {vllm}" + (f", inside TRL {trl}'s {low}-{high}" if trl else ""))


def cuda_check() -> Check:
    try:
        import torch
    except ImportError:
        return Check("path: CUDA", "unavailable", "torch not installed", "pip install -e .")
    if not torch.cuda.is_available():
        return Check(
            "path: CUDA",
            "unavailable",
            f"torch {torch.__version__} sees no CUDA device: training and vLLM run only tiny models on the CPU",
            "a CUDA build of torch (constraints.txt) on a machine with an NVIDIA GPU",
        )
    free, total = torch.cuda.mem_get_info(0)
    names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    bf16 = torch.cuda.is_bf16_supported()
    detail = f"{torch.cuda.device_count()} x {names}; {free / 2**30:.1f} of {total / 2**30:.1f} GiB free; bf16 {bf16}"
    return Check("path: CUDA", "ok", detail)


def flash_attention_check() -> Check:
    if importlib.util.find_spec("flash_attn") is not None:
        return Check("path: flash attention", "ok", f"flash-attn {installed('flash-attn') or '?'}")
    return Check(
        "path: flash attention",
        "unavailable",
        "flash-attn not installed: recipes use attn_implementation sdpa (works, slower for long sequences)",
        "pip install flash-attn --no-build-isolation (CUDA machine), then model.attn_implementation: flash_attention_2",
    )


def metric_weight_checks() -> list[Check]:
    from evalkit.metrics import get_metric

    rows = []
    for name in WEIGHT_METRICS:
        try:
            reason = get_metric(name).available()
        except Exception as exc:  # a metric that cannot even be built is reported, not raised
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            rows.append(Check(f"weights: {name}", "ok", "weights found"))
        else:
            detail, _, fix = reason.partition("; ")
            rows.append(Check(f"weights: {name}", "unavailable", detail, fix or reason))
    return rows


def run_checks() -> list[Check]:
    pins = read_constraints()
    rows = version_checks(pins)
    if not pins:
        rows.append(Check("constraints.txt", "missing", f"{CONSTRAINTS} not found", "use a source checkout"))
    rows += [vllm_check(installed("vllm"), installed("trl")), cuda_check(), flash_attention_check()]
    rows += metric_weight_checks()
    return rows


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object per check, one per line.")] = False,
    ) -> None:
        """What is installed against the tested stack (constraints.txt) and which paths work here, with fixes."""
        rows = run_checks()
        if as_json:
            for row in rows:
                typer.echo(json.dumps(asdict(row)))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("check", "status", "found", "fix", show_lines=False)
        colours = {"ok": "green", "differs": "yellow", "missing": "red", "unavailable": "red"}
        for row in rows:
            colour = colours.get(row.status, "white")
            table.add_row(row.name, f"[{colour}]{row.status}[/]", row.detail, row.fix)
        Console(width=max(Console().width, 160)).print(table)
