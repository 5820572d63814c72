"""GRPO rewards that are evalkit's own metrics: the same parser and the same metric code as evaluation.

A reward is an evalkit metric (`evalkit.metrics.get_metric`) applied to `evalkit.answers.parse_for_card` of each
completion (under the reward rules of a convention profile; by default `radvlm-grpo`, whose reward parser is the
seed's `grounding_reward.py: extract_bounding_boxes` and whose thinking rule is its `compute_score`), against a
`Sample` rebuilt from the dataset's reference columns (see `evalkit.training.data`). Nothing here
re-implements a score: the grounding reward is `soft_f1_iou` (Hungarian IoU soft F1, the RadVLM-GRPO grounding
reward) and report rewards are whatever report metric evalkit registers (RadCliQ-v1, RadGraph F1, BERTScore,
GLEU, ROUGE-L, BLEU), so a reward can never drift from the number on the leaderboard.

Each reward is a TRL reward function, `reward(prompts, completions, **columns) -> list[float | None]`; TRL logs
it as `rewards/<name>/mean` and `/std`. Rows of the other task kind get None (TRL skips them), so one GRPO run
can mix report and grounding data with one reward per kind. Each call also logs `<name>/failure_rate` (share of
completions that got the failure value) through TRL's `log_metric`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from evalkit.answers import parse_for_card
from evalkit.config import ModelCard
from evalkit.errors import EvalkitError
from evalkit.metrics import get_metric
from evalkit.metrics.base import Metric
from evalkit.profiles import get_profile
from evalkit.sample import Parsed, Sample

_THINK_CLOSE = re.compile("</think>", re.IGNORECASE)  # the seed reward's search flags


@dataclass(frozen=True)
class RewardPreset:
    """A named reward: which metric, its options, sign, and the value given to an empty or failed output."""

    metric: str
    options: dict[str, Any] = field(default_factory=dict)
    negate: bool = False
    failure_value: float = 0.0
    description: str = ""


# The RadVLM-GRPO rewards (main: -RadCliQ-v1 for reports, soft F1 for grounding; ablations: BERTScore,
# RadGraph-F1 complete, GLEU), plus the lexical metrics that run everywhere. Metric names are evalkit's registry
# names; a recipe can point a reward at another metric with `metric:` and `options:`.
PRESETS: dict[str, RewardPreset] = {
    "soft_f1_iou": RewardPreset("soft_f1_iou", description="IoU soft F1, Hungarian matching; 0 with no boxes"),
    "neg_radcliq": RewardPreset(
        "radcliq_v1", negate=True, failure_value=-3.0, description="-RadCliQ-v1; -3 for an empty or failed report"
    ),
    "radgraph_f1_complete": RewardPreset("radgraph_f1_complete", description="RadGraph F1, complete level"),
    "bertscore": RewardPreset("bertscore", description="BERTScore F1 (distilbert-base-uncased, layer 5, rescaled)"),
    "gleu": RewardPreset("gleu", description="sentence GLEU (nltk)"),
    "rouge_l": RewardPreset("rouge_l", description="ROUGE-L F1"),
    "bleu_4": RewardPreset("bleu_4", description="sentence BLEU-4 (pycocoevalcap arithmetic)"),
}


def completion_text(completion: Any) -> str:
    """The generated text of a TRL completion: a string, or conversational messages (the assistant's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        parts = []
        for message in completion:
            content = message.get("content") if isinstance(message, dict) else message
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return "".join(parts)
    return str(completion or "")


class MetricReward:
    """One evalkit metric as a TRL reward function.

    Args:
        metric: Registry name of the evalkit metric (`evalkit metrics` lists them).
        card: The model card being trained: its box format and thinking mode decide how completions are parsed.
        name: Name shown in TRL's logs (`rewards/<name>/mean`); defaults to the metric name.
        options: Metric options, as in a task YAML's `metrics:` entry.
        negate: Reward = -value (RadCliQ is lower-is-better and stays raw in the metric).
        failure_value: Reward for a completion that cannot be scored: empty or unparseable answer, no `</think>`
            when the card thinks, or a metric error for that sample.
        weight: Weight in TRL's reward sum (`reward_weights`); kept here so a recipe states it once.
        profile: Convention profile (evalkit/profiles.py) whose reward answer rule and box convention parse the
            completions, and whose metric defaults apply; `radvlm-grpo` (default) is the seed reward's parser.
    """

    def __init__(
        self,
        metric: str,
        card: ModelCard,
        *,
        name: str | None = None,
        options: dict[str, Any] | None = None,
        negate: bool = False,
        failure_value: float = 0.0,
        weight: float = 1.0,
        profile: str = "radvlm-grpo",
    ) -> None:
        self.profile = get_profile(profile)
        self.metric: Metric = get_metric(metric, **self.profile.options_for(metric, options))
        reason = self.metric.available()
        if reason:
            raise EvalkitError(f"reward '{name or metric}': metric '{metric}' is unavailable here: {reason}")
        self.metric_name = metric
        self.card = card
        self.negate = negate
        self.failure_value = float(failure_value)
        self.weight = float(weight)
        self.kind = self.metric.kind  # "report" or "grounding"
        self.__name__ = name or metric  # TRL names reward functions by __name__

    @property
    def parser(self) -> str:
        return "boxes" if self.kind == "grounding" else "report"

    def parse(self, text: str, image_size: Sequence[int] | None) -> Parsed:
        """What this reward's convention makes of `text` (the card's box unit and thinking mode).

        A thinking card's completion without a closing tag earns nothing under any profile. The tag is found as the
        seed's reward finds it (`re.I`, Unicode case folding: `</thınk>` with a dotless i closes too), so the
        gate never rejects what the `radvlm_reward` rule accepted."""
        size = (int(image_size[0]), int(image_size[1])) if image_size else None
        parsed = parse_for_card(
            text,
            self.parser,
            self.card,
            size,
            answer_rule=self.profile.reward_answer_rule,
            box_convention=self.profile.reward_box_convention,
        )
        if self.card.thinking != "none" and not _THINK_CLOSE.search(text) and parsed.parse_error is None:
            # A thinking model that never closes its reasoning earns nothing, even if a box slipped out.
            parsed = Parsed(answer="", thinking=parsed.thinking, parse_error="no </think> in the output")
        return parsed

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        parsers = columns.get("parser") or [self.parser] * n
        rows = [i for i in range(n) if parsers[i] == self.parser]
        rewards: list[float | None] = [None] * n
        if not rows:
            return rewards
        image_sizes = columns.get("image_size") or [None] * n
        reference_texts = columns.get("reference_text") or [""] * n
        reference_boxes = columns.get("reference_boxes") or [[] for _ in range(n)]
        sample_ids = columns.get("sample_id") or [f"row-{i}" for i in range(n)]
        tasks = columns.get("task") or ["training"] * n

        parsed = {i: self.parse(completion_text(completions[i]), image_sizes[i]) for i in rows}
        scorable = [i for i in rows if parsed[i].parse_error is None]
        samples = [
            Sample(
                sample_id=str(sample_ids[i]),
                task=str(tasks[i]),
                image_paths=[],
                reference_text=reference_texts[i] or None,
                reference_boxes=[list(map(float, b)) for b in (reference_boxes[i] or [])],
                meta={"image_size": list(image_sizes[i])} if image_sizes[i] else {},
            )
            for i in scorable
        ]
        values = self._score([parsed[i] for i in scorable], samples)
        position = {i: k for k, i in enumerate(scorable)}
        failures = 0
        for i in rows:
            value = values.get(position[i]) if i in position else None
            if value is None:
                failures += 1
                rewards[i] = self.failure_value
            else:
                rewards[i] = -value if self.negate else value
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            log_metric(f"{self.__name__}/failure_rate", failures / len(rows))
        return rewards

    def _score(self, predictions: list[Parsed], samples: list[Sample]) -> dict[int, float | None]:
        """Metric values by position; a metric error for one sample makes that sample a failure, not the batch."""
        if not predictions:
            return {}
        try:
            scores = self.metric.score(predictions, samples)
            return {k: _finite(s.value) for k, s in enumerate(scores)}
        except Exception:
            if len(predictions) == 1:
                return {0: None}
            out: dict[int, float | None] = {}
            for k, (prediction, sample) in enumerate(zip(predictions, samples, strict=True)):
                out[k] = self._score([prediction], [sample]).get(0)
            return out

    def __repr__(self) -> str:
        sign = "-" if self.negate else ""
        return f"MetricReward({self.__name__}: {sign}{self.metric_name}, failure={self.failure_value})"


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def build_reward(spec: dict[str, Any] | str, card: ModelCard) -> MetricReward:
    """A reward from a recipe entry: a preset name, or `{name, metric, options, negate, failure_value, weight}`
    where unspecified fields come from the preset called `name` (if there is one)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec.get("name") or spec.get("metric")
    if not name:
        raise EvalkitError("a reward needs 'name' (a preset) or 'metric'")
    preset = PRESETS.get(name)
    metric = spec.get("metric") or (preset.metric if preset else None)
    if metric is None:
        known = ", ".join(sorted(PRESETS))
        raise EvalkitError(f"reward '{name}': not a preset ({known}); give 'metric' (an evalkit metric name)")

    def pick(key: str, default: Any) -> Any:
        if spec.get(key) is not None:
            return spec[key]
        return getattr(preset, key) if preset is not None and preset.metric == metric else default

    return MetricReward(
        metric,
        card,
        name=name,
        options=pick("options", {}),
        negate=bool(pick("negate", False)),
        failure_value=float(pick("failure_value", 0.0)),
        weight=float(spec.get("weight", 1.0) if spec.get("weight") is not None else 1.0),
        profile=spec.get("profile") or "radvlm-grpo",
    )
