"""Progress of one run: samples generated, taken from the cache, failed, scored; rate and time left.

On a terminal it is a rich bar on stderr that disappears when the run ends (the summary line stays); elsewhere
(CI logs, pipes) it is a plain line every few seconds, so a long run is never silent and a log never fills with
carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

PLAIN_EVERY_S = 5.0


class RunProgress:
    """Counts for one (task, model) run. `mode` is "rich", "plain" or "off"."""

    def __init__(self, label: str, total: int, mode: str = "off", stream: TextIO | None = None) -> None:
        self.label, self.total, self.mode = label, total, mode
        self.stream = stream or sys.stderr
        self.done = self.generated = self.cached = self.errors = self.scored = 0
        self.kept = 0
        self._started = time.perf_counter()
        self._last_plain = self._started
        self._bar = None
        self._task_id = None

    @staticmethod
    def auto_mode(enabled: bool = True, stream: TextIO | None = None) -> str:
        if not enabled:
            return "off"
        stream = stream or sys.stderr
        return "rich" if getattr(stream, "isatty", lambda: False)() else "plain"

    # --- lifecycle ------------------------------------------------------------------------------------------
    def __enter__(self) -> RunProgress:
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._bar.start()
            self._task_id = self._bar.add_task(self.label, total=self.total, counts="", rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    # --- updates --------------------------------------------------------------------------------------------
    def resumed(self, n: int) -> None:
        """Samples already stored by an earlier run of the same pair: counted as done, not as work."""
        self.kept += n
        self.done += n
        self._refresh()

    def generated_batch(self, generated: int, cached: int, errors: int) -> None:
        self.generated += generated
        self.cached += cached
        self.errors += errors
        self.done += generated + cached + errors
        self._refresh()

    def scored_chunk(self, n: int) -> None:
        self.scored += n
        self._refresh()

    # --- display --------------------------------------------------------------------------------------------
    def rate(self) -> float:
        seconds = time.perf_counter() - self._started
        work = self.generated + self.cached + self.errors
        return work / seconds if seconds > 0 else 0.0

    def counts(self) -> str:
        parts = [f"gen {self.generated}", f"cached {self.cached + self.kept}", f"err {self.errors}"]
        if self.scored:
            parts.append(f"scored {self.scored}")
        return " · ".join(parts)

    def line(self) -> str:
        rate = self.rate()
        left = self.total - self.done
        eta = f" ETA {left / rate:.0f}s" if rate > 0 and left > 0 else ""
        return f"{self.label}: {self.done}/{self.total} {self.counts()} · {rate:.1f}/s{eta}"

    def _refresh(self) -> None:
        if self.mode == "rich" and self._bar is not None:
            rate = self.rate()
            self._bar.update(
                self._task_id, completed=self.done, counts=self.counts(), rate=f"{rate:.1f}/s" if rate else ""
            )
        elif self.mode == "plain":
            now = time.perf_counter()
            # Quiet for the first few seconds: a short run prints only its summary line.
            if now - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = now
                print(self.line(), file=self.stream, flush=True)
