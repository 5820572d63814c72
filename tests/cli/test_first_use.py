"""What a new user meets in the first minutes: clear errors instead of tracebacks, suggestions for typos, tables
that fit an 80-column terminal, progress and rerun lines that tell the truth, Ctrl-C that says how to resume."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from evalkit import cli
from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.resources import bundled
from evalkit.run.evaluate import evaluate

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def task_yaml(tmp_path: Path, name: str, **replace: str) -> Path:
    """A copy of phantom-report under another name, with text replacements."""
    text = (bundled("tasks") / "phantom-report.yaml").read_text().replace("name: phantom-report", f"name: {name}")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


# --- search paths and names -----------------------------------------------------------------------------------


def test_a_bad_file_on_the_tasks_path_is_reported_and_skipped(tmp_path, db, data_root, monkeypatch):
    user = tmp_path / "my-tasks"
    user.mkdir()
    (user / "broken.yaml").write_text("name: broken\nkind: [unclosed\n")
    task_yaml(user, "my-report")
    monkeypatch.setenv("EVALKIT_TASKS_PATH", str(user))
    listed = invoke("tasks", "--json")
    assert listed.exit_code == 0, listed.output
    assert "skipped" in listed.stderr and str(user / "broken.yaml") in listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)}
    assert {"my-report", "phantom-report"} <= names and "broken" not in names
    # The command that asks for the broken task gets its error, naming the file.
    result = invoke("run", "--model", "normal-template", "--task", "broken", "--db", db, "--data-root", data_root)
    assert result.exit_code == 2 and str(user / "broken.yaml") in result.output and "not valid YAML" in result.output


def test_did_you_mean_for_tasks_and_models(db):
    result = invoke("run", "--model", "nn-retreival", "--task", "phantom-report", "--db", db)
    assert result.exit_code == 2 and "did you mean 'nn-retrieval'" in result.output
    result = invoke("run", "--model", "nn-retrieval", "--task", "phantom-reprot", "--db", db)
    assert result.exit_code == 2 and "did you mean 'phantom-report'" in result.output


def test_unknown_loader_is_named_as_such(tmp_path, db, data_root):
    task = task_yaml(tmp_path, "phantasm-report", **{"loader: phantom": "loader: phantasm"})
    result = invoke("run", "--model", "normal-template", "--task", task, "--db", db, "--data-root", data_root)
    assert result.exit_code == 2
    assert "unknown dataset loader 'phantasm'" in result.output and "does not exist" not in result.output


def test_dataset_on_one_task_and_task_with_pairs_are_errors(tmp_path, db, data_root):
    result = invoke("run", "-m", "normal-template", "-t", "phantom-report", "--dataset", "mimic_cxr", "--db", db)
    assert result.exit_code == 2 and "--dataset mimic_cxr" in result.output and "'phantom'" in result.output
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"reference": "No effusion.", "prediction": "No effusion."}) + "\n")
    result = invoke("score", "--pairs", pairs, "--task", "phantom-report", "--db", db)
    assert result.exit_code == 2 and "--task cannot go with --pairs" in result.output


def test_report_metric_on_a_grounding_task_is_rejected(tmp_path, db, data_root):
    text = (bundled("tasks") / "phantom-anatomy-grounding.yaml").read_text()
    text = text.replace("name: phantom-anatomy-grounding", "name: mixed-grounding")
    assert "metrics: [radvlm_map50," in text
    text = text.replace("metrics: [radvlm_map50,", "metrics: [rouge_l, radvlm_map50,")
    path = tmp_path / "mixed-grounding.yaml"
    path.write_text(text)
    with pytest.raises(EvalkitError, match=r"grounding task, but its metrics \['rouge_l'\] score reports"):
        evaluate("prior-box", str(path), db=db, data_root=data_root)


# --- bad paths and options: clear errors, exit 2 --------------------------------------------------------------


def test_export_onto_a_folder_or_an_unwritable_path(tmp_path, db, data_root):
    assert invoke("run", "-m", "prior-box", "-t", "phantom-anatomy-grounding", "--db", db, "--data-root", data_root)
    result = invoke("export", "--db", db, "--out", tmp_path)
    assert result.exit_code == 2 and "is a folder" in result.output
    result = invoke("export", "--db", db, "--out", tmp_path / "no" / "such" / "dir" / "x.jsonl")
    assert result.exit_code == 2 and "cannot write there" in result.output and "Traceback" not in result.output


def test_data_root_that_is_a_file(tmp_path, db, monkeypatch):
    file = tmp_path / "data.txt"
    file.write_text("not a folder")
    monkeypatch.setenv("EVALKIT_DATA_ROOT", str(file))
    result = invoke("run", "--model", "normal-template", "--task", "phantom-report", "--db", db)
    assert result.exit_code == 2 and f"data root {file} is a file" in result.output


def test_phantom_out_that_is_a_file(tmp_path):
    file = tmp_path / "phantom.txt"
    file.write_text("x")
    result = invoke("data", "phantom", "--out", file)
    assert result.exit_code == 2 and "is a file; give a folder" in result.output


def test_device_cuda_without_cuda(db):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke("run", "--model", "tiny-qwen3vl", "--task", "phantom-report", "--db", db, "--device", "cuda")
    assert result.exit_code == 2 and "--device cuda: no CUDA device is usable here" in result.output


def test_negative_gate_margin_names_the_option(db):
    result = invoke("gate", "-t", "phantom-report", "-c", "a", "-b", "b", "--db", db, "--margin", "-0.1")
    assert result.exit_code == 2
    assert "--margin: margin must be >= 0" in result.output and "pydantic" not in result.output


# --- what a run prints ----------------------------------------------------------------------------------------


def test_rerun_line_counts_the_samples_it_reused(db, data_root):
    args = ("run", "-m", "nn-retrieval", "-t", "phantom-report", "--db", db, "--data-root", data_root)
    first = invoke(*args)
    assert first.exit_code == 0 and "generated=16 cached=0 " in first.stdout
    again = invoke(*args)
    assert again.exit_code == 0 and "generated=0 cached=16, 16 kept from the last run" in again.stdout


def test_ctrl_c_says_what_was_kept_and_how_to_resume(db, data_root, monkeypatch):
    from evalkit.model_adapters.baselines import BaselineAdapter

    calls = {"n": 0}
    generate = BaselineAdapter.generate

    def interrupted(self, requests):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return generate(self, requests)

    monkeypatch.setattr(BaselineAdapter, "generate", interrupted)
    args = ("run", "-m", "nn-retrieval", "-t", "phantom-report", "--db", db, "--data-root", data_root, "-b", "4")
    result = invoke(*args)
    assert result.exit_code == 130
    assert "4 of 16 samples kept" in result.stderr and "run the same command again to resume" in result.stderr
    monkeypatch.setattr(BaselineAdapter, "generate", generate)
    again = invoke(*args)
    assert again.exit_code == 0 and "generated=12" in again.stdout and "4 kept from the last run" in again.stdout


def test_plain_progress_lines_off_a_terminal(db, data_root, capsys, monkeypatch):
    import evalkit.run.progress

    monkeypatch.setattr(evalkit.run.progress, "PLAIN_EVERY_S", 0.0)
    evaluate("nn-retrieval", "phantom-report", db=db, data_root=data_root, batch_size=4, progress="plain")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("phantom-report")]
    assert lines, "no progress line"
    last = lines[-1]
    assert "phantom-report · nn-retrieval: 16/16" in last and "gen 16" in last and "cached 0" in last
    assert "err 0" in last and "/s" in last
    assert any("ETA" in line for line in lines[:-1])


def test_tables_fit_80_columns_and_never_cut_names(db, data_root, monkeypatch):
    for model in ("prior-box", "whole-image", "nn-retrieval"):
        evaluate(model, "phantom-anatomy-grounding", db=db, data_root=data_root, limit=4)
    console = Console(width=80, file=io.StringIO(), record=True)
    for family in (cli.leaderboard, cli.catalog):  # the command families print through their console
        monkeypatch.setattr(family, "console", console)
    assert invoke("leaderboard", "--db", db).exit_code == 0
    assert invoke("tasks").exit_code == 0
    assert invoke("models").exit_code == 0
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    from evalkit.registry import all_cards, all_tasks

    for name in [*all_tasks(), *all_cards()]:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), f"'{name}' is cut or missing"
    assert "…" not in text


# --- models that run from anywhere ----------------------------------------------------------------------------


def test_evaluate_owns_the_adapter_lifecycle(db, data_root, monkeypatch):
    from evalkit.model_adapters.baselines import BaselineAdapter

    events: list[str] = []
    prepare = BaselineAdapter.prepare
    monkeypatch.setattr(BaselineAdapter, "close", lambda self: events.append("close"), raising=False)
    monkeypatch.setattr(BaselineAdapter, "prepare", lambda self, t, s: (events.append("prepare"), prepare(self, t, s)))
    summaries = evaluate("prior-box", "grounding", dataset="phantom", db=db, data_root=data_root, limit=2)
    assert len(summaries) == 3 and all(s.task.startswith("phantom-") for s in summaries)
    assert events == ["prepare"] * 3 + ["close"]
    events.clear()
    with pytest.raises(EvalkitError, match="does not answer report_generation"):
        evaluate("prior-box", "phantom-report", db=db, data_root=data_root)
    assert events == ["close"]  # closed after an error too


def test_adapter_registry_declares_every_back_end():
    import importlib.util

    from evalkit.config import ModelCard
    from evalkit.model_adapters.registry import ADAPTERS, default_batch_size

    for name in ADAPTERS:  # the registry is the list cards are checked against
        assert ModelCard(name="x", adapter=name, checkpoint="x").adapter == name
    for name, entry in ADAPTERS.items():
        if entry.target is not None:
            assert importlib.util.find_spec(entry.target.split(":")[0]) is not None, name
    card = ModelCard(name="x", adapter="vllm", checkpoint="x")
    assert default_batch_size(card) == 256


def test_shipped_checkpoint_names_are_models(tmp_path, monkeypatch):
    from evalkit.registry import resolve_model

    monkeypatch.chdir(tmp_path)
    card = resolve_model("demo-qwen3vl-sft")
    assert card.name == "demo-qwen3vl-sft" and Path(card.checkpoint) == bundled("checkpoints") / "demo-qwen3vl-sft"


@pytest.mark.slow
def test_tiny_model_runs_from_any_folder_without_loading_bars(tmp_path, data_root, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    (summary,) = evaluate("tiny-qwen3vl", "phantom-report", db=tmp_path / "r.duckdb", data_root=data_root, limit=2)
    assert summary.n_samples == 2 and summary.errors == 0
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "it/s" not in err
    assert not (tmp_path / "results" / "models").exists()  # built in the user cache, not here
