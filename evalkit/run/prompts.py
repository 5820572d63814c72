"""Prompt rendering: a task's template (or one drawn from its pool with a fixed seed) plus the card's hints."""

from __future__ import annotations

import random
import string

from evalkit.config import ModelCard, TaskSpec
from evalkit.errors import EvalkitError
from evalkit.sample import Sample


def choose_template(task: TaskSpec, sample_id: str) -> str:
    """The template for one sample; a pool draw depends only on (seed, sample id), never on sample order."""
    if task.prompt.template is not None:
        return task.prompt.template
    pool = task.prompt.pool or []
    return random.Random(f"{task.prompt.seed}:{sample_id}").choice(pool)


def render_prompt(task: TaskSpec, card: ModelCard, sample: Sample) -> tuple[str | None, str]:
    """(system prompt, user prompt) for one sample."""
    # Some models were trained on one fixed report instruction (their card's `options.report_prompt`); asking
    # them with another one is how published numbers fail to reproduce.
    card_prompt = card.options.get("report_prompt") if task.kind == "report_generation" else None
    template = card_prompt or choose_template(task, sample.sample_id)
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = fields - set(sample.prompt_vars)
    if missing:
        raise EvalkitError(
            f"task '{task.name}': prompt needs {sorted(missing)} but sample {sample.sample_id} has "
            f"{sorted(sample.prompt_vars)}"
        )
    prompt = template.format(**sample.prompt_vars)
    hint = task.prompt.box_format_hints.get(card.box_format)
    if hint:
        prompt = f"{prompt} {hint}"
    if card.prompt_suffix:
        prompt = f"{prompt}{card.prompt_suffix}"
    system = card.system_prompt or task.prompt.system
    return system, prompt
