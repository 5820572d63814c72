"""Left <-> right in text, for references and prompts of a mirrored image.

Rule (documented in docs/image-reliance.md): whole words only, case kept (left/Left/LEFT); `leftward(s)` and
`rightward(s)` swap too; hyphenated forms follow from the word boundary (`right-sided` -> `left-sided`). The
right middle lobe has no left twin: its mirror is the lingula, so `right middle lobe` <-> `lingula`/`lingular`.
Abbreviations (R, L, RUL, LLL) are not touched: too ambiguous in free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SWAPS = {
    "right middle lobe": "lingular",
    "lingular": "right middle lobe",
    "lingula": "right middle lobe",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "leftward": "rightward",
    "rightward": "leftward",
    "left": "right",
    "right": "left",
}
# Longest first, so "right middle lobe" wins over "right".
_PATTERN = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _SWAPS), key=len, reverse=True)) + r")\b", re.I)


@dataclass(frozen=True)
class LateralitySwap:
    """What one call changed: the original and new text and the words swapped, in order."""

    before: str
    after: str
    words: tuple[tuple[str, str], ...]


def _cased(word: str, template: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word


def swap_laterality(text: str) -> LateralitySwap:
    """`text` with every laterality word mirrored (see the module rule), and the list of swaps made."""
    words: list[tuple[str, str]] = []

    def replace(match: re.Match[str]) -> str:
        found = match.group(0)
        new = _cased(_SWAPS[found.lower()], found)
        words.append((found, new))
        return new

    return LateralitySwap(text, _PATTERN.sub(replace, text), tuple(words))


def mirror_text(text: str) -> str:
    return swap_laterality(text).after
