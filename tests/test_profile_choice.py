"""`--profile NAME` / `profile=`: a run under another convention profile than its task's own is a run of its own,
the run ids of runs under the task's own profile stay as they were, and the leaderboard tells the two apart.

Qwen3-VL JSON answers on phantom-abnormality-grounding: under `evalkit` every `bbox_2d` of the JSON (the card's
own convention), under `radvlm-grpo` what the seed's regex finds (tests/fixtures/radvlm_divergence_reference.json,
made by make_radvlm_divergence_reference.py from the seed's `extract_bounding_boxes`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import FIXTURES
from typer.testing import CliRunner

from evalkit.answers import parse_for_card
from evalkit.cli import app
from evalkit.config import ModelCard, TaskSpec
from evalkit.model_adapters.base import stable_hash
from evalkit.model_adapters.predictions import PredictionsAdapter
from evalkit.profiles import PROFILES, get_profile, parsing_identity, profile_changes, with_profile
from evalkit.registry import all_cards, all_tasks, resolve_tasks
from evalkit.run.evaluate import evaluate
from evalkit.run.runner import load_samples, run_id_for
from evalkit.store import Store
from evalkit.views.leaderboard import leaderboard_rows, paper_tables

FIXTURE = json.loads(FIXTURES.joinpath("radvlm_divergence_reference.json").read_text())
TASK = "phantom-abnormality-grounding"


def test_runs_under_the_tasks_own_profile_keep_their_ids():
    """Every shipped task x card: the id is the old formula, except where a card's own parsing rule now applies
    (Qwen3-VL JSON under the evalkit profile; no 4,000-character cut for the seed's transformers-path cards)."""
    changed = set()
    for task in all_tasks().values():
        for card in all_cards().values():
            old = stable_hash(task.name, task.version, task.dataset.model_dump(exclude={"root"}), "fp")
            if run_id_for(task, "fp", card) != old:
                changed.add((task.name, card.name, tuple(sorted(parsing_identity(task, card)))))
    qwen = {c for c, card in all_cards().items() if card.answer_convention}
    seed_transformers = {c for c, card in all_cards().items() if card.radvlm_path == "transformers"}
    expected = {
        (t.name, c, ("box_convention",))
        for t in all_tasks().values()
        if t.profile == "evalkit" and t.parser == "boxes"
        for c in qwen
    } | {
        (t.name, c, ("answer_max_chars",))
        for t in all_tasks().values()
        if t.profile == "radvlm-grpo"
        for c in seed_transformers
    }
    assert changed == expected
    assert {"qwen3-vl-8b-instruct", "qwen3-vl-8b-thinking"} <= qwen
    assert {"llava-rad", "medgemma-4b-pt"} <= seed_transformers


def test_with_profile_swaps_the_profile_defaults_and_keeps_written_options():
    (task,) = resolve_tasks("mimic-cxr-report")
    options = {m.name: m.options for m in task.metrics}
    assert options["radgraph_f1_complete"] == {"max_words": 0}
    own = with_profile(task, "evalkit")
    assert own.profile == "evalkit" and own.own_profile == "radvlm-grpo"
    assert {m.name: m.options for m in own.metrics}["radgraph_f1_complete"] == {}
    assert {m.name: m.options for m in own.metrics}["radcliq_v1"] == {}
    back = with_profile(own, "radvlm-grpo")
    assert {m.name: m.options for m in back.metrics} == options and back.own_profile == "radvlm-grpo"
    assert run_id_for(back, "fp") == run_id_for(task, "fp") != run_id_for(own, "fp")
    written = TaskSpec.model_validate(
        {
            **task.model_dump(),
            "metrics": [{"name": "radgraph_f1_complete", "options": {"max_words": 50}}],
            "primary_metric": "radgraph_f1_complete",
        }
    )
    assert with_profile(written, "evalkit").metrics[0].options == {"max_words": 50}  # the task's word wins
    with pytest.raises(Exception, match="unknown convention profile 'nope'"):
        with_profile(task, "nope")


def test_profile_changes_name_every_metric_option_and_rule():
    changes = {what: (mine, theirs) for what, mine, theirs in profile_changes("radvlm-grpo")}
    assert changes["box convention"] == ("radvlm_eval", "strict")
    assert changes["metric radgraph_f1_partial"] == ("max_words=0", "defaults")
    assert changes["metric radcliq_v1"] == ("convention=radvlm_grpo_worker", "defaults")
    assert profile_changes("evalkit") == []
    result = CliRunner().invoke(app, ["metrics", "--profile", "radvlm-grpo", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["radgraph_f1_simple"]["profile_options"] == {"max_words": 0}
    assert rows["rouge_l"]["profile_options"] == {}
    text = CliRunner().invoke(app, ["metrics", "--profile", "radvlm-grpo"]).output
    assert "convention=radvlm_grpo_worker" in text and "max_words=0" in text
    bad = CliRunner().invoke(app, ["metrics", "--profile", "paper"])
    assert bad.exit_code == 2 and "known: evalkit, radvlm-grpo" in bad.output
    assert "radvlm-grpo" in CliRunner().invoke(app, ["tasks"]).output


def _stored_boxes(db: Path, run_id: str) -> dict[str, list]:
    with Store(db, read_only=True) as store:
        rows = store.query("SELECT sample_id, parsed FROM generations WHERE run_id = ?", [run_id])
    return {r["sample_id"]: json.loads(r["parsed"])["boxes"] for r in rows}


def _scores(db: Path, run_id: str) -> list[tuple]:
    with Store(db, read_only=True) as store:
        rows = store.query("SELECT sample_id, metric, score_key, value FROM scores WHERE run_id = ?", [run_id])
    return sorted((r["sample_id"], r["metric"], r["score_key"], r["value"]) for r in rows)


@pytest.mark.slow  # three runs through the store and the CLI (~12 s); the parsing itself: the test below
def test_qwen3vl_json_under_each_profile_as_separate_runs(tmp_path: Path, data_root: Path):
    (spec,) = resolve_tasks(TASK)
    all_samples = load_samples(spec, data_root)
    cases = FIXTURE["qwen_json"]
    samples = all_samples[: len(cases)]
    predictions = {s.sample_id: c["text"] for s, c in zip(samples, cases, strict=True)}
    card = ModelCard(
        name="qwen-json", adapter="external", checkpoint="x", box_format="qwen1000", answer_convention="qwen3vl_json"
    )
    db = tmp_path / "r.duckdb"

    def run(profile):
        adapter = PredictionsAdapter(card, predictions)
        (summary,) = evaluate(
            card,
            spec,
            db=db,
            data_root=data_root,
            adapter=adapter,
            samples=samples,
            task_size=len(all_samples),
            profile=profile,
        )
        return summary

    seed = run(None)  # the task's own profile: radvlm-grpo, the seed's regex
    assert seed.run_id == run_id_for(spec, PredictionsAdapter(card, predictions).fingerprint(), card)
    first_scores = _scores(db, seed.run_id)
    boxes = _stored_boxes(db, seed.run_id)
    for sample, case in zip(samples, cases, strict=True):
        assert boxes[sample.sample_id] == [[v / 1000 for v in b] for b in case["seed_boxes"]], case["id"]
    assert seed.parse_failures == sum(not c["seed_boxes"] for c in cases) == 2  # the pretty-printed ones

    own = run("evalkit")
    assert own.run_id != seed.run_id and own.parse_failures == 0 and own.generated == 0  # cache: nothing generated
    boxes = _stored_boxes(db, own.run_id)
    for sample, case in zip(samples, cases, strict=True):
        found = [[v / 1000 for v in b] for b in _json_boxes(case["text"])]
        assert boxes[sample.sample_id] == found and found, case["id"]
    assert _scores(db, seed.run_id) == first_scores  # the first run's scores are untouched
    again = run(None)
    assert again.run_id == seed.run_id and again.metrics == seed.metrics

    with Store(db, read_only=True) as store:
        rows = leaderboard_rows(store, TASK, ci=False)
        only = leaderboard_rows(store, TASK, ci=False, profile="evalkit")
    assert {(r["model"], r["profile"]) for r in rows} == {("qwen-json", None), ("qwen-json", "evalkit")}
    assert {r["profile"] for r in only} == {"evalkit"}
    (table,) = paper_tables(rows)
    labels = [r[0] for r in table["rows"]]
    assert labels == ["qwen-json", "qwen-json · profile evalkit"]
    partial = f"(partial {len(samples)}/{len(all_samples)})"
    assert all(cell.endswith(partial) for row in table["rows"] for cell in row[1:])
    out = CliRunner().invoke(app, ["leaderboard", "--db", str(db), "--task", TASK])
    assert out.exit_code == 0 and "profile evalkit" in out.output
    styled = CliRunner().invoke(app, ["leaderboard", "--db", str(db), "--task", TASK, "--style", "radvlm-grpo"])
    assert styled.exit_code == 0 and "partial" in styled.output, styled.output

    # The same answers through `evalkit score --box-format qwen1000`, under each profile (the commands).
    file = tmp_path / "preds.jsonl"
    file.write_text("".join(json.dumps({"sample_id": k, "prediction": v}) + "\n" for k, v in predictions.items()))
    base = ["score", "--task", TASK, "--predictions", str(file), "--model-name", "qwen-ext", "--box-format", "qwen1000"]
    base += ["--db", str(db), "--data-root", str(data_root)]
    for profile, expected in (("evalkit", "json"), ("radvlm-grpo", "seed")):
        result = CliRunner().invoke(app, [*base, "--profile", profile])
        assert result.exit_code == 0, result.output
        with Store(db, read_only=True) as store:
            (run,) = store.query(
                "SELECT run_id FROM runs WHERE model = 'qwen-ext' AND coalesce(profile, 'radvlm-grpo') = ?", [profile]
            )
        boxes = _stored_boxes(db, run["run_id"])
        for sample, case in zip(samples, cases, strict=True):
            found = _json_boxes(case["text"]) if expected == "json" else case["seed_boxes"]
            assert boxes[sample.sample_id] == [[v / 1000 for v in b] for b in found], (profile, case["id"])


@pytest.mark.parametrize("case", FIXTURE["qwen_json"], ids=lambda c: c["id"])
def test_qwen3vl_json_parsing_follows_the_profile(case):
    card = ModelCard(
        name="q", adapter="external", checkpoint="x", box_format="qwen1000", answer_convention="qwen3vl_json"
    )
    seed = parse_for_card(case["text"], "boxes", card, **get_profile("radvlm-grpo").parsing_for(card))
    assert seed.boxes == [[v / 1000 for v in b] for b in case["seed_boxes"]]
    own = parse_for_card(case["text"], "boxes", card, **get_profile("evalkit").parsing_for(card))
    assert own.boxes == [[v / 1000 for v in b] for b in _json_boxes(case["text"])] and own.boxes


def _json_boxes(text: str) -> list[list[float]]:
    body = text.strip().removeprefix("```json").removesuffix("```")
    data = json.loads(body)
    return [d["bbox_2d"] for d in (data if isinstance(data, list) else [data])]


def test_profiles_are_a_registry():
    assert set(PROFILES) >= {"evalkit", "radvlm-grpo"}
    assert get_profile(None).name == "evalkit"
    assert get_profile("radvlm-grpo").pipeline_metrics[:3] == ("rouge_1", "rouge_2", "rouge_l")


REPORT_FIXTURE = json.loads(FIXTURES.joinpath("radvlm_report_reference.json").read_text())


def test_score_pairs_under_a_profile_prints_the_seeds_columns(tmp_path: Path, monkeypatch):
    """`score --pairs --profile radvlm-grpo`: the seed's report columns by default, each with the profile's options;
    the lexical ones equal vilmedic's values (radvlm_report_reference.json) with no option written."""
    import evalkit.run.pairs as reports

    monkeypatch.setenv("EVALKIT_METRIC_WEIGHTS", str(tmp_path / "none"))
    asked: dict[str, dict] = {}
    real = reports.get_metric

    def recording(name, **options):
        asked[name] = options
        return real(name, **options)

    monkeypatch.setattr(reports, "get_metric", recording)
    pairs = REPORT_FIXTURE["radeval_five_pairs"]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    args = ["score", "--pairs", str(path), "--json", "--db", str(tmp_path / "d.duckdb"), "--profile", "radvlm-grpo"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert list(asked) == list(get_profile("radvlm-grpo").pipeline_metrics)
    assert asked["radgraph_f1_complete"] == {"max_words": 0} and asked["radcliq_v1"] == {
        "convention": "radvlm_grpo_worker"
    }
    assert asked["green"] == {"convention": "green_score"} and asked["bleu_4"] == {}
    for name in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_1", "rouge_2", "rouge_l", "cider_d"):
        expected = REPORT_FIXTURE["radeval_five_lexical"]["ciderd" if name == "cider_d" else name]["corpus"]
        assert printed["metrics"][name] == pytest.approx(expected, abs=1e-9), name
    assert "radgraph_f1_complete" in printed["unavailable"]  # no weights here: a reason, never a number
    asked.clear()
    written = tmp_path / "options.yaml"
    written.write_text("radgraph_f1_complete: {max_words: 50}\n", encoding="utf-8")
    CliRunner().invoke(app, [*args, "--metrics", "radgraph_f1_complete", "--metric-options", str(written)])
    assert asked == {"radgraph_f1_complete": {"max_words": 50}}  # what the user writes wins over the profile
    asked.clear()
    reports.score_reports(["a b"], ["a b"], ["radgraph_f1_complete", "rouge_l"])  # no profile: evalkit's own
    assert asked == {"radgraph_f1_complete": {}, "rouge_l": {}}


def test_the_4000_character_cut_follows_the_seeds_path_per_card():
    """The seed cut answers at 4,000 characters in its vLLM path only; LLaVA-Rad and MedGemma-4b-pt went through
    per-model transformers functions (evaluate_instructions.py without --vllm), which keep the whole answer."""
    long = "There is a small left effusion. " * 200  # 6,400 characters
    cards = all_cards()
    profile = get_profile("radvlm-grpo")
    for name, kept in (
        ("radvlm", 4000),
        ("qwen3-vl-8b-instruct", 4000),
        ("llava-rad", len(long)),
        ("medgemma-4b-pt", len(long)),
    ):
        parsed = parse_for_card(long, "report", cards[name], **profile.parsing_for(cards[name]))
        assert len(parsed.answer) == kept, name
    own = get_profile("evalkit")
    assert len(parse_for_card(long, "report", cards["radvlm"], **own.parsing_for(cards["radvlm"])).answer) == len(
        long.strip()
    )


def test_views_keyed_by_model_keep_the_run_under_the_tasks_own_profile():
    from evalkit.views.leaderboard import one_run_per_model

    runs = [
        {"task": "t", "model": "a", "profile": None, "run_id": "1"},
        {"task": "t", "model": "a", "profile": "evalkit", "run_id": "2"},
        {"task": "t", "model": "b", "profile": "evalkit", "run_id": "3"},
    ]
    assert [r["run_id"] for r in one_run_per_model(runs)] == ["1", "3"]
