"""Convention profiles: the RadVLM tasks and their phantom twins default to radvlm-grpo; options resolve into the
stored spec; evalkit's own definitions stay reachable; RadGraph scores long reports under the profile."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.clinical import radgraph_folder

from evalkit.config import TaskSpec, parse_spec
from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.profiles import PROFILES, get_profile
from evalkit.registry import resolve_tasks
from evalkit.sample import Parsed, Sample

RADVLM_TASKS = [
    "mimic-cxr-report",
    "mimic-cxr-report-per-study",
    "mimic-cxr-report-radvlm-filtered",
    "mscxr-phrase-grounding",
    "vindr-abnormality-grounding",
    "imagenome-anatomy-grounding",
    "padchest-phrase-grounding",
    "phantom-report",
    "phantom-phrase-grounding",
    "phantom-abnormality-grounding",
    "phantom-anatomy-grounding",
]


@pytest.mark.parametrize("name", RADVLM_TASKS)
def test_radvlm_tasks_and_phantoms_use_the_radvlm_grpo_profile(name: str) -> None:
    task = resolve_tasks(name)[0]
    assert task.profile == "radvlm-grpo"
    for metric in task.metrics:
        if metric.name.startswith("radgraph_f1_"):
            assert metric.options["max_words"] == 0  # resolved into the stored spec
    if task.kind == "grounding":
        assert "avg_iou" in task.metric_names


def _spec(**extra) -> dict:
    return {
        "name": "t",
        "version": "1",
        "kind": "report_generation",
        "dataset": {"loader": "phantom"},
        "access": "public",
        "prompt": {"template": "x"},
        "parser": "report",
        "metrics": [{"name": "radgraph_f1_simple", "options": {"max_words": 200}}, "radgraph_f1_partial"],
        "primary_metric": "radgraph_f1_simple",
        **extra,
    }


def test_task_options_win_over_the_profile_and_evalkit_profile_keeps_defaults() -> None:
    task = parse_spec(TaskSpec, _spec(profile="radvlm-grpo"), Path("t.yaml"))
    assert [m.options for m in task.metrics] == [{"max_words": 200}, {"max_words": 0}]
    task = parse_spec(TaskSpec, _spec(), Path("t.yaml"))
    assert task.profile == "evalkit" and task.metrics[1].options == {}


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(EvalkitError, match=r"(?s)t.yaml.*unknown profile 'radvlm'"):
        parse_spec(TaskSpec, _spec(profile="radvlm"), Path("t.yaml"))
    with pytest.raises(EvalkitError, match="known: evalkit, radvlm-grpo, rexrank"):
        get_profile("nope")
    assert set(PROFILES) == {"evalkit", "radvlm-grpo", "rexrank"}


@pytest.mark.slow  # ~20 s: relation scoring on a 1,000-word report is quadratic in words
def test_radgraph_scores_reports_over_1000_words_under_the_profile() -> None:
    options = {"model_dir": str(radgraph_folder("radgraph-xl")), "device": "cpu"}
    long = "Small left pleural effusion. " * 201  # 1,005 words
    samples = [Sample("s", "t", [], reference_text="Small left pleural effusion.")]
    capped = get_metric("radgraph_f1_simple", **options).score([Parsed(answer=long)], samples)[0]
    assert capped.value is None and "max_words=1000" in capped.stats["error"]
    profile = get_profile("radvlm-grpo").options_for("radgraph_f1_simple", options)
    scored = get_metric("radgraph_f1_simple", **profile).score([Parsed(answer=long)], samples)[0]
    assert scored.value is not None and 0.0 <= scored.value <= 1.0


def test_response_length_is_reported_but_not_gated_by_default() -> None:
    from evalkit.views.gate import _gated_by_default

    assert _gated_by_default("response_chars") is False
    assert _gated_by_default("rouge_l") and _gated_by_default("cider_d") and _gated_by_default("no_such_metric")


def test_rexrank_profile_scores_green_through_the_green_repositorys_code_path():
    """ReXrank's evaluation_script.md: "For the GREEN, we follow the GREEN repository" (its green_score code)."""
    from evalkit.registry import all_tasks

    assert "green" in all_tasks()["iu-xray-report-rexrank"].metric_names
    assert get_profile("rexrank").metric_options["green"] == {"convention": "green_score"}
    assert get_profile("radvlm-grpo").metric_options["green"] == {"convention": "green_score"}
    assert "green" not in get_profile("evalkit").metric_options  # evalkit's own GREEN stays the default elsewhere
