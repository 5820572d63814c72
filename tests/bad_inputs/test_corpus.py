"""The bad-input corpus (cases.yaml): every hostile input a user can give, each with the class it must end in.

- `error`: exit 2 (an EvalkitError from the Python API) with a message naming the file / field / option.
- `warning`: exit 0, and the output says `warning:` with the named thing.
- `ok`: a correct acceptance (exit 0).

No case may end in a traceback. CLI cases run in-process through typer's CliRunner. Placeholders: {tmp} (the
case's folder), {data} (a small phantom data root), {db} (a copy of a results file holding runs of prior-box,
whole-image and an external `ext[step=1]` on phantom-anatomy-grounding), {new_db} (no file yet), {sid} (a sample id
of phantom-anatomy-grounding), {sid_report} (one of phantom-report), {gtask} (a one-metric copy of that task,
for fast scoring cases). `each:` expands a case once per value
({each} in its inputs).
"""

from __future__ import annotations

import copy
import importlib
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError

HERE = Path(__file__).parent
CORPUS = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
GROUNDING = "phantom-anatomy-grounding"


def _expand(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cases = []
    for case in raw:
        values = case.get("each")
        if values is None:
            cases.append(case)
            continue
        for value in values:
            text = json.dumps({k: v for k, v in case.items() if k != "each"})
            one = json.loads(text.replace("{each}", json.dumps(str(value))[1:-1]))
            one["id"] = f"{case['id']}[{value}]"
            cases.append(one)
    return cases


CASES = _expand(CORPUS["cases"])


def test_corpus_is_large_and_ids_are_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 150
    assert {c["expect"] for c in CASES} == {"error", "warning", "ok"}


@pytest.fixture(scope="session")
def corpus_env(tmp_path_factory, data_root) -> dict[str, str]:
    """A results file with three runs of phantom-anatomy-grounding, and sample ids, made once."""
    from evalkit.registry import resolve_tasks
    from evalkit.run.runner import load_samples

    folder = tmp_path_factory.mktemp("corpus")
    db = folder / "graded.duckdb"
    runner = CliRunner()
    for model in ("prior-box", "whole-image"):
        result = runner.invoke(
            app, ["run", "--model", model, "--task", GROUNDING, "--db", str(db), "--data-root", str(data_root)]
        )
        assert result.exit_code == 0, result.output
    samples = load_samples(resolve_tasks(GROUNDING)[0], data_root)
    preds = folder / "ext.jsonl"
    preds.write_text(
        "".join(json.dumps({"sample_id": s.sample_id, "prediction": "[0.1, 0.1, 0.6, 0.6]"}) + "\n" for s in samples)
    )
    result = runner.invoke(
        app,
        [
            "score",
            "--task",
            GROUNDING,
            "--predictions",
            str(preds),
            "--model-name",
            "ext[step=1]",
            "--db",
            str(db),
            "--data-root",
            str(data_root),
        ],
    )
    assert result.exit_code == 0, result.output
    report = load_samples(resolve_tasks("phantom-report")[0], data_root)
    # Scoring cases use a one-metric copy of the grounding task (same samples): the corpus stays fast.
    gtask = folder / "corpus-grounding.yaml"
    gtask.write_text(yaml.safe_dump({**CORPUS["base_task"], "name": "corpus-grounding", "metrics": ["miou"]}))
    return {
        "graded": str(db),
        "data": str(data_root),
        "sid": samples[0].sample_id,
        "sid_report": report[0].sample_id,
        "gtask": str(gtask),
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if value == "__drop__":
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


def _write_inputs(case: dict[str, Any], tmp: Path, names: dict[str, str]) -> None:
    for name, content in (case.get("files") or {}).items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):  # {text, encoding} or {hex}
            if "hex" in content:
                path.write_bytes(bytes.fromhex(content["hex"]))
            else:
                path.write_bytes(_fill(content["text"], names).encode(content.get("encoding", "utf-8")))
        else:
            path.write_text(_fill(content, names), encoding="utf-8")
    for key, base in (("task", "base_task"), ("card", "base_card")):
        if key in case:
            spec = _merge(CORPUS[base], _fill(case[key], names))
            path = tmp / f"{key}s" / f"{spec.get('name', 'unnamed')}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
            names[key] = str(path)
    setup = case.get("setup") or []
    if "foreign_db" in setup:
        con = duckdb.connect(str(tmp / "other.duckdb"))
        con.execute("CREATE TABLE invoices (id INTEGER, total DOUBLE)")
        con.close()


def _tables(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return sorted(r[0] for r in con.execute("SHOW TABLES").fetchall())
    finally:
        con.close()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input(case: dict[str, Any], corpus_env: dict[str, str], tmp_path: Path, monkeypatch) -> None:
    names = {
        "tmp": str(tmp_path),
        "data": corpus_env["data"],
        "db": str(tmp_path / "r.duckdb"),
        "new_db": str(tmp_path / "new.duckdb"),
        "sid": corpus_env["sid"],
        "sid_report": corpus_env["sid_report"],
        "gtask": corpus_env["gtask"],
        "repo": str(HERE.parents[1]),
    }
    shutil.copy(corpus_env["graded"], names["db"])
    _write_inputs(case, tmp_path, names)
    monkeypatch.chdir(tmp_path)
    for key, value in (case.get("env") or {}).items():
        monkeypatch.setenv(key, _fill(value, names))
    expect = case["expect"]
    mentions = [_fill(m, names) for m in case.get("mentions", [])]
    if "api" in case:
        module, _, attr = case["api"].partition(":")
        target = getattr(importlib.import_module(module), attr)
        args = json.loads(case["args_json"]) if "args_json" in case else _fill(case.get("args", []), names)
        kwargs = json.loads(case["kwargs_json"]) if "kwargs_json" in case else _fill(case.get("kwargs", {}), names)
        if expect == "error":
            with pytest.raises(EvalkitError) as caught:
                target(*args, **kwargs)
            output = str(caught.value)
        else:
            target(*args, **kwargs)
            output = ""
    else:
        argv = shlex.split(_fill(case["cli_text"], names)) if "cli_text" in case else _fill(case["cli"], names)
        result = CliRunner().invoke(app, argv)
        output = result.output
        assert "Traceback" not in output, output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}\n{output}")
        wanted = case.get("exit", 2 if expect == "error" else 0)
        assert result.exit_code == wanted, output
        if expect == "warning":
            assert "warning" in output.lower(), output
    for mention in mentions:
        assert mention.lower() in output.lower(), f"{mention!r} not in:\n{output}"
    for absent in case.get("absent", []):
        assert _fill(absent, names).lower() not in output.lower(), output
    if "foreign_db" in (case.get("setup") or []):
        assert _tables(tmp_path / "other.duckdb") == ["invoices"]
