"""Errors that reach the user as a clear message and exit code 2, never as a bare traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EvalkitError(Exception):
    """Bad input or usage: the message names the file, field or sample and, where possible, the fix."""

    exit_code = 2


class SampleError(Exception):
    """A problem with one sample (unreadable image, adapter failure): stored per sample, the run goes on."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: what was kept, so the user learns that running the same command again resumes."""

    def __init__(self, task: str, model: str, kept: int, total: int) -> None:
        super().__init__(f"{task} · {model}: {kept} of {total} samples kept")
        self.task, self.model, self.kept, self.total = task, model, kept, total


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for a close match, else '' (the suffix of an unknown-name error)."""
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
