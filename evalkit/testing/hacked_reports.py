"""Constructed "reward-hacked" report sets for the RL-health tests and docs: each imitates one failure that the
field reports for RL-trained report generators, built from a good model's answers (docs/rl-health.md).

- brevity: keep the first sentence of each good answer (what a length-blind F1 reward can drift to: RadVLM-GRPO's
  Table 3, RadGraph-F1 reward, 207 -> 93 characters);
- constant normal: the same "all normal" report for every image (beats published systems on BLEU and ROUGE);
- negation flip: every finding's polarity reversed while the words stay ("No pleural effusion." <->
  "Pleural effusion.": BERTScore 0.893).
"""

from __future__ import annotations

import re

from evalkit.metrics.health_text import sentences

CONSTANT_NORMAL = (
    "The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
    "No pleural effusion or pneumothorax."
)
_SPLIT = re.compile(r"(?<=[.!?])\s+")
_THERE_IS_NO = re.compile(r"^there is no ", re.IGNORECASE)
_NO = re.compile(r"^no ", re.IGNORECASE)
_THERE_IS_A = re.compile(r"^there is (?:an? )?", re.IGNORECASE)
_WITHOUT = re.compile(r" without ")


def brevity(report: str) -> str:
    """The first sentence of the report, as written."""
    parts = [p for p in _SPLIT.split(report.strip()) if p]
    return parts[0] if parts else ""


def constant_normal(report: str) -> str:
    """The same normal report whatever the image (the phantom's most common train report)."""
    return CONSTANT_NORMAL


def negation_flip(report: str) -> str:
    """Every sentence's polarity reversed: a negation cue removed where there is one, added where there is none."""
    out = []
    for sentence in _SPLIT.split(report.strip()):
        if not sentence:
            continue
        if _THERE_IS_NO.match(sentence):
            flipped = _THERE_IS_NO.sub("There is ", sentence)
        elif _NO.match(sentence):
            rest = _NO.sub("", sentence)
            flipped = rest[:1].upper() + rest[1:]
        elif _WITHOUT.search(sentence):
            flipped = _WITHOUT.sub(" with ", sentence)
        elif _THERE_IS_A.match(sentence):
            flipped = _THERE_IS_A.sub("There is no ", sentence)
        elif "normal" in sentence or "clear" in sentence:
            flipped = sentence  # a normal phrasing with no cue to move; the other sentences carry the flip
        else:
            flipped = "No " + sentence[:1].lower() + sentence[1:]
        out.append(flipped)
    return " ".join(out)


HACKS = {"brevity": brevity, "constant-normal": constant_normal, "negation-flip": negation_flip}

__all__ = ["CONSTANT_NORMAL", "HACKS", "brevity", "constant_normal", "negation_flip", "sentences"]
