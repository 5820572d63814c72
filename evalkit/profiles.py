"""Convention profiles: which named definition of each number a paper's pipeline used, picked by one name.

A task YAML names its profile (`profile: radvlm-grpo`); the profile chooses the answer rule and box convention
(evalkit/answers.py) for evaluation and for the GRPO reward, and the default options of metrics whose definition
differs between pipelines. Options written in the task's `metrics:` entries win over the profile's, and the
resolved options are what the run stores, so a stored score still says exactly how it was computed.

- `evalkit`: evalkit's own stricter definitions (strict box parsing, unclosed `<think>` is a failure, RadGraph skips
  reports over 1,000 words, RadCliQ-v1 on the raw texts with radgraph-xl).
- `radvlm-grpo`: the RadVLM-GRPO paper's evaluation code path, column by column (docs/reproducing-radvlm-grpo.md):
  the seed's evaluation regex and 4,000-character answer cut, its reward parser for GRPO, RadGraph on every
  report, and RadCliQ-v1 as the seed's `compute_radcliq.py` worker computes it.
- `rexrank`: ReXrank's leaderboard columns as CXR-Report-Metric's `run_eval.py` computes them (the metrics
  `bleu2_cxr`, `bertscore_cxr`, `semb_score`, `radgraph_combined` and `radcliq_v1` on its own convention) and
  ReXrank's primary score `1/RadCliQ-v1` (1 over the corpus mean) and `ratescore` (the ratescore package's
  definition), with evalkit's answer rules. ReXrank-metric's own code (not in the public index here) and GREEN
  are not reproduced (docs/published.md says which column is proven against which code).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from evalkit.errors import EvalkitError

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

    def options_for(self, metric: str, explicit: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The profile's defaults for `metric`, overridden by the options a task or recipe states."""
        return {**self.metric_options.get(metric, {}), **(explicit or {})}


PROFILES: Mapping[str, ConventionProfile] = MappingProxyType(
    {
        "evalkit": ConventionProfile(
            name="evalkit",
            description="evalkit's own definitions (strict parsing, explicit failures)",
            answer_rule="evalkit",
            box_convention="strict",
            reward_answer_rule="evalkit",
            reward_box_convention="strict",
        ),
        "radvlm-grpo": ConventionProfile(
            name="radvlm-grpo",
            description="RadVLM-GRPO's evaluation and reward code, column by column",
            answer_rule="radvlm_eval",
            box_convention="radvlm_eval",
            reward_answer_rule="radvlm_reward",
            reward_box_convention="radvlm_reward",
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
            description="ReXrank's columns as CXR-Report-Metric computes them, 1/RadCliQ-v1, RaTEScore (no GREEN)",
            answer_rule="evalkit",
            box_convention="strict",
            reward_answer_rule="evalkit",
            reward_box_convention="strict",
            metric_options=MappingProxyType(
                {
                    "radcliq_v1": {"convention": "cxr_report_metric"},
                    "1/RadCliQ-v1": {"convention": "cxr_report_metric"},
                    "ratescore": {"affinity_matrix": "long"},  # the package's default, as ReXrank runs it
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
