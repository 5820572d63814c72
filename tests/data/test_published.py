"""The ledger of published results: what it holds, how records are validated, listed and added, and the verdicts
of a published number beside a run."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.errors import EvalkitError
from evalkit.published import FIELDS, bundled_records, read_ledger
from evalkit.registry import all_cards
from evalkit.views.published_compare import DIFFERS, NOT_COMPARABLE, REPRODUCED, RunNumber, judge

RUNNER = CliRunner()


@pytest.fixture(scope="module")
def ledger():
    return {(r.source, r.table, r.model, r.column): r for r in bundled_records()}


# Cells read off the images in uzh-dqbm-cmi/RadVLM-GRPO images/results/*.png at e297550 (and ReXrank's tables).
CELLS = [
    (("radvlm-grpo", "Table 1", "MedGemma-it", "Size (B)"), "27"),
    (("radvlm-grpo", "Table 1", "CheXagent-2", "CXb-macro"), "38.7"),
    (("radvlm-grpo", "Table 1", "RadVLM+RL", "RCQ↓"), "0.86"),
    (("radvlm-grpo", "Table 1", "RadVLM-Thinking+RL", "R-L"), "30.0"),
    (("radvlm-grpo", "Table 1", "Qwen3-VL-Thinking", "GRN"), "18.5"),
    (("radvlm-grpo", "Table 2", "Qwen3-VL-Thinking", "Abnorm."), "1.2"),
    (("radvlm-grpo", "Table 2", "RadVLM+RL", "Phrase_MS"), "87.9"),
    (("radvlm-grpo", "Table 2", "MAIRA-2", "Phrase_Pad"), "38.8"),
    (("radvlm-grpo", "Table 3", "+B-S", "B-S"), "61.6*"),
    (("radvlm-grpo", "Table 3", "+RGF1-C", "ANC"), "93"),
    (("radvlm-grpo", "Table 3", "+GLEU", "GRN"), "33.7"),
    (("rexrank", "MIMIC-CXR test", "MedVersa*", "RadCliQ-v1"), "1.088"),
    (("rexrank", "IU X-ray test", "RGRG", "BLEU"), "0.24"),
]


@pytest.mark.parametrize(("key", "printed"), CELLS)
def test_cells_as_printed_in_the_sources(ledger, key, printed):
    assert ledger[key].printed == printed


def test_every_cell_of_the_four_tables_with_its_source(ledger):
    counts: dict[tuple[str, str], int] = {}
    for (source, table, _, _), r in ledger.items():
        counts[(source, table)] = counts.get((source, table), 0) + 1
        assert r.file and r.repository and r.commit and r.citation, r
    # Table 1: 13 models x (size + 7 columns); Table 2: 8 x 4; Table 3: 5 x 8 (with ANC); ReXrank: 10 x 6 each.
    assert counts == {
        ("radvlm-grpo", "Table 1"): 104,
        ("radvlm-grpo", "Table 2"): 32,
        ("radvlm-grpo", "Table 3"): 40,
        ("rexrank", "MIMIC-CXR test"): 60,
        ("rexrank", "IU X-ray test"): 60,
    }
    t1 = ledger[("radvlm-grpo", "Table 1", "RadVLM+RL", "RGF1")]
    assert (t1.task, t1.metric, t1.convention, t1.scale, t1.n) == (
        "mimic-cxr-report-radvlm-filtered", "radgraph_f1_complete", "radvlm-grpo", "x100", 3314,
    )  # fmt: skip
    assert ledger[("radvlm-grpo", "Table 2", "RadVLM", "Anatomy")].task == "imagenome-anatomy-grounding"
    assert ledger[("rexrank", "IU X-ray test", "RGRG", "SembScore")].metric == "semb_score"
    assert ledger[("rexrank", "IU X-ray test", "RGRG", "RadCliQ-v0")].metric == "unknown"
    iu = ledger[("rexrank", "IU X-ray test", "RGRG", "RadCliQ-v1")]
    assert (iu.task, iu.n, iu.metric, iu.convention) == ("iu-xray-report-rexrank", 590, "radcliq_v1", "rexrank")
    assert ledger[("rexrank", "MIMIC-CXR test", "RGRG*", "BLEU")].task == "unknown"


def test_starred_reward_cells_are_exactly_table_3s_three(ledger):
    starred = sorted((r.model, r.column, r.value) for r in ledger.values() if r.training_reward)
    assert starred == [("+B-S", "B-S", 61.6), ("+RCQ", "RCQ↓", 0.86), ("+RGF1-C", "RGF1", 20.1)]


def test_every_published_name_on_a_card_is_in_the_ledger(ledger):
    names = {r.model for r in ledger.values()}
    named = {n for card in all_cards().values() for n in card.published_as}
    assert named and named <= names, named - names
    assert all_cards()["radvlm-grpo"].published_as == ["RadVLM+RL", "+RCQ"]


def test_published_as_leaves_the_run_identity_alone():
    from evalkit.model_adapters.base import card_fingerprint

    card = all_cards()["radvlm-grpo"]
    assert card_fingerprint(card) == card_fingerprint(card.model_copy(update={"published_as": []}))


# --- validation -------------------------------------------------------------------------------------------------
def _row(**overrides: str) -> dict[str, str]:
    row = dict.fromkeys(FIELDS, "")
    row.update(source="me", citation="Me et al. 2026", table="T1", file="t1.png", repository="me/paper",
               commit="abc1234", model="M", task="phantom-report", column="R-L", printed="30.1", value="30.1",
               scale="x100", metric="rouge_l", convention="radvlm-grpo", training_reward="no")  # fmt: skip
    row.update(overrides)
    return row


def _write(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header or list(FIELDS))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"metric": "rouge_lx"}, "line 2 field 'metric': unknown metric 'rouge_lx'"),
        ({"task": "no-such-task"}, "line 2 field 'task': unknown task 'no-such-task'"),
        ({"value": "abc", "printed": "abc"}, "line 2 field 'value': 'abc' is not a finite number"),
        ({"printed": "31.0"}, "line 2 field 'printed': '31.0' is not value '30.1'"),
        ({"scale": "x1000"}, "line 2 field 'scale': 'x1000' is not one of x1, x100, 1/x"),
        ({"training_reward": "maybe"}, "line 2 field 'training_reward'"),
        ({"commit": ""}, "line 2 field 'commit': empty"),
        ({"n": "-3"}, "line 2 field 'n'"),
    ],
)
def test_a_bad_field_is_named_with_its_line(tmp_path, overrides, message):
    path = _write(tmp_path / "mine.csv", [_row(**overrides)])
    with pytest.raises(EvalkitError) as err:
        read_ledger(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_header_and_duplicate_errors(tmp_path):
    header = [f for f in FIELDS if f != "convention"] + ["extra"]
    path = _write(tmp_path / "h.csv", [{k: v for k, v in _row(extra="x").items() if k in header}], header)
    with pytest.raises(EvalkitError, match="missing column\\(s\\) convention; unknown column\\(s\\) extra"):
        read_ledger(path)
    path = _write(tmp_path / "d.csv", [_row(), _row(value="30.2", printed="30.2")])
    with pytest.raises(EvalkitError, match="line 3: same \\(source, table, model, task, column\\) as line 2"):
        read_ledger(path)
    good = read_ledger(_write(tmp_path / "ok.csv", [_row(printed="30.1*", training_reward="yes", n="")]))
    assert good[0].value == 30.1 and good[0].training_reward and good[0].n is None


# --- the command ------------------------------------------------------------------------------------------------
def test_list_filters_by_task_and_prints_json(tmp_path):
    out = RUNNER.invoke(
        app, ["published", "--task", "padchest-phrase-grounding", "--json", "--db", str(tmp_path / "x")]
    )
    assert out.exit_code == 0, out.output
    records = json.loads(out.output)
    assert len(records) == 8 and {r["column"] for r in records} == {"Phrase_Pad"}
    assert {r["commit"] for r in records} == {"e297550"}
    unknown = RUNNER.invoke(app, ["published", "--task", "iu-xray", "--db", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "unknown task 'iu-xray'" in unknown.output
    mimic = json.loads(
        RUNNER.invoke(app, ["published", "--task", "unknown", "--json", "--db", str(tmp_path / "x")]).output
    )
    assert len(mimic) == 60 and {r["table"] for r in mimic} == {"MIMIC-CXR test"}
    text = RUNNER.invoke(app, ["published", "--source", "rexrank", "--db", str(tmp_path / "x")])
    assert text.exit_code == 0 and "MedVersa" in text.output and "RadVLM" not in text.output
    typo = RUNNER.invoke(app, ["published", "--source", "rexrnak", "--db", str(tmp_path / "x")])
    assert typo.exit_code == 2 and "unknown source 'rexrnak'; the ledger holds: radvlm-grpo, rexrank" in typo.output


def test_a_spreadsheets_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = _write(tmp_path / "excel.csv", [_row()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # "CSV UTF-8" as spreadsheets save it
    (record,) = read_ledger(path)
    assert (record.source, record.value) == ("me", 30.1)


def test_add_validates_then_stores_and_replaces_by_key(tmp_path):
    db = tmp_path / "r.duckdb"
    bad = _write(tmp_path / "bad.csv", [_row(), _row(model="N", metric="nope")])
    result = RUNNER.invoke(app, ["published", "add", str(bad), "--db", str(db)])
    assert result.exit_code == 2 and "line 3 field 'metric'" in result.output
    listed = json.loads(RUNNER.invoke(app, ["published", "--task", "phantom-report", "--json", "--db", str(db)]).output)
    assert listed == []  # nothing of an invalid file was written
    mine = _write(tmp_path / "mine.csv", [_row(), _row(model="N", value="12", printed="12")])
    assert RUNNER.invoke(app, ["published", "add", str(mine), "--db", str(db)]).exit_code == 0
    again = _write(tmp_path / "again.csv", [_row(value="29.9", printed="29.9")])
    assert RUNNER.invoke(app, ["published", "add", str(again), "--db", str(db)]).exit_code == 0
    listed = json.loads(RUNNER.invoke(app, ["published", "--task", "phantom-report", "--json", "--db", str(db)]).output)
    assert sorted((r["model"], r["value"]) for r in listed) == [("M", 29.9), ("N", 12.0)]
    everything = json.loads(RUNNER.invoke(app, ["published", "--json", "--db", str(db)]).output)
    assert len(everything) == len(bundled_records()) + 2


# --- verdicts ---------------------------------------------------------------------------------------------------
def _number(**overrides) -> RunNumber:
    base = dict(task="mimic-cxr-report-radvlm-filtered", model="radvlm-grpo", run_id="r1", metric="rouge_l",
                value=0.297, ci_low=0.290, ci_high=0.305, n=3314, task_size=3314, partial=False,
                profile="radvlm-grpo")  # fmt: skip
    return RunNumber(**{**base, **overrides})


def test_verdicts(ledger):
    rl = ledger[("radvlm-grpo", "Table 1", "RadVLM+RL", "R-L")]  # 29.9
    same = judge(rl, _number())
    assert (same.verdict, same.published, same.run_value) == (REPRODUCED, 29.9, pytest.approx(29.7))
    assert same.difference == pytest.approx(-0.2) and same.ci_low == pytest.approx(29.0)
    # 29.85 prints as 29.9: a CI ending at 0.2986 still holds a value printed 29.9
    assert judge(rl, _number(value=0.28, ci_low=0.27, ci_high=0.2986)).verdict == REPRODUCED
    far = judge(rl, _number(value=0.25, ci_low=0.24, ci_high=0.26))
    assert far.verdict == DIFFERS and far.gap_ci_widths == pytest.approx((0.299 - 0.25) / 0.02)
    assert far.short() == "differs (+2.4 CI)"
    for number, reason in [
        (_number(profile="evalkit"), "convention: published radvlm-grpo, run evalkit"),
        (_number(n=200, task_size=3314, partial=True), "partial run (200/3314 samples)"),
        (_number(n=3000, task_size=3000), "size: published n=3314, run n=3000"),
        (_number(task="mimic-cxr-report"), "published on mimic-cxr-report-radvlm-filtered"),
        (_number(ci_low=None, ci_high=None), "the run has no CI"),
        (_number(status="unavailable", value=None), "the run has no value (unavailable)"),
    ]:
        c = judge(rl, number)
        assert (c.verdict, c.reason) == (NOT_COMPARABLE, reason)
    flat = judge(rl, _number(value=0.25, ci_low=0.25, ci_high=0.25))  # a constant answer: zero-width CI
    assert (flat.verdict, flat.gap_ci_widths, flat.reason) == (DIFFERS, None, "outside a zero-width 95% CI")
    size = ledger[("radvlm-grpo", "Table 1", "RadVLM+RL", "Size (B)")]
    assert judge(size, _number(metric="unknown")).reason == "'Size (B)' is no evalkit metric"


def test_a_reciprocal_scale_compares_on_the_run_scale(ledger):
    rcq = replace(ledger[("radvlm-grpo", "Table 1", "RadVLM+RL", "RCQ↓")], scale="1/x", value=1.16, printed="1.16")
    inside = judge(rcq, _number(metric="radcliq_v1", value=0.86, ci_low=0.85, ci_high=0.87))
    assert inside.verdict == REPRODUCED and inside.run_value == pytest.approx(1 / 0.86)
    below = judge(rcq, _number(metric="radcliq_v1", value=0.95, ci_low=0.94, ci_high=0.96))
    assert below.verdict == DIFFERS and below.gap_ci_widths > 0  # 1.16 is above 1/0.95 on the printed scale


def test_merge_carries_added_records(tmp_path):
    from evalkit.results.merge import merge_databases

    a, b, into = tmp_path / "a.duckdb", tmp_path / "b.duckdb", tmp_path / "all.duckdb"
    for db, rows in ((a, [_row(), _row(model="N")]), (b, [_row(value="31.0", printed="31.0"), _row(model="O")])):
        path = _write(tmp_path / f"{db.stem}.csv", rows)
        assert RUNNER.invoke(app, ["published", "add", str(path), "--db", str(db)]).exit_code == 0
    merge_databases([a, b], into)
    out = RUNNER.invoke(app, ["published", "--task", "phantom-report", "--json", "--db", str(into)])
    assert sorted((r["model"], r["value"]) for r in json.loads(out.output)) == [("M", 30.1), ("N", 30.1), ("O", 30.1)]
