"""Convention profiles: which named definition of each number a paper's pipeline used, picked by one name.

A task YAML names its profile (`profile: radvlm-grpo`); `--profile NAME` on `run` / `score` / `leaderboard`
(`profile=` on `evalkit.evaluate` / `evalkit.score_reports`) picks another for one call. The profile chooses the
answer rule and box convention (evalkit/answers.py) for evaluation and for the GRPO reward, and the default options
of metrics whose definition differs between pipelines. Options written in the task's `metrics:` entries win over
the profile's, and the resolved options are what the run stores, so a stored score still says exactly how it was
computed.

- `evalkit`: evalkit's own stricter definitions (strict box parsing, unclosed `<think>` is a failure, RadGraph skips
  reports over 1,000 words, RadCliQ-v1 on the raw texts with radgraph-xl); a card that names its model's own
  answer convention (`answer_convention: qwen3vl_json` on the Qwen3-VL cards) is parsed with it.
- `radvlm-grpo`: the RadVLM-GRPO paper's evaluation code path, column by column (docs/reproducing-radvlm-grpo.md):
  the seed's evaluation regex and 4,000-character answer cut (only for cards the seed ran through its vLLM path:
  a card's `radvlm_path: transformers` skips it), its reward parser for GRPO, RadGraph on every report, and
  RadCliQ-v1 as the seed's `compute_radcliq.py` worker computes it; cards' own conventions are ignored (the paper
  scored Qwen3-VL with the seed's regex).
- `rexrank`: ReXrank's leaderboard columns as CXR-Report-Metric's `run_eval.py` computes them (the metrics
  `bleu2_cxr`, `bertscore_cxr`, `semb_score`, `radgraph_combined` and `radcliq_v1` on its own convention) and
  ReXrank's primary score `1/RadCliQ-v1` (1 over the corpus mean) and `ratescore` (the ratescore package's
  definition), with evalkit's answer rules. ReXrank-metric's own code (not in the public index here) and GREEN
  are not reproduced (docs/published.md says which column is proven against which code).

A new profile is one more entry in `PROFILES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from evalkit.errors import EvalkitError

if TYPE_CHECKING:
    from evalkit.config import ModelCard, TaskSpec

_RADGRAPH_ALL_WORDS = {"max_words": 0}  # 0: no cap (calcF1RadGraph scores every report)


@dataclass(frozen=True)
class ConventionProfile:
    """One pipeline's conventions. `metric_options` maps a metric name to its default options under the profile."""

    name: str
    description: str
    answer_rule: str
    box_convention: str
    reward_answer_rule: str
    reward_box_convention: str
    metric_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    follows_card: bool = False  # parse with a card's own `answer_convention` where the card names one
    answer_max_chars: int | None = None  # the answer rule's cut (radvlm_eval: 4,000), unless the card's path skips it
    pipeline_metrics: tuple[str, ...] = ()  # what the pipeline reports: `score --pairs` defaults under the profile

    def options_for(self, metric: str, explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The profile's defaults for `metric`, overridden by the options a task or recipe states."""
        return {**self.metric_options.get(metric, {}), **(explicit or {})}

    def box_convention_for(self, card: ModelCard | None) -> str:
        """Evaluation box convention for a card: the card's own where this profile follows cards, else ours."""
        own = getattr(card, "answer_convention", None)
        return own if self.follows_card and own else self.box_convention

    def parsing_for(self, card: ModelCard | None) -> dict[str, Any]:
        """Evaluation parsing keywords of `evalkit.answers.parse_for_card` for a card under this profile."""
        return {
            "answer_rule": self.answer_rule,
            "box_convention": self.box_convention_for(card),
            "answer_max_chars": self.answer_max_chars_for(card),
        }

    def answer_max_chars_for(self, card: ModelCard | None) -> int | None:
        """The answer cut for a card: none for a card the seed ran through its transformers path (no cut there)."""
        return None if getattr(card, "radvlm_path", "vllm") == "transformers" else self.answer_max_chars


PROFILES: Mapping[str, ConventionProfile] = MappingProxyType(
    {
        "evalkit": ConventionProfile(
            name="evalkit",
            description="evalkit's own definitions (strict parsing, explicit failures)",
            answer_rule="evalkit",
            box_convention="strict",
            reward_answer_rule="evalkit",
            reward_box_convention="strict",
            follows_card=True,
        ),
        "radvlm-grpo": ConventionProfile(
            name="radvlm-grpo",
            description="RadVLM-GRPO's evaluation and reward code, column by column",
            answer_rule="radvlm_eval",
            box_convention="radvlm_eval",
            reward_answer_rule="radvlm_reward",
            reward_box_convention="radvlm_reward",
            answer_max_chars=4000,  # models_loading_inference.py: "answer = answer[:4000]" (vLLM path)
            # compute_metrics_tasks.py's report columns, then Table 3's ANC
            pipeline_metrics=(
                "rouge_1",
                "rouge_2",
                "rouge_l",
                "bleu_1",
                "bleu_2",
                "bleu_3",
                "bleu_4",
                "cider_d",
                "bertscore",
                "chexbert_micro_f1_14",
                "chexbert_macro_f1_14",
                "chexbert_micro_f1_5",
                "chexbert_macro_f1_5",
                "radgraph_f1_simple",
                "radgraph_f1_partial",
                "radgraph_f1_complete",
                "radcliq_v1",
                "green",
                "response_chars",
            ),
            metric_options=MappingProxyType(
                {
                    "radgraph_f1_simple": _RADGRAPH_ALL_WORDS,
                    "radgraph_f1_partial": _RADGRAPH_ALL_WORDS,
                    "radgraph_f1_complete": _RADGRAPH_ALL_WORDS,
                    "radcliq_v1": {"convention": "radvlm_grpo_worker"},
                    "green": {"convention": "green_score"},
                }
            ),
        ),
        "rexrank": ConventionProfile(
            name="rexrank",
            description="ReXrank's columns as CXR-Report-Metric computes them, 1/RadCliQ-v1, RaTEScore, GREEN",
            answer_rule="evalkit",
            box_convention="strict",
            reward_answer_rule="evalkit",
            reward_box_convention="strict",
            metric_options=MappingProxyType(
                {
                    "radcliq_v1": {"convention": "cxr_report_metric"},
                    "1/RadCliQ-v1": {"convention": "cxr_report_metric"},
                    "ratescore": {"affinity_matrix": "long"},  # the package's default, as ReXrank runs it
                    # ReXrank's evaluation_script.md: "For the GREEN, we follow the GREEN repository", i.e.
                    # Stanford-AIMI/GREEN's green_score code path (proven in tests/parity/test_radvlm_green_parity.py)
                    "green": {"convention": "green_score"},
                }
            ),
        ),
    }
)
DEFAULT_PROFILE = "evalkit"


def get_profile(name: str | None) -> ConventionProfile:
    """The named profile; an unknown name is a usage error that lists the known ones."""
    key = name or DEFAULT_PROFILE
    if key not in PROFILES:
        raise EvalkitError(f"unknown convention profile '{key}'; known: {', '.join(sorted(PROFILES))}")
    return PROFILES[key]


def with_profile(task: TaskSpec, name: str | None) -> TaskSpec:
    """`task` under profile `name` (None: unchanged): the options the task YAML writes win, the profile fills in
    the rest, and the spec remembers its own profile (`TaskSpec.own_profile`) for the run identity."""
    if name is None or name == task.profile:
        return task
    get_profile(name)  # an unknown name is a usage error listing the known ones
    data = task.model_dump()
    data["profile"] = name
    data["metrics"] = [
        {"name": m.name, "options": written} for m, written in zip(task.metrics, task._written_options, strict=True)
    ]
    spec = type(task).model_validate(data)
    spec._own_profile = task.own_profile
    return spec


def parsing_identity(task: TaskSpec, card: ModelCard | None) -> dict[str, Any]:
    """What a run's identity adds for its conventions; empty (ids as before) for the task's own profile and a card
    that changes no parsing rule under it. A run under another profile, or parsed with a card's own convention or
    without the answer cut, is another run: it never reuses or overwrites the first one's parses and scores."""
    profile = get_profile(task.profile)
    extra: dict[str, Any] = {}
    if task.profile != task.own_profile:
        extra["profile"] = task.profile
    if task.parser == "boxes" and profile.box_convention_for(card) != profile.box_convention:
        extra["box_convention"] = profile.box_convention_for(card)
    if profile.answer_max_chars_for(card) != profile.answer_max_chars:
        extra["answer_max_chars"] = profile.answer_max_chars_for(card)
    return extra


def profile_changes(name: str) -> list[tuple[str, str, str]]:
    """(what, under `name`, under evalkit's own profile) for every point where the profile differs from `evalkit`:
    parsing rules first, then each metric's options (what `evalkit metrics --profile` and `evalkit tasks` show)."""
    profile, base = get_profile(name), get_profile(DEFAULT_PROFILE)
    rows = []
    for what, attr in (
        ("answer rule", "answer_rule"),
        ("box convention", "box_convention"),
        ("reward answer rule", "reward_answer_rule"),
        ("reward box convention", "reward_box_convention"),
        ("answer cut (characters)", "answer_max_chars"),
        ("card's own answer convention", "follows_card"),
    ):
        mine, theirs = getattr(profile, attr), getattr(base, attr)
        if mine != theirs:
            rows.append((what, _text(mine), _text(theirs)))
    for metric in sorted(set(profile.metric_options) | set(base.metric_options)):
        mine, theirs = profile.options_for(metric), base.options_for(metric)
        if mine != theirs:
            rows.append((f"metric {metric}", _text(mine), _text(theirs)))
    return rows


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "used" if value else "ignored"
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "defaults"
    return str(value)
