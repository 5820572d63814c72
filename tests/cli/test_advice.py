"""What evalkit tells users to do must work: the external-card advice's commands run, install hints keep `[extra]`."""

from __future__ import annotations

import json
import re

from typer.testing import CliRunner

from evalkit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_external_card_advice_commands_are_accepted(tmp_path, db, data_root):
    result = invoke("run", "--model", "llava-rad", "--task", "phantom-report", "--db", db, "--data-root", data_root)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    samples_cmd, score_cmd = re.findall(r"`evalkit (samples [^`]*|score [^`]*)`", text)
    assert "--task phantom-report" in score_cmd and "--model-name llava-rad-external" in score_cmd
    manifest = tmp_path / "samples.jsonl"
    args = samples_cmd.split()[1:]
    args[args.index("--out") + 1] = str(manifest)
    assert invoke("samples", *args, "--data-root", data_root).exit_code == 0
    preds = tmp_path / "FILE.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    preds.write_text(
        "".join(json.dumps({"sample_id": r["sample_id"], "prediction": r["reference"]}) + "\n" for r in rows)
    )
    args = score_cmd.split()[1:]
    args[args.index("--predictions") + 1] = str(preds)
    result = invoke("score", *args, "--db", db, "--data-root", data_root)
    assert result.exit_code == 0, result.output


def test_install_hints_keep_their_extra(tmp_path, monkeypatch):
    from evalkit.metrics import metric_class

    hint = "the bert-score package is not installed (pip install 'evalkit[clinical]')"
    monkeypatch.setattr(metric_class("bertscore"), "available", lambda self: hint)
    result = invoke("metrics")
    assert "evalkit[clinical]" in "".join(result.output.split())
    missing = tmp_path / "pairs[clinical].jsonl"
    result = invoke("score", "--pairs", missing)
    assert result.exit_code == 2 and "pairs[clinical].jsonl" in "".join(result.output.split())
